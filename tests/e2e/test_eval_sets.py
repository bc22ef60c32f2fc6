"""`switchboard kb eval` on the committed evaluation sets built from real FAQs."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.cli import main

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_eval_scores_the_default_retrieval_on_the_debian_faq(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kb", "eval", str(FIXTURES / "eval-debian-faq")]) == 0

    out = capsys.readouterr().out
    assert "153 documents" in out and "123 queries" in out and "wordllama" in out
    rows = {
        line.split("│")[1].strip(): [float(v) for v in line.split("│")[2:5]]
        for line in out.splitlines() if line.count("│") == 5
    }
    ndcg, recall, mrr = rows["bm25"]
    # BM25 before issue 14 scored 0.586 here (benchmarks/README.md): a floor, not the number.
    assert ndcg > 0.55 and recall > ndcg and 0 < mrr <= recall
    # The default fuses BM25 with the bundled static embeddings: better than either alone.
    assert rows["hybrid"][0] > max(rows["bm25"][0], rows["dense"][0])
