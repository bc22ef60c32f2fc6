"""Build the retrieval evaluation sets in tests/fixtures/eval-*/ from Debian packages.

Each set is a FAQ that its authors wrote for their users: the questions are the queries,
the answer under each question is the one relevant document. The question text never
enters the corpus (a document's title is its chapter, cross-references that quote another
question's title are cut to the section number), or the set would measure string matching.

- eval-debian-faq: the Debian GNU/Linux FAQ (package debian-faq), plain-text edition.
  Entries whose heading is not a question ("Feedback") stay in the corpus as distractors.
- eval-zsh-faq: the Z-Shell FAQ (package zsh-doc, HTML edition); every page of the zsh
  manual shipped beside it joins the corpus as a distractor, so an answer competes with
  the reference text on the same topics.

    .venv/bin/python benchmarks/eval_sets.py            # downloads with apt-get, writes both
    .venv/bin/python benchmarks/eval_sets.py --out /tmp/sets

Versions are pinned so a rebuild gives the same files; `apt-get download` needs the
version in the configured archive (Debian 12 "bookworm").
"""

from __future__ import annotations

import argparse
import gzip
import html
import json
import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
DEBIAN_FAQ = ("debian-faq", "11.1")
ZSH_DOC = ("zsh-doc", "5.9-4")


@dataclass(frozen=True, kw_only=True, slots=True)
class Entry:
    number: str  # "3.1.4"
    question: str
    chapter: str
    answer: str


def unpack(package: str, version: str, into: Path) -> Path:
    """`apt-get download` + `dpkg-deb -x`; returns the extracted root."""
    subprocess.run(["apt-get", "download", f"{package}={version}"], cwd=into, check=True,
                   stdout=subprocess.DEVNULL)
    deb = next(into.glob(f"{package}_*.deb"))
    root = into / package
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


# -- Debian FAQ --------------------------------------------------------------------------

HEADING = re.compile(r"^(?:Chapter )?(\d+(?:\.\d+)*)\. (\S.*)$")
# "See Section 14.3, “I am making a special Linux distribution …”" quotes a question.
CROSS_REFERENCE = re.compile(r"(Section [\d.]*\d),?\s*“[^”]*”", re.DOTALL)


def debian_faq_entries(text: str) -> Iterator[Entry]:
    lines = text.replace("\xa0", " ").splitlines()
    # The table of contents lists chapters at column 0 too: the body starts at the
    # first "Chapter 1. …" line.
    i = next(i for i, line in enumerate(lines) if line.startswith("Chapter 1. "))
    chapter = ""
    while i < len(lines):
        match = HEADING.match(lines[i])
        if not match:
            i += 1
            continue
        heading = [match.group(2)]  # a long heading wraps at column 0 up to a blank line
        i += 1
        while i < len(lines) and lines[i].strip() and not lines[i].startswith(" "):
            heading.append(lines[i].strip())
            i += 1
        body = []
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
            body.append(lines[i])
            i += 1
        number, title = match.group(1), " ".join(heading)
        if "." not in number:
            chapter = title
        answer = CROSS_REFERENCE.sub(r"\1", _dedent(body)).strip()
        if answer:
            yield Entry(number=number, question=title, chapter=chapter, answer=answer)


def _dedent(lines: list[str]) -> str:
    widths = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    cut = min(widths, default=0)
    return "\n".join(line[cut:] for line in lines)


def build_debian_faq(work: Path) -> tuple[list[Entry], list[dict[str, str]], str]:
    root = unpack(*DEBIAN_FAQ, work)
    path = root / "usr/share/doc/debian/FAQ/debian-faq.en.txt.gz"
    entries = list(debian_faq_entries(gzip.decompress(path.read_bytes()).decode("utf-8")))
    return entries, [], "debian-faq"


# -- Z-Shell FAQ -------------------------------------------------------------------------

SECTION = re.compile(r'<h2 >(\d+\.\d+): (.*?)</h2>(.*?)(?=<h2 |<h1 |<hr>|$)', re.DOTALL)
CHAPTER = re.compile(r"<h1 >Chapter \d+: (.*?)</h1>", re.DOTALL)


def html_text(markup: str) -> str:
    """Block elements become line breaks, <pre> keeps its lines, tags go."""
    markup = re.sub(r"<(p|br|li|dt|dd|h\d|tr|pre|/pre|ul|ol|dl|table)\b[^>]*>", "\n", markup,
                    flags=re.IGNORECASE)
    text = html.unescape(re.sub(r"<[^>]+>", "", markup))
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def zsh_faq_entries(page: str) -> Iterator[Entry]:
    chapter_match = CHAPTER.search(page)
    chapter = html_text(chapter_match.group(1)) if chapter_match else ""
    for match in SECTION.finditer(page):
        question = " ".join(html_text(match.group(2)).split())
        answer = html_text(match.group(3))
        if answer:
            yield Entry(number=match.group(1), question=question, chapter=chapter,
                        answer=answer)


def build_zsh_faq(work: Path) -> tuple[list[Entry], list[dict[str, str]], str]:
    root = unpack(*ZSH_DOC, work)
    pages = root / "usr/share/doc/zsh-common/html"
    entries = [
        entry
        for number in range(1, 10)
        if (pages / f"FAQ{number:02d}.html").exists()
        for entry in zsh_faq_entries((pages / f"FAQ{number:02d}.html").read_text("utf-8"))
    ]
    manual = []
    for page in sorted(pages.glob("*.html")):
        if page.name.startswith(("FAQ", "The-Zsh-FAQ", "index", "zsh_")) or \
                page.stem.endswith("-Index"):
            continue  # the FAQ itself, tables of contents and indexes
        markup = page.read_text("utf-8", errors="replace")
        title = re.search(r"<title>(.*?)</title>", markup, re.DOTALL)
        body = markup[markup.find("<body"):] if "<body" in markup else markup
        text = html_text(re.sub(r"<ul>\s*<li> <a href=\"[^\"]*\">Table of Contents.*?</ul>",
                                "", body, flags=re.DOTALL))
        if len(text) > 200:
            manual.append({"_id": f"manual-{page.stem}",
                           "title": html_text(title.group(1)) if title else page.stem,
                           "text": text})
    return entries, manual, "zsh-faq"


# -- BEIR layout -------------------------------------------------------------------------


def is_question(heading: str) -> bool:
    return "?" in heading


def write_set(folder: Path, name: str, entries: list[Entry], extra: list[dict[str, str]]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    corpus, queries, qrels = [], [], []
    for entry in entries:
        doc_id = f"{name}-{entry.number}"
        corpus.append({"_id": doc_id, "title": entry.chapter, "text": entry.answer})
        if is_question(entry.question):
            query_id = f"q{entry.number}"
            queries.append({"_id": query_id, "text": entry.question})
            qrels.append(f"{query_id}\t{doc_id}\t1")
    corpus += extra
    _write_jsonl(folder / "corpus.jsonl", corpus)
    _write_jsonl(folder / "queries.jsonl", queries)
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{row}\n" for row in qrels), encoding="utf-8"
    )
    _check_no_leak(corpus, queries)
    return len(queries)


def _write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows),
                    encoding="utf-8")


def _check_no_leak(corpus: list[dict[str, str]], queries: list[dict[str, str]]) -> None:
    """A query that appears verbatim in the corpus would be found by string matching."""
    haystack = "\n".join(" ".join((row["title"] + " " + row["text"]).split()) for row in corpus)
    leaked = [q["text"] for q in queries if len(q["text"]) > 25 and q["text"] in haystack]
    if leaked:
        raise SystemExit(f"questions quoted in the corpus: {leaked[:3]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=FIXTURES)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eval-sets-") as scratch:
        for build in (build_debian_faq, build_zsh_faq):
            work = Path(scratch) / build.__name__
            work.mkdir()
            entries, extra, name = build(work)
            n = write_set(args.out / f"eval-{name}", name, entries, extra)
            print(f"eval-{name}: {len(entries) + len(extra)} documents, {n} queries")


if __name__ == "__main__":
    main()
