"""Retrieval on the embedded default: a Qdrant Edge shard, BM25 and the bundled static
embeddings (adapters/qdrant/static.py) fused by DBSF, no embedding model configured.

For 1k, 10k and 50k synthetic passages (a fresh shard each): ingestion throughput through
`EdgeKnowledgeIndex.upsert` in batches of 256, as `switchboard ingest` does (BM25 and
static encoding and the write, chunks/s); then query latency of `search()` with the access filter, for a
person (a user id, an email and two groups) and for a channel, before and after
`optimize()` (timed too); the shard's size on disk and the process's peak RSS (VmHWM).

Passages are ~200 words drawn with Zipf-like frequencies from a 30,000-word synthetic
vocabulary plus English function words (~40% of tokens, as in prose), under a title and
one or two headings; 10% are restricted to a few users, groups or channels. Queries are 2–4
words of mid frequency. Last, 10k passages with random 384-d dense vectors (an embedder
that costs nothing) and hybrid queries, to show what fusion costs; and 50k with BM25
alone (`--bm25`, the static embeddings off), to show what they cost. Each scenario runs in
its own process.

    .venv/bin/python benchmarks/retrieval.py              # 1k, 10k, 50k, 10k hybrid, 50k BM25
    .venv/bin/python benchmarks/retrieval.py --quick      # 1k only, a smoke run

Targets (issue 5): query with the access filter p95 < 5 ms at 50k passages; ingestion
≥ 1,000 chunks/s without a dense model. Results: benchmarks/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and `core.py` would shadow
# the `core` package.
HERE = Path(__file__).parent.resolve()
sys.path[:] = [str(HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]
# ruff: noqa: E402 - sys.path is set up before the imports that depend on it

import argparse
import asyncio
import itertools
import random
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence

import numpy as np

from adapters.qdrant import edge as edge_module
from adapters.qdrant.edge import EdgeKnowledgeIndex
from core.knowledge import Access, Audience, Chunk
from core.ports import Embedder

BATCH = 256
QUERIES = 300
WORDS_PER_CHUNK = 200
VOCABULARY = 30_000
FUNCTION_WORDS = (
    "the of and to a in is that for it as with was on be by this are or at from have an "
    "not which but can all your you will if we their more one when there so also may must "
    "should into about after before then than each other any only new use used these"
).split()
USERS = [f"U{n:05d}" for n in range(200)]
GROUPS = [f"group-{n}" for n in range(20)]
CHANNELS = [f"slack:T1:C{n:04d}" for n in range(50)]


class Corpus:
    """Deterministic synthetic text: pseudo-words with Zipf-like frequencies."""

    def __init__(self, seed: int = 7) -> None:
        self.random = random.Random(seed)
        vowels = ("a", "e", "i", "o", "u", "ai", "or")
        syllables = [c + v for c in "bcdfghklmnprstvz" for v in vowels]
        words: set[str] = set()
        while len(words) < VOCABULARY:
            words.add("".join(self.random.choices(syllables, k=self.random.randint(2, 4))))
        self.words = sorted(words)
        self.random.shuffle(self.words)
        self.weights = list(itertools.accumulate(1 / (r + 1) ** 1.07 for r in range(VOCABULARY)))

    def text(self, n: int) -> str:
        content = self.random.choices(self.words, cum_weights=self.weights, k=int(n * 0.6))
        function = self.random.choices(FUNCTION_WORDS, k=n - len(content))
        tokens = content + function
        self.random.shuffle(tokens)
        return " ".join(tokens)

    def query(self) -> str:
        # Mid-frequency words: what people type, neither "the" nor a hapax.
        n = self.random.randint(2, 4)
        return " ".join(self.random.choice(self.words[50:5000]) for _ in range(n))

    def access(self) -> Access:
        if self.random.random() >= 0.10:
            return Access()
        return Access(
            public=False,
            users=frozenset(self.random.sample(USERS, 3)),
            groups=frozenset(self.random.sample(GROUPS, 1)),
            channels=frozenset(self.random.sample(CHANNELS, 2)),
        )

    def chunks(self, n: int) -> Iterator[Chunk]:
        """Documents of 1–8 passages; generated lazily so their text does not count in RSS."""
        made = 0
        for doc in itertools.count():
            title, access = self.text(4).title(), self.access()
            for position in range(self.random.randint(1, 8)):
                if made == n:
                    return
                made += 1
                yield Chunk(
                    id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"doc{doc}#{position}")),
                    source=f"docs/doc{doc}.md", position=position, title=title,
                    headings=tuple(
                        self.text(3).capitalize() for _ in range(self.random.randint(1, 2))
                    ),
                    text=self.text(WORDS_PER_CHUNK), url=None, document_hash=f"{doc:032x}",
                    access=access,
                )


class RandomEmbedder:
    """384-d random unit vectors: measures the engine's fusion cost, not a model's."""

    name = "random-384"
    size = 384

    def __init__(self) -> None:
        self._rng = np.random.default_rng(1)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = self._rng.standard_normal((len(texts), self.size), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors.tolist()


def audiences(corpus: Corpus) -> dict[str, list[Audience]]:
    people = [
        Audience(kind="person", principals=frozenset(
            {u, f"{u.lower()}@example.com", *corpus.random.sample(GROUPS, 2)}))
        for u in corpus.random.sample(USERS, 20)
    ]
    channels = [Audience(kind="channel", principals=frozenset({c})) for c in CHANNELS[:20]]
    return {"person": people, "channel": channels}


async def latencies(
    index: EdgeKnowledgeIndex, queries: list[str], who: list[Audience]
) -> list[float]:
    timings = []
    for query, audience in zip(queries, itertools.cycle(who), strict=False):
        start = time.perf_counter()
        await index.search(query, audience=audience, limit=8)
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def size_mb(path: Path) -> float:
    """Blocks in use, as `du` counts them (the WAL and mmap files are sparse)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file()) / 1e6


async def scenario(n: int, *, embedder: Embedder | None = None) -> list[str]:
    corpus = Corpus(seed=n)
    path = Path(tempfile.mkdtemp(prefix="sb-retrieval-")) / "qdrant"
    size = getattr(embedder, "size", None)
    index = EdgeKnowledgeIndex.open(path, embedder=embedder, dense_size=size)
    rows = []
    try:
        chunks = corpus.chunks(n)
        spent = 0.0
        while batch := list(itertools.islice(chunks, BATCH)):
            start = time.perf_counter()
            await index.upsert(batch)
            spent += time.perf_counter() - start
        assert await index.count() == n
        dense = index.dense_model
        label = f"{n:,}" + (" hybrid (384-d random dense)" if embedder else
                            " BM25 + static" if dense else " BM25 alone")
        ingest = f"{n / spent:,.0f}"
        queries = [corpus.query() for _ in range(QUERIES)]
        who = audiences(corpus)
        stages = {"before optimize": None, "after optimize": None}
        for stage in stages:
            if stage == "after optimize":
                start = time.perf_counter()
                await index.optimize()
                optimize_s = time.perf_counter() - start
            await latencies(index, queries[:30], who["person"])  # warm-up
            cells = []
            for kind in ("person", "channel"):
                t = await latencies(index, queries, who[kind])
                cells += [f"{pct(t, 50):.2f}", f"{pct(t, 95):.2f}"]
            optimize = f"{optimize_s:.1f}" if stage == "after optimize" else "–"
            rows.append(
                f"| {label} | {ingest} | {stage} | {' | '.join(cells)} | {optimize} "
                f"| {size_mb(path):.0f} | {peak_rss_mb():.0f} |"
            )
            print(rows[-1], flush=True)
    finally:
        await index.aclose()
        shutil.rmtree(path.parent, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k passages only")
    parser.add_argument("--size", type=int, help="run one scenario in this process")
    parser.add_argument("--dense", action="store_true", help="with --size: random dense vectors")
    parser.add_argument("--bm25", action="store_true", help="with --size: no static embeddings")
    args = parser.parse_args()
    if args.bm25:
        edge_module.static_embedder = lambda: None  # type: ignore[assignment]
    if args.size:
        asyncio.run(scenario(args.size, embedder=RandomEmbedder() if args.dense else None))
        return
    print("| passages | ingest chunks/s | stage | person p50 ms | person p95 ms "
          "| channel p50 ms | channel p95 ms | optimize s | shard MB | peak RSS MB |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    # One process per scenario, so that each peak RSS is its own.
    runs = [["--size", "1000"]] if args.quick else [
        ["--size", "1000"], ["--size", "10000"], ["--size", "50000"],
        ["--size", "10000", "--dense"], ["--size", "50000", "--bm25"],
    ]
    for run in runs:
        subprocess.run([sys.executable, __file__, *run], check=True)


if __name__ == "__main__":
    main()
