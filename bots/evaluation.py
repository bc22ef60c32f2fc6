"""`switchboard kb eval DIR`: retrieval quality on a data set in the BEIR layout.

`corpus.jsonl` ({"_id", "title", "text"}), `queries.jsonl` ({"_id", "text"}) and
`qrels/test.tsv` (query-id, corpus-id, score; a header line). The corpus goes into a
scratch index (never the live one); each query is searched as a public audience; passages
are mapped back to their documents (first occurrence ranks). Metrics as trec_eval computes
them: nDCG@10 with linear gain, recall@10, and MRR@10.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

Qrels = dict[str, dict[str, int]]  # query id → document id → relevance


@dataclass(frozen=True, kw_only=True, slots=True)
class Dataset:
    corpus: dict[str, tuple[str, str]]  # document id → (title, text)
    queries: dict[str, str]
    qrels: Qrels


@dataclass(frozen=True, kw_only=True, slots=True)
class Scores:
    ndcg_at_10: float
    recall_at_10: float
    mrr_at_10: float
    queries: int


def load_dataset(root: Path, *, split: str = "test") -> Dataset:
    """Raises ValueError naming the file and line of anything malformed."""
    corpus = {
        str(row["_id"]): (str(row.get("title") or ""), str(row["text"]))
        for row in _jsonl(root / "corpus.jsonl")
    }
    queries = {str(row["_id"]): str(row["text"]) for row in _jsonl(root / "queries.jsonl")}
    qrels: Qrels = {}
    path = root / "qrels" / f"{split}.tsv"
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle, delimiter="\t"))
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}") from e
    for number, row in enumerate(rows, 1):
        if number == 1 and not row[-1].lstrip("-").isdigit():
            continue  # the header
        if len(row) != 3 or not row[2].lstrip("-").isdigit():
            raise ValueError(f"{path}:{number}: expected query-id, corpus-id, score")
        qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return Dataset(corpus=corpus, queries=queries, qrels=qrels)


def _jsonl(path: Path) -> list[dict[str, object]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}") from e
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise ValueError(f"{path}:{number}: not JSON") from None
        if not isinstance(row, dict) or "_id" not in row or "text" not in row:
            raise ValueError(f"{path}:{number}: needs _id and text")
        rows.append(row)
    return rows


def score(rankings: Mapping[str, Sequence[str]], qrels: Qrels, *, k: int = 10) -> Scores:
    """Mean metrics over the queries that have relevance judgements."""
    judged = [q for q in qrels if any(rel > 0 for rel in qrels[q].values())]
    if not judged:
        raise ValueError("no query has a relevant document in the qrels")
    ndcg = recall = mrr = 0.0
    for query in judged:
        relevant = qrels[query]
        ranked = list(dict.fromkeys(rankings.get(query, ())))[:k]
        dcg = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked))
        ideal = sorted((r for r in relevant.values() if r > 0), reverse=True)[:k]
        ndcg += dcg / sum(r / math.log2(rank + 2) for rank, r in enumerate(ideal))
        hits = {doc for doc in ranked if relevant.get(doc, 0) > 0}
        recall += len(hits) / sum(1 for r in relevant.values() if r > 0)
        first = next((rank for rank, doc in enumerate(ranked) if relevant.get(doc, 0) > 0), None)
        mrr += 0.0 if first is None else 1.0 / (first + 1)
    n = len(judged)
    return Scores(ndcg_at_10=ndcg / n, recall_at_10=recall / n, mrr_at_10=mrr / n, queries=n)
