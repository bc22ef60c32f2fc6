from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ingest" / "docs"


def words(text: str) -> int:
    """A token counter tests can reason about: one token per whitespace-separated word."""
    return len(text.split())


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A private copy of the fixture documents, free to edit."""
    return Path(shutil.copytree(FIXTURES, tmp_path / "docs"))
