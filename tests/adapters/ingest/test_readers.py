from __future__ import annotations

from pathlib import Path

import pytest
from pypdf import PdfWriter

from adapters.ingest import Document, Section, Skipped, read_document
from core.knowledge import Access

from .conftest import FIXTURES

DEFAULT = Access(public=False, groups=frozenset({"everyone"}))


def read(path: Path, *, url: str | None = None, access: Access = DEFAULT) -> Document | Skipped:
    return read_document(path, source=path.as_uri(), url=url, access=access)


def document(path: Path, **kwargs: object) -> Document:
    result = read(path, **kwargs)  # type: ignore[arg-type]
    assert isinstance(result, Document), result
    return result


def headings(doc: Document) -> list[tuple[str, ...]]:
    return [section.headings for section in doc.sections]


def test_markdown_front_matter_sets_title_url_and_access() -> None:
    doc = document(FIXTURES / "guides" / "it-handbook.md", url="https://default/x")

    assert doc.format == "markdown"
    assert doc.title == "IT Handbook"
    assert doc.url == "https://intranet.example.com/it/handbook"
    assert doc.access == Access(
        public=False, users=frozenset({"alice@example.com"}), groups=frozenset({"staff"})
    )


def test_markdown_headings_nest_and_the_title_heading_is_not_repeated() -> None:
    doc = document(FIXTURES / "guides" / "it-handbook.md")

    assert headings(doc) == [
        (),
        ("Network",),
        ("Network", "Reset your VPN password"),
        ("Network", "Connect to Wi-Fi"),
        ("Email",),  # a setext heading
    ]


def test_markdown_body_stays_markdown_with_its_code_fence_whole() -> None:
    doc = document(FIXTURES / "guides" / "it-handbook.md")
    vpn = doc.sections[2].text

    assert "**Reset VPN password**" in vpn
    assert (
        '```bash\n# not a heading: a comment in a code fence\nvpnctl reset --user "$USER"\n```'
    ) in vpn
    assert "---" not in doc.text and "allow_groups" not in doc.text


def test_markdown_title_falls_back_to_first_h1_then_file_name(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("Intro\n\n## Setup\n\ntext\n\n# Real Title\n\nmore\n")
    (tmp_path / "b-notes.md").write_text("## Only a subsection\n\ntext\n")

    assert document(tmp_path / "a.md").title == "Real Title"
    assert document(tmp_path / "b-notes.md").title == "b-notes"


def test_markdown_without_access_in_front_matter_keeps_the_default(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("---\ntitle: Plain\n---\nbody\n")

    doc = document(tmp_path / "a.md")

    assert doc.title == "Plain" and doc.access == DEFAULT and doc.text == "body"


def test_front_matter_allow_lists_alone_mean_restricted(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("---\nallow_channels: slack:T1:C2\n---\nbody\n")
    (tmp_path / "b.md").write_text("---\nvisibility: public\n---\nbody\n")

    assert document(tmp_path / "a.md").access == Access(
        public=False, channels=frozenset({"slack:T1:C2"})
    )
    assert document(tmp_path / "b.md").access == Access()


@pytest.mark.parametrize(
    "front",
    [
        "visibility: secret",
        "visibility: public\nallow_groups: [hr]",
        "allow_users: {a: 1}",
        "title: [unclosed",
        "- just\n- a list",
    ],
)
def test_unclear_front_matter_is_skipped_not_guessed(tmp_path: Path, front: str) -> None:
    (tmp_path / "a.md").write_text(f"---\n{front}\n---\nbody\n")

    result = read(tmp_path / "a.md")

    assert isinstance(result, Skipped) and "front matter" in result.reason


def test_plain_text_is_one_section_titled_by_its_short_first_line(tmp_path: Path) -> None:
    doc = document(FIXTURES / "notes.txt")

    assert doc.format == "text"
    assert doc.title == "Office opening hours"
    assert headings(doc) == [()]
    assert "closes at 18:00" in doc.text

    (tmp_path / "long.txt").write_text("word " * 40 + "\nsecond line\n")
    assert document(tmp_path / "long.txt").title == "long"


def test_text_in_windows_1252_is_read(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes("Caf\u00e9 \u201cmenu\u201d".encode("cp1252"))

    assert document(tmp_path / "a.txt").text == "Caf\u00e9 \u201cmenu\u201d"


def test_html_drops_page_furniture_and_keeps_sections() -> None:
    doc = document(FIXTURES / "status-page.html")

    assert doc.format == "html"
    assert doc.title == "Service Status"
    assert headings(doc) == [(), ("Known issues",), ("Known issues", "Workarounds"), ("Contacts",)]
    assert "NOISE" not in doc.text and "font-family" not in doc.text
    assert doc.sections[0].text == "All core services are operational."
    assert doc.sections[1].text == (
        "- Printing on floor 3 is slow.\n- The wiki search index rebuilds nightly."
    )
    assert "```\nlpr -P floor2 report.pdf\n\nlpq -P floor2\n```" in doc.sections[2].text
    assert doc.sections[3].text == "Team | Email\nService desk | help@example.com"


def test_html_title_falls_back_to_the_first_h1(tmp_path: Path) -> None:
    (tmp_path / "a.html").write_text("<body><h1>Heading One</h1><p>Hello <b>there</b></p>")

    doc = document(tmp_path / "a.html")

    assert doc.title == "Heading One"
    assert doc.sections == (Section(headings=(), text="Hello there"),)


def test_pdf_has_a_section_per_page_and_its_metadata_title() -> None:
    doc = document(FIXTURES / "printer-manual.pdf")

    assert doc.format == "pdf"
    assert doc.title == "Printer Manual"
    assert headings(doc) == [("Page 1",), ("Page 2",)]
    assert "error E42" in doc.sections[1].text


def test_docx_headings_lists_and_tables() -> None:
    doc = document(FIXTURES / "leave-policy.docx")

    assert doc.format == "docx"
    assert doc.title == "Leave Policy"
    assert headings(doc) == [
        (), ("Requesting leave",), ("Carry-over",), ("Carry-over", "Sick leave"),
    ]
    assert "- Tell your team in the team channel.\n- Add the days" in doc.sections[1].text
    assert "Days unused | Carried over\n8 | 5" in doc.sections[2].text


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty.md", "empty"),
        ("logo.png", "unsupported format .png"),
    ],
)
def test_files_that_cannot_be_ingested_are_skipped_with_a_reason(name: str, reason: str) -> None:
    assert read(FIXTURES / name) == Skipped(path=FIXTURES / name, reason=reason)


def test_a_corrupt_pdf_is_skipped_with_a_reason() -> None:
    result = read(FIXTURES / "corrupt.pdf")

    assert isinstance(result, Skipped) and result.reason.startswith("corrupt PDF")


@pytest.mark.parametrize("name", ["broken.docx", "broken.pdf", "binary.txt", "blank.html"])
def test_garbage_under_a_known_extension_is_skipped(tmp_path: Path, name: str) -> None:
    data = b"\x00\x01garbage\xff" if name != "blank.html" else b"<html><script>x</script></html>"
    (tmp_path / name).write_bytes(data)

    assert isinstance(read(tmp_path / name), Skipped)


@pytest.mark.parametrize(("password", "readable"), [("secret", False), ("", True)])
def test_an_encrypted_pdf_is_read_only_without_a_password(
    tmp_path: Path, password: str, readable: bool
) -> None:
    writer = PdfWriter(clone_from=FIXTURES / "printer-manual.pdf")
    writer.encrypt(user_password=password, owner_password="owner", algorithm="RC4-128")
    writer.write(tmp_path / "locked.pdf")

    result = read(tmp_path / "locked.pdf")

    if readable:
        assert isinstance(result, Document) and "error E42" in result.text
    else:
        assert result == Skipped(path=tmp_path / "locked.pdf", reason="encrypted PDF")
