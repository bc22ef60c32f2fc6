"""Retrieval metrics computed as trec_eval does, and the BEIR layout read strictly."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bots.evaluation import load_dataset, score


def test_a_perfect_ranking_scores_one() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 2, "d3": 1}}
    scores = score({"q1": ["d1", "x"], "q2": ["d2", "d3"]}, qrels)
    assert (scores.ndcg_at_10, scores.recall_at_10, scores.mrr_at_10) == (1.0, 1.0, 1.0)


def test_metrics_by_hand() -> None:
    qrels = {"q1": {"d1": 1, "d2": 1}}
    scores = score({"q1": ["x", "d1", "d1", "y"]}, qrels)  # repeats count once
    dcg = 1 / math.log2(3)
    ideal = 1 + 1 / math.log2(3)
    assert scores.ndcg_at_10 == pytest.approx(dcg / ideal)
    assert scores.recall_at_10 == 0.5
    assert scores.mrr_at_10 == 0.5


def test_only_the_first_ten_count() -> None:
    ranking = [f"x{n}" for n in range(10)] + ["d1"]
    scores = score({"q1": ranking}, {"q1": {"d1": 1}})
    assert (scores.ndcg_at_10, scores.recall_at_10, scores.mrr_at_10) == (0.0, 0.0, 0.0)


def test_the_beir_layout_is_read_and_its_errors_named(tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "title": "T", "text": "body"}\n')
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "question"}\n')
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")

    data = load_dataset(tmp_path)

    assert data.corpus == {"d1": ("T", "body")} and data.qrels == {"q1": {"d1": 1}}
    (tmp_path / "queries.jsonl").write_text('{"text": "no id"}\n')
    with pytest.raises(ValueError, match="queries.jsonl:1: needs _id"):
        load_dataset(tmp_path)
