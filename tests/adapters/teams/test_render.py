"""Answers are written as the Markdown Teams shows, split to fit a Teams message, and sent
with the entity that makes `[n]` markers citations and labels the message as AI."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from adapters.teams.render import (
    MAX_ABSTRACT,
    MAX_CITATIONS,
    MAX_NAME,
    ai_message_fields,
    citation_entity,
    cited_positions,
    split_message,
    to_teams_markdown,
    utf16_len,
)
from core.messages import Citation

FIXTURES = Path(__file__).parents[2] / "fixtures" / "teams"


def node_types(markdown: str) -> set[str]:
    parser = MarkdownIt("commonmark").enable("table").enable("strikethrough")
    return {node.type for node in SyntaxTreeNode(parser.parse(markdown)).walk()}


# ----- to_teams_markdown -----


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("**bold** and __bold__", "**bold** and **bold**"),
        ("*italic* and _italic_", "*italic* and *italic*"),
        ("~~gone~~", "~~gone~~"),
        ("***both***", "***both***"),
        ("*a **b** c*", "*a **b** c*"),
        ("`a < b && c`", "`a < b && c`"),
        ("`*not bold* [1]`", "`*not bold* [1]`"),
        ("`` a`b ``", "``a`b``"),
        ("` `` `", "` `` `"),
    ],
)
def test_inline_formatting_is_kept(markdown: str, expected: str) -> None:
    assert to_teams_markdown(markdown) == expected


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("# Title\nText", "**Title**\n\nText"),
        ("### Deep title", "**Deep title**"),
        ("## A **bold** title\n\nText", "**A bold title**\n\nText"),
        ("## With `code` and [1]", "**With `code` and [1]**"),
        ("Setext\nheading\n===", "**Setext heading**"),
        ("#", ""),
    ],
)
def test_headings_become_bold_lines(markdown: str, expected: str) -> None:
    assert to_teams_markdown(markdown) == expected


def test_tables_become_a_bullet_per_row_with_labelled_values() -> None:
    markdown = (
        "| Name | Role \\| team | Site |\n"
        "|------|:---:|-----:|\n"
        "| **Ada** [1] | `a\\|b` | [home](https://a.example) |\n"
        "| Bob | *ops* | |\n"
    )
    assert to_teams_markdown(markdown) == (
        "- **Name**: **Ada** [1]; **Role | team**: `a|b`; **Site**: [home](https://a.example)\n"
        "- **Name**: Bob; **Role | team**: *ops*"
    )


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("| A | B |\n|---|---|", "- **A**; **B**"),
        ("| | B |\n|---|---|\n| x | y |", "- x; **B**: y"),
        ("| **A** |\n|---|\n| # x |", "- **A**: \\# x"),
    ],
)
def test_table_edge_cases_stay_readable(markdown: str, expected: str) -> None:
    assert to_teams_markdown(markdown) == expected


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("- a\n- b", "- a\n- b"),
        ("* a\n* b", "- a\n- b"),
        ("- a\n  - b\n    - c\n      - d", "- a\n  - b\n    - c\n      - d"),
        ("1. a\n2. b", "1. a\n2. b"),
        ("3. a\n4. b", "3. a\n4. b"),
        ("1. a\n   - b\n     1. c", "1. a\n   - b\n     1. c"),
        ("9. a\n10. b\n    - c", "9. a\n10. b\n    - c"),
        ("- one\n\n  more on one\n- two", "- one\n\n  more on one\n\n- two"),
        ("- a\n-\n- c", "- a\n-\n- c"),
        ("> - in a quote\n>   - nested", "> - in a quote\n>   - nested"),
    ],
)
def test_lists_keep_their_nesting_and_numbers(markdown: str, expected: str) -> None:
    assert to_teams_markdown(markdown) == expected


@pytest.mark.parametrize(
    "code",
    [
        "# not a heading\n## nor this\n",
        "| a | b |\n|---|---|\n| 1 | 2 |\n",
        "x = a[1] * b[2]  # *not* **bold** <b>raw</b> &amp;\n",
        "    indented inside\n\n\nafter blank lines\n",
    ],
)
def test_code_blocks_are_kept_verbatim(code: str) -> None:
    assert to_teams_markdown(f"```python\n{code}```") == f"```python\n{code}```"
    assert to_teams_markdown(f"Intro\n\n~~~\n{code}~~~") == f"Intro\n\n```\n{code}```"


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("~~~md\nuses ``` inside\n~~~", "````md\nuses ``` inside\n````"),
        ("    indented\n      code", "```\nindented\n  code\n```"),
        ("- item\n\n  ```sh\n  # run\n  ```", "- item\n\n  ```sh\n  # run\n  ```"),
        ("```\nnever closed", "```\nnever closed\n```"),
    ],
)
def test_code_blocks_are_fenced_with_backticks(markdown: str, expected: str) -> None:
    assert to_teams_markdown(markdown) == expected


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("[the docs](https://x.y/docs)", "[the docs](https://x.y/docs)"),
        ("[**bold** link](https://x.y)", "[**bold** link](https://x.y)"),
        ("<https://x.y>", "[https://x.y](https://x.y)"),
        ("<a@b.c>", "[a@b.c](mailto:a@b.c)"),
        ("[wiki](https://w.org/A_(b))", "[wiki](https://w.org/A_%28b%29)"),
        ("[ref][r]\n\n[r]: https://x.y", "[ref](https://x.y)"),
        ("![a diagram](https://x.y/d.png)", "[a diagram](https://x.y/d.png)"),
        ("![](https://x.y/d.png)", "[https://x.y/d.png](https://x.y/d.png)"),
        ("see https://x.y/a_b", "see https://x.y/a_b"),
        ("[x](javascript:alert(1))", "\\[x\\](javascript:alert(1))"),
    ],
)
def test_links_keep_their_text_and_images_become_links(markdown: str, expected: str) -> None:
    assert to_teams_markdown(markdown) == expected


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("<script>alert(1)</script>", "&lt;script>alert(1)&lt;/script>"),
        ("say <b>hi</b> now", "say &lt;b>hi&lt;/b> now"),
        ("<div>\n<p>*block*</p>\n</div>", "&lt;div>\n&lt;p>\\*block\\*&lt;/p>\n&lt;/div>"),
        ("<!-- hidden -->", "&lt;!-- hidden -->"),
        ("a < b > c", "a < b > c"),
        ("&amp;lt;b&amp;gt; AT&T", "&amp;lt;b&amp;gt; AT&T"),
    ],
)
def test_raw_html_is_shown_as_text(markdown: str, expected: str) -> None:
    assert to_teams_markdown(markdown) == expected


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("Paris is the capital [1].", "Paris is the capital [1]."),
        ("Two sources[1][2], then [12].", "Two sources[1][2], then [12]."),
        ("**Bold claim [3]** and *this [4]*", "**Bold claim [3]** and *this [4]*"),
        ("- item [1]\n- item [2]", "- item [1]\n- item [2]"),
        ("> quoted [5]", "> quoted [5]"),
        ("cited \\[1\\](not a link)", "cited [1]\\(not a link)"),
        ("\\[1\\]: not a definition", "[1]\\: not a definition"),
    ],
)
def test_citation_markers_are_left_as_written(markdown: str, expected: str) -> None:
    assert to_teams_markdown(markdown) == expected


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("\\*not bold\\* and 2 * 3", "\\*not bold\\* and 2 \\* 3"),
        ("snake_case and \\_x\\_", "snake_case and \\_x\\_"),
        ("a \\[b\\] c", "a \\[b\\] c"),
        ("C:\\Users\\me and \\\\*", "C:\\Users\\me and \\\\\\*"),
        ("para\n\\- not a list\n\\# not a heading\n1\\. not a number", None),
        ("\\> not a quote", "\\> not a quote"),
        ("text\n\\===", "text\n\\==="),
        ("\\`not code\\` ~5 min", "\\`not code\\` \\~5 min"),
        ("hard  \nbreak", "hard  \nbreak"),
        ("above\n\n---\n\nbelow", "above\n\nbelow"),
        ("", ""),
    ],
)
def test_text_is_escaped_only_where_it_would_become_markup(
    markdown: str, expected: str | None
) -> None:
    assert to_teams_markdown(markdown) == (markdown if expected is None else expected)


MIXED = """# Release notes

Intro with **bold**, *italic*, ~~strike~~, `code`, a [link](https://x.y) and a source [1].

## Changes

| Area | Change |
|------|--------|
| API  | `GET /v2` [2] |
| UI   | **dark** mode |

1. First
   - nested *one*
   - nested two
2. Second

> A quote with a list:
> - a
> - b

```python
# comment, not a heading
print("| not | a | table |")
```

<details><summary>raw</summary>html</details>

---

![chart](https://x.y/c.png) and 5 * 3 = 15 \\[not a marker\\].
"""


def test_output_has_only_what_teams_shows() -> None:
    shown = node_types(to_teams_markdown(MIXED))
    assert not shown & {"heading", "table", "hr", "image", "html_block", "html_inline"}
    assert {"strong", "em", "s", "code_inline", "link", "fence", "ordered_list"} <= shown


def test_converting_again_changes_nothing() -> None:
    once = to_teams_markdown(MIXED)
    assert to_teams_markdown(once) == once


# ----- split_message -----


def non_space(text: str) -> str:
    return "".join(text.split())


def test_nothing_to_split_gives_no_parts() -> None:
    assert split_message("") == []
    assert split_message("\n \n\n") == []


def test_a_short_message_is_one_part() -> None:
    assert split_message("\n\nhello [1]\nworld 🌍\n\n") == ["hello [1]\nworld 🌍"]


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("one two\n\nthree four", 12, ["one two", "three four"]),
        ("aa\n\nbb\n\ncc", 6, ["aa\n\nbb", "cc"]),
        ("one\ntwo\nthree", 8, ["one\ntwo", "three"]),
        ("alpha beta gamma", 11, ["alpha beta", "gamma"]),
        ("x" * 25, 10, ["x" * 10, "x" * 10, "x" * 5]),
        ("😀" * 5, 4, ["😀😀", "😀😀", "😀"]),  # two UTF-16 units each
        ("😀" * 3, 3, ["😀", "😀", "😀"]),  # a pair is never cut in half
        ("short\n\n```\ncode\n```", 12, ["short", "```\ncode\n```"]),
        ("```\n" + "y" * 12 + "\n```", 12, ["```\nyyyy\n```"] * 3),
    ],
)
def test_splits_prefer_the_widest_boundary(text: str, limit: int, expected: list[str]) -> None:
    assert split_message(text, limit) == expected


def test_characters_are_not_cut_from_their_accents_or_joiners() -> None:
    family = "👩\u200d👩\u200d👧"  # one emoji, 8 UTF-16 units
    accented = "e\u0301"
    assert split_message(family * 2, 10) == [family, family]
    assert split_message(accented * 3, 5) == [accented * 2, accented]


def test_a_limit_below_one_astral_character_is_refused() -> None:
    with pytest.raises(ValueError):
        split_message("text", 1)


def test_a_long_answer_splits_within_the_limit_in_utf16_without_losing_anything() -> None:
    words = ["alpha", "beta", "𝔤𝔞𝔪𝔪𝔞", "😀ok", "δέλτα", "[1]", "**bold**", "`x`", "漢字"]
    rng = random.Random(7)
    paragraphs = [" ".join(rng.choices(words, k=rng.randint(3, 200))) for _ in range(800)]
    text = "\n\n".join(paragraphs)
    text = text[: text.rfind("\n\n", 0, 100_000)]
    assert utf16_len(text) > len(text) > 90_000

    parts = split_message(text)

    assert len(parts) > 2
    assert all(0 < len(part.encode("utf-16-le")) <= 28_000 for part in parts)
    assert any(utf16_len(part) > 13_500 for part in parts)  # counted in UTF-16, not len()
    assert all(part == part.strip() for part in parts)
    assert all(part.encode("utf-16-le") for part in parts)  # no lone surrogate
    assert non_space("".join(parts)) == non_space(text)
    assert "\n\n".join(parts) == text  # cut only between paragraphs


def test_a_long_code_block_is_closed_and_reopened_in_the_next_part() -> None:
    body = "\n".join(f"    value_{n} = compute({n})  # step {n} ✓" for n in range(400))
    text = f"Here is the script:\n\n```python title=run.py\n{body}\n```\n\nThat is all."
    parts = split_message(text, 1000)

    assert all(utf16_len(part) <= 1000 for part in parts)
    code_parts = [part for part in parts if "```" in part]
    assert len(code_parts) > 2
    for part in code_parts:
        assert part.startswith("```python title=run.py\n")
        assert part.count("```") == 2 and "\n```\n" in part + "\n"
    fences = ("```python title=run.py", "```")
    rejoined = [line for part in parts for line in part.split("\n") if line not in fences]
    original = [line for line in text.split("\n") if line not in fences]
    assert [line for line in rejoined if line] == [line for line in original if line]


def test_a_code_line_longer_than_the_limit_is_cut_inside_fences() -> None:
    parts = split_message("```\n" + "z" * 50 + "\n```", 20)
    assert all(utf16_len(part) <= 20 and part.startswith("```\n") for part in parts)
    assert "".join(part[4:-4] for part in parts) == "z" * 50


def test_an_unclosed_code_block_is_closed_when_split() -> None:
    parts = split_message("```sh\n" + "\n".join(["line"] * 10), 20)
    assert all(part.startswith("```sh\n") and part.count("```") == 2 for part in parts)


def test_a_part_cut_inside_a_nested_list_does_not_start_as_code() -> None:
    text = to_teams_markdown("- a\n  - b\n    - " + "\n    - ".join(f"item {n}" for n in range(40)))
    parts = split_message(text, 100)
    assert len(parts) > 2
    assert all(not part.startswith("    ") for part in parts)
    assert all("code_block" not in node_types(part) for part in parts)
    assert non_space("".join(parts)) == non_space(text)


def test_converted_answers_split_cleanly() -> None:
    markdown = "\n\n".join(
        f"## Part {n}\n\n- **point** {n} [1]\n- see [docs](https://x.y) 🚀" for n in range(300)
    )
    text = to_teams_markdown(markdown)
    parts = split_message(text, 500)
    assert all(utf16_len(part) <= 500 for part in parts)
    assert "\n\n".join(parts) == text


# ----- citations, AI label, feedback -----


def cite(
    index: int, title: str = "", url: str | None = None, snippet: str | None = None
) -> Citation:
    return Citation(index=index, title=title or f"Doc {index}", url=url, snippet=snippet)


def test_only_citations_marked_in_the_text_are_sent_in_position_order() -> None:
    citations = [
        cite(n, url=f"https://docs.example/{n}", snippet=f"about {n}") for n in range(1, 9)
    ]
    text = "First [7], then [3] and again [7]; [42] is unknown."

    entity = citation_entity(citations, text)

    assert [claim["position"] for claim in entity["citation"]] == [3, 7]
    assert entity["citation"][0] == {
        "@type": "Claim",
        "position": 3,
        "appearance": {
            "@type": "DigitalDocument",
            "name": "Doc 3",
            "url": "https://docs.example/3",
            "abstract": "about 3",
        },
    }


def test_the_answers_numbers_are_kept_so_text_and_entity_agree() -> None:
    text = to_teams_markdown("Claims [3] and [7].")
    fields = ai_message_fields(text, [cite(3), cite(7)], feedback=False)
    positions = [claim["position"] for claim in fields["entities"][0]["citation"]]
    assert fields["text"] == "Claims [3] and [7]."
    assert all(f"[{position}]" in fields["text"] for position in positions)


def test_a_repeated_index_is_cited_once() -> None:
    entity = citation_entity([cite(1, "first"), cite(1, "second")], "x [1]")
    assert [claim["appearance"]["name"] for claim in entity["citation"]] == ["first"]


def test_markers_inside_code_are_not_citations() -> None:
    text = "Use `a[1]`:\n\n```\nb[2] = 0\n```\n\nas documented [3]."
    assert cited_positions(text) == [3]
    entity = citation_entity([cite(1), cite(2), cite(3)], text)
    assert [claim["position"] for claim in entity["citation"]] == [3]


def test_at_most_twenty_citations_are_sent() -> None:
    citations = [cite(n) for n in range(1, 31)]
    text = " ".join(f"claim [{n}]" for n in reversed(range(1, 31)))
    positions = [claim["position"] for claim in citation_entity(citations, text)["citation"]]
    assert positions == list(range(1, MAX_CITATIONS + 1))


def test_names_and_abstracts_are_cut_to_what_teams_accepts() -> None:
    title = "Quarterly report 𝔞𝔟𝔠 " * 10  # astral letters: UTF-16 is longer than len()
    snippet = "The  revenue\ngrew in every region. " * 20
    appearance = citation_entity([cite(1, title, snippet=snippet)], "[1]")["citation"][0][
        "appearance"
    ]
    assert utf16_len(appearance["name"]) <= MAX_NAME < utf16_len(title)
    assert utf16_len(appearance["abstract"]) <= MAX_ABSTRACT
    assert appearance["name"].endswith("…") and appearance["abstract"].endswith("…")
    assert appearance["abstract"].startswith("The revenue grew in every region. The")
    assert appearance["name"].encode("utf-16-le")  # not cut inside a surrogate pair


@pytest.mark.parametrize(
    ("citation", "expected"),
    [
        (cite(1, "T", "https://x.y/a"), {"name": "T", "url": "https://x.y/a", "abstract": "T"}),
        (
            Citation(index=1, title=" ", url="https://x.y/a"),
            {"name": "https://x.y/a", "url": "https://x.y/a", "abstract": "https://x.y/a"},
        ),
        (Citation(index=1, title=""), {"name": "Source 1", "abstract": "Source 1"}),
        (cite(1, "T", "file:///etc/passwd", "s"), {"name": "T", "abstract": "s"}),
    ],
)
def test_citations_without_a_title_url_or_snippet_still_show(
    citation: Citation, expected: dict[str, str]
) -> None:
    appearance = citation_entity([citation], "[1]")["citation"][0]["appearance"]
    assert appearance == {"@type": "DigitalDocument", **expected}


@pytest.mark.parametrize(
    ("citations", "text"),
    [([], "No sources."), ([cite(1)], "Nothing cited."), ([cite(1)], "`[1]` only in code")],
)
def test_without_citations_the_entity_still_carries_the_ai_label(
    citations: list[Citation], text: str
) -> None:
    assert citation_entity(citations, text) == {
        "type": "https://schema.org/Message",
        "@type": "Message",
        "@context": "https://schema.org",
        "@id": "",
        "additionalType": ["AIGeneratedContent"],
    }


def test_the_ai_message_carries_text_entity_and_feedback() -> None:
    fields = ai_message_fields("It is [1].", [cite(1)], feedback=True)
    assert fields["type"] == "message"
    assert fields["text"] == "It is [1]."
    assert fields["textFormat"] == "markdown"
    assert fields["channelData"] == {"feedbackLoop": {"type": "default"}}
    [entity] = fields["entities"]
    assert entity["additionalType"] == ["AIGeneratedContent"]
    assert entity["citation"][0]["position"] == 1


def test_feedback_buttons_are_left_out_when_not_asked_for() -> None:
    fields = ai_message_fields("Plain.", [], feedback=False)
    assert fields["channelData"] == {}
    assert "feedbackLoopEnabled" not in json.dumps(fields)


def has_shape(value: Any, example: Any) -> bool:
    """Whether `value` has every key `example` has, at every depth, with values of the same
    JSON type (lists compared by their first item)."""
    if isinstance(example, dict):
        return isinstance(value, dict) and all(
            key in value and has_shape(value[key], item) for key, item in example.items()
        )
    if isinstance(example, list):
        return isinstance(value, list) and (not example or has_shape(value[0], example[0]))
    return type(value) is type(example)


def without(key: str, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without(key, v) for k, v in value.items() if k != key}
    if isinstance(value, list):
        return [without(key, item) for item in value]
    return value


def test_the_entity_has_the_shape_of_microsofts_example() -> None:
    """msteams-docs' own outbound example (format-ai-bot-messages.md), citation and
    sensitivity label; we send no sensitivity label (`usageInfo`), and add the `type`
    the Bot Framework needs to route the entity (the docs' sample leaves it out)."""
    example = json.loads(
        (FIXTURES / "msdocs_outbound_message_citation_sensitivity.json").read_text("utf-8")
    )
    [expected] = example["entities"]
    claim = expected["citation"][0]
    citation = Citation(index=claim["position"], title=claim["appearance"]["name"])

    fields = ai_message_fields(example["text"], [citation], feedback=False)
    [entity] = fields["entities"]

    assert has_shape(entity, without("usageInfo", expected))
    assert {k: entity[k] for k in ("@type", "@context", "@id")} == {
        k: expected[k] for k in ("@type", "@context", "@id")
    }
    assert entity["type"] == "https://schema.org/Message"
    ours = entity["citation"][0]
    assert ours.keys() == claim.keys()
    assert ours["@type"] == claim["@type"] and ours["position"] == claim["position"]
    assert ours["appearance"]["@type"] == claim["appearance"]["@type"]
    assert ours["appearance"]["name"] == claim["appearance"]["name"]
    assert fields["type"] == example["type"]
