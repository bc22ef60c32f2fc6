"""Markdown answers are written as Slack mrkdwn and split to fit Slack's message size."""

from __future__ import annotations

import random

import pytest

from adapters.slack.mrkdwn import split_message, to_mrkdwn


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("**bold** and __bold__", "*bold* and *bold*"),
        ("*italic* and _italic_", "_italic_ and _italic_"),
        ("~~gone~~", "~gone~"),
        ("***both***", "_*both*_"),
        ("*a **b** c*", "_a *b* c_"),
        ("**a *b* c**", "*a _b_ c*"),
        ("`a < b && c`", "`a &lt; b &amp;&amp; c`"),
        ("`*not bold*`", "`*not bold*`"),
    ],
)
def test_inline_formatting_uses_slack_markers(markdown: str, expected: str) -> None:
    assert to_mrkdwn(markdown) == expected


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("[the docs](https://x.y/docs)", "<https://x.y/docs|the docs>"),
        ("[https://x.y](https://x.y)", "<https://x.y>"),
        ("<https://x.y>", "<https://x.y>"),
        ("<a@b.c>", "<mailto:a@b.c|a@b.c>"),
        ("[Q&A](https://x.y/?a=1&b=2)", "<https://x.y/?a=1&amp;b=2|Q&amp;A>"),
        ("[**bold** link](https://x.y)", "<https://x.y|*bold* link>"),
        ("![a diagram](https://x.y/d.png)", "<https://x.y/d.png|a diagram>"),
        ("![](https://x.y/d.png)", "<https://x.y/d.png>"),
        ("see https://x.y", "see https://x.y"),
    ],
)
def test_links_keep_their_text(markdown: str, expected: str) -> None:
    assert to_mrkdwn(markdown) == expected


def test_a_bar_in_link_text_cannot_end_the_label() -> None:
    assert to_mrkdwn("[a | b > c](https://x.y)") == "<https://x.y|a ¦ b &gt; c>"


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("AT&T", "AT&amp;T"),
        ("1 < 2 > 0", "1 &lt; 2 &gt; 0"),
        ("&amp; &lt;x&gt;", "&amp; &lt;x&gt;"),
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("say <b>hi</b> now", "say &lt;b&gt;hi&lt;/b&gt; now"),
        ("<div>\n<p>block</p>\n</div>", "&lt;div&gt;\n&lt;p&gt;block&lt;/p&gt;\n&lt;/div&gt;"),
    ],
)
def test_text_and_html_are_escaped_once_and_shown(markdown: str, expected: str) -> None:
    assert to_mrkdwn(markdown) == expected


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("# Title\nText", "*Title*\n\nText"),
        ("## A **bold** title\n\nText", "*A bold title*\n\nText"),
        ("Setext\n===", "*Setext*"),
        ("One\n\n\n\nTwo", "One\n\nTwo"),
        ("soft\nbreak", "soft\nbreak"),
        ("hard  \nbreak", "hard\nbreak"),
        ("hard\\\nbreak", "hard\nbreak"),
        ("above\n\n---\n\nbelow", "above\n\n———\n\nbelow"),
        ("> quoted\n> lines\n>\n> again", "> quoted\n> lines\n>\n> again"),
        ("> - in a quote", "> • in a quote"),
        ("text  \n\n\n", "text"),
        ("", ""),
    ],
)
def test_blocks_are_laid_out_for_slack(markdown: str, expected: str) -> None:
    assert to_mrkdwn(markdown) == expected


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("- a\n- b", "• a\n• b"),
        ("* a\n+ b", "• a\n\n• b"),
        (
            "- a\n  - b\n    - c\n      - d",
            "• a\n    ◦ b\n        ▪ c\n            • d",
        ),
        ("1. a\n2. b", "1. a\n2. b"),
        ("3. a\n4. b", "3. a\n4. b"),
        ("1. a\n   - b", "1. a\n    ◦ b"),
        ("- one\n\n  more on one\n- two", "• one\n\n    more on one\n\n• two"),
        ("- a\n-\n- c", "• a\n•\n• c"),
    ],
)
def test_lists_use_bullets_and_keep_their_numbers(markdown: str, expected: str) -> None:
    assert to_mrkdwn(markdown) == expected


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("```python\nif a < b:\n    pass\n```", "```\nif a &lt; b:\n    pass\n```"),
        ("~~~\n*raw* _text_ [x](y)\n~~~", "```\n*raw* _text_ [x](y)\n```"),
        ("    indented\n      code", "```\nindented\n  code\n```"),
        ("- item\n\n  ```\n  code\n  ```", "• item\n\n    ```\n    code\n    ```"),
    ],
)
def test_code_blocks_are_fenced_and_verbatim(markdown: str, expected: str) -> None:
    assert to_mrkdwn(markdown) == expected


def test_tables_become_padded_columns_in_a_code_block() -> None:
    markdown = (
        "| Name | Age | Site |\n"
        "|------|----:|:----:|\n"
        "| Ada | 36 | [home](https://a.example) |\n"
        "| Bob Bobson | 5 | `b<c` |\n"
    )
    assert to_mrkdwn(markdown) == (
        "```\n"
        "Name       | Age |           Site\n"
        "-----------+-----+-------------------------\n"
        "Ada        |  36 | home (https://a.example)\n"
        "Bob Bobson |   5 |           b&lt;c\n"
        "```"
    )


def non_space(text: str) -> str:
    return "".join(text.split())


def test_nothing_to_split_gives_no_chunks() -> None:
    assert split_message("") == []
    assert split_message("\n \n\n") == []


def test_a_short_message_is_one_chunk() -> None:
    assert split_message("\n\nhello\nworld\n\n") == ["hello\nworld"]


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("one two\n\nthree four", 12, ["one two", "three four"]),
        ("aa\n\nbb\n\ncc", 6, ["aa\n\nbb", "cc"]),
        ("one\ntwo\nthree", 8, ["one\ntwo", "three"]),
        ("alpha beta gamma", 11, ["alpha beta", "gamma"]),
        ("x" * 25, 10, ["x" * 10, "x" * 10, "x" * 5]),
        ("short\n\n```\ncode\n```", 12, ["short", "```\ncode\n```"]),
        ("```\n" + "y" * 12 + "\n```", 12, ["```\nyyyy\n```"] * 3),
    ],
)
def test_splits_prefer_the_widest_boundary(text: str, limit: int, expected: list[str]) -> None:
    assert split_message(text, limit) == expected


def test_a_code_block_that_fits_is_not_split() -> None:
    code = "```\n" + "\n".join(f"line {n}" for n in range(10)) + "\n```"
    text = "intro paragraph\n\n" + code + "\n\noutro"
    assert code in split_message(text, len(code) + 2)


def test_a_long_answer_splits_within_the_limit_without_losing_words() -> None:
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    rng = random.Random(7)
    paragraphs = [" ".join(rng.choices(words, k=rng.randint(3, 150))) for _ in range(400)]
    text = "\n\n".join(paragraphs)[:20_000]
    chunks = split_message(text)
    assert len(chunks) > 1
    assert all(0 < len(chunk) <= 3900 for chunk in chunks)
    assert all(chunk == chunk.strip() for chunk in chunks)
    assert non_space("\n\n".join(chunks)) == non_space(text)


def test_a_long_code_block_is_split_with_balanced_fences() -> None:
    body = "\n".join(f"    value_{n} = compute({n})  # step {n}" for n in range(400))
    text = f"Here is the script:\n\n```python\n{body}\n```\n\nThat is all."
    chunks = split_message(text, 1000)
    assert all(len(chunk) <= 1000 for chunk in chunks)
    code_chunks = [chunk for chunk in chunks if "```" in chunk]
    assert len(code_chunks) > 1
    for chunk in code_chunks:
        assert chunk.count("```") == 2 * chunk.count("```python\n") == 2
    rejoined = "\n\n".join(chunks).replace("```python", "").replace("```", "")
    assert non_space(rejoined) == non_space(text.replace("```python", "").replace("```", ""))


def test_a_code_line_longer_than_the_limit_is_cut_inside_fences() -> None:
    chunks = split_message("```\n" + "z" * 50 + "\n```", 20)
    assert all(len(chunk) <= 20 and chunk.startswith("```\n") for chunk in chunks)
    assert "".join(chunk[4:-4] for chunk in chunks) == "z" * 50


def test_an_unclosed_code_block_is_closed_when_split() -> None:
    chunks = split_message("```\n" + "\n".join(["line"] * 10), 20)
    assert all(chunk.count("```") == 2 for chunk in chunks)


def test_converted_answers_split_cleanly() -> None:
    markdown = "\n\n".join(
        f"## Part {n}\n\n- **point** {n}\n- see [docs](https://x.y)" for n in range(300)
    )
    chunks = split_message(to_mrkdwn(markdown), 500)
    assert all(len(chunk) <= 500 for chunk in chunks)
    assert "\n\n".join(chunks) == to_mrkdwn(markdown)  # cut only between paragraphs
