from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable
from dataclasses import replace

import pytest

from adapters.ingest import Document, Section, chunk, document_hash, read_document
from core.knowledge import Access

from .conftest import FIXTURES, words


def doc(*sections: Section, title: str = "Guide", source: str = "file:///guide.md") -> Document:
    return Document(
        source=source, title=title, sections=sections, url=None, access=Access(), format="markdown"
    )


def prose(n: int, start: int = 0) -> str:
    """`n` numbered words in sentences of five: "w0 w1 w2 w3 w4. w5 …"."""
    return " ".join(f"w{i}." if i % 5 == 4 else f"w{i}" for i in range(start, start + n))


def numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"w(\d+)", text)]


def test_a_small_section_is_one_chunk_with_title_and_heading_path() -> None:
    handbook = read_document(
        FIXTURES / "guides" / "it-handbook.md", source="s", url=None, access=Access()
    )
    assert isinstance(handbook, Document)

    chunks = chunk(handbook, count_tokens=words)

    vpn = [c for c in chunks if c.headings == ("Network", "Reset your VPN password")]
    assert len(vpn) == 1
    assert vpn[0].heading_path == "IT Handbook › Network › Reset your VPN password"
    assert vpn[0].title == "IT Handbook" and vpn[0].url == handbook.url
    assert vpn[0].access == handbook.access
    assert [c.position for c in chunks] == list(range(len(chunks)))


def test_chunks_never_span_sections() -> None:
    chunks = chunk(
        doc(Section(headings=("A",), text="alpha one."), Section(headings=("B",), text="beta.")),
        count_tokens=words,
    )

    assert [(c.headings, c.text) for c in chunks] == [(("A",), "alpha one."), (("B",), "beta.")]


def test_windows_respect_max_tokens_and_overlap_and_lose_nothing() -> None:
    text = "\n\n".join(prose(37, start) for start in range(0, 370, 37))

    chunks = chunk(doc(Section(headings=(), text=text)), count_tokens=words, max_tokens=50,
                   overlap=10)

    assert len(chunks) > 1
    assert all(words(c.text) <= 50 for c in chunks)
    seen = [numbers(c.text) for c in chunks]
    assert sorted({n for s in seen for n in s}) == list(range(370))
    for before, after in zip(seen, seen[1:], strict=False):
        shared = [n for n in after if n in before]
        assert shared == before[-len(shared):] == after[: len(shared)]  # a true overlap
        assert 0 < len(shared) <= 10


def test_paragraphs_that_fit_are_not_cut() -> None:
    paragraphs = [prose(20, start) for start in (0, 20, 40, 60)]

    chunks = chunk(doc(Section(headings=(), text="\n\n".join(paragraphs))), count_tokens=words,
                   max_tokens=45, overlap=0)

    assert [c.text for c in chunks] == [
        "\n\n".join(paragraphs[:2]), "\n\n".join(paragraphs[2:])
    ]


def test_a_long_paragraph_is_cut_at_sentence_ends() -> None:
    chunks = chunk(doc(Section(headings=(), text=prose(100))), count_tokens=words,
                   max_tokens=23, overlap=5)

    assert all(c.text.endswith(".") for c in chunks)
    assert all(words(c.text) <= 23 for c in chunks)


def test_a_sentence_longer_than_the_window_is_cut_between_words() -> None:
    text = " ".join(f"x{i}" for i in range(100))

    chunks = chunk(doc(Section(headings=(), text=text)), count_tokens=words, max_tokens=30,
                   overlap=5)

    assert all(words(c.text) <= 30 for c in chunks)
    assert all(re.fullmatch(r"(x\d+ )*x\d+", c.text) for c in chunks)


def fences(text: str) -> int:
    return sum(1 for line in text.split("\n") if line.startswith("```"))


def test_a_code_fence_that_fits_is_never_cut() -> None:
    code = "```python\n" + "\n".join(f"line{i} = {i}" for i in range(8)) + "\n```"
    text = prose(30) + "\n\n" + code + "\n\n" + prose(30, 30)

    chunks = chunk(doc(Section(headings=(), text=text)), count_tokens=words, max_tokens=40,
                   overlap=8)

    assert any(code in c.text for c in chunks)
    assert all(fences(c.text) % 2 == 0 for c in chunks)
    assert all(words(c.text) <= 40 for c in chunks)


def test_a_fence_longer_than_the_window_is_split_and_fenced_again() -> None:
    lines = [f"step_{i}()" for i in range(60)]
    text = "```python\n" + "\n".join(lines) + "\n```"

    chunks = chunk(doc(Section(headings=(), text=text)), count_tokens=words, max_tokens=20,
                   overlap=5)

    assert len(chunks) > 1
    for c in chunks:
        assert c.text.startswith("```python\n") and c.text.endswith("\n```")
        assert words(c.text) <= 20
    inner = [line for c in chunks for line in c.text.split("\n")[1:-1]]
    assert inner == lines  # every line once, in order: code is never repeated as overlap


def test_ids_are_stable_uuids_of_source_and_position() -> None:
    document = doc(Section(headings=(), text=prose(100)))

    first = chunk(document, count_tokens=words, max_tokens=30, overlap=5)
    again = chunk(document, count_tokens=words, max_tokens=30, overlap=5)
    elsewhere = chunk(replace(document, source="file:///other.md"), count_tokens=words,
                      max_tokens=30, overlap=5)

    assert [c.id for c in first] == [c.id for c in again]
    assert len({c.id for c in first}) == len(first)
    assert not {c.id for c in first} & {c.id for c in elsewhere}
    assert uuid.UUID(first[0].id).version == 5


def test_the_document_hash_covers_text_title_url_access_and_window() -> None:
    base = doc(Section(headings=("A",), text="alpha"))
    variants = [
        replace(base, sections=(Section(headings=("A",), text="beta"),)),
        replace(base, sections=(Section(headings=("B",), text="alpha"),)),
        replace(base, title="Other"),
        replace(base, url="https://x/guide"),
        replace(base, access=Access(public=False, users=frozenset({"u"}))),
    ]
    digest = document_hash(base, max_tokens=300, overlap=40)

    assert document_hash(base, max_tokens=300, overlap=40) == digest
    assert all(document_hash(v, max_tokens=300, overlap=40) != digest for v in variants)
    assert document_hash(base, max_tokens=200, overlap=40) != digest
    assert {c.document_hash for c in chunk(base, count_tokens=words)} == {digest}


def test_bad_window_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        chunk(doc(Section(headings=(), text="x")), count_tokens=words, max_tokens=10, overlap=10)


def lumpy(text: str) -> int:
    """A counter like a real tokenizer's: a join can cost more than its parts did."""
    return words(text) + len(text) // 40


@pytest.mark.parametrize("count", [words, lumpy], ids=["additive", "lumpy"])
@pytest.mark.parametrize("seed", range(5))
def test_random_documents_keep_every_rule(seed: int, count: Callable[[str], int]) -> None:
    rng = random.Random(seed)
    serial = iter(range(1_000_000))

    def sentence() -> str:
        return " ".join(f"t{next(serial)}" for _ in range(rng.randint(1, 25))) + "."

    def block() -> str:
        match rng.randint(0, 5):
            case 0:
                return "```\n" + "\n".join(f"c{next(serial)}" for _ in range(rng.randint(1, 80))) \
                    + "\n```"
            case 1:
                return "\n".join(f"- {sentence()}" for _ in range(rng.randint(1, 15)))
            case _:
                return " ".join(sentence() for _ in range(rng.randint(1, 12)))

    text = "\n\n".join(block() for _ in range(40))
    chunks = chunk(doc(Section(headings=("H",), text=text)), count_tokens=count,
                   max_tokens=60, overlap=12)

    assert all(count(c.text) <= 60 for c in chunks)
    assert all(fences(c.text) % 2 == 0 for c in chunks)
    tokens = re.findall(r"[tc]\d+", text)
    covered = [t for c in chunks for t in re.findall(r"[tc]\d+", c.text)]
    assert set(covered) == set(tokens)
    first_seen = list(dict.fromkeys(covered))
    assert first_seen == tokens  # in order
    code = [t for t in covered if t.startswith("c")]
    assert code == [t for t in tokens if t.startswith("c")]  # code never repeated
