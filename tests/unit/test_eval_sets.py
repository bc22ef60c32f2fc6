"""The committed evaluation sets are consistent, and their questions are not in the corpus
(a query found verbatim would measure string matching, not retrieval)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.evaluation import load_dataset

SETS = sorted((Path(__file__).parents[1] / "fixtures").glob("eval-*"))


def test_there_are_two_sets_with_150_questions_between_them() -> None:
    assert len(SETS) >= 2
    assert sum(len(load_dataset(s).queries) for s in SETS) >= 150


@pytest.mark.parametrize("root", SETS, ids=lambda p: p.name)
def test_every_question_has_one_answer_in_the_corpus_and_is_not_quoted(root: Path) -> None:
    data = load_dataset(root)
    assert set(data.qrels) == set(data.queries)
    assert all(doc in data.corpus for judged in data.qrels.values() for doc in judged)
    corpus = "\n".join(" ".join(f"{t} {x}".split()) for t, x in data.corpus.values())
    assert [q for q in data.queries.values() if len(q) > 25 and q in corpus] == []
    assert (root / "README.md").read_text().count("Licence") == 1
