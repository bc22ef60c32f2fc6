"""Long answers are split into parts that fit, at the widest boundary there is, without
breaking code fences or characters, under whichever measure the platform counts in."""

from __future__ import annotations

import random
import unicodedata

import pytest

from core.text.split import Measure, cut, split_message, utf16_len

MEASURES = pytest.mark.parametrize("measure", [len, utf16_len], ids=["code points", "utf-16"])

FAMILY = "👩\u200d👩\u200d👧"  # one emoji: 5 code points, 8 UTF-16 units
ACCENTED = "e\u0301"  # "é" as a letter and a combining accent
FLAG = "🇫🇷"  # two regional indicators


def non_space(text: str) -> str:
    return "".join(text.split())


def test_empty_or_blank_text_gives_no_parts() -> None:
    assert split_message("", 10) == []
    assert split_message("\n \n\n", 10) == []


def test_text_that_fits_is_one_part_without_the_blank_lines_around_it() -> None:
    assert split_message("\n\nhello\nworld\n\n", 100) == ["hello\nworld"]


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("first one\n\nsecond one", 12, ["first one", "second one"]),
        ("a\n\nb\n\nc\n\nd", 4, ["a\n\nb", "c\n\nd"]),
        ("red\ngreen\nblue", 9, ["red\ngreen", "blue"]),
        ("lorem ipsum dolor", 11, ["lorem ipsum", "dolor"]),
    ],
)
def test_parts_are_cut_at_paragraphs_then_lines_then_words(
    text: str, limit: int, expected: list[str]
) -> None:
    assert split_message(text, limit) == expected


def test_paragraphs_that_fit_together_share_a_part() -> None:
    text = "\n\n".join(f"paragraph {n}" for n in range(20))
    parts = split_message(text, 60)
    assert len(parts) > 1
    assert "\n\n".join(parts) == text  # every cut is at a paragraph boundary
    assert all(len(part) <= 60 for part in parts)


def test_a_single_over_long_line_is_cut_between_words() -> None:
    line = " ".join(f"word{n}" for n in range(50))
    parts = split_message(line, 30)
    assert all(len(part) <= 30 for part in parts)
    assert " ".join(parts) == line


def test_a_word_longer_than_the_limit_is_cut_anywhere() -> None:
    assert split_message("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_a_cut_code_fence_is_reopened_in_the_next_part() -> None:
    body = "\n".join(f"step_{n}()" for n in range(40))
    text = f"Run this:\n\n```python title=run.py\n{body}\n```\n\nDone."
    parts = split_message(text, 120)

    code = [part for part in parts if "```" in part]
    assert len(code) > 1
    for part in code:
        assert part.startswith("```python title=run.py\n") and "\n```" in part
        assert part.count("```") == 2
    fences = ("```python title=run.py", "```")
    kept = [line for part in parts for line in part.split("\n") if line and line not in fences]
    assert kept == [line for line in text.split("\n") if line and line not in fences]


def test_a_code_block_that_fits_is_kept_whole() -> None:
    code = "```\n" + "\n".join(f"line {n}" for n in range(10)) + "\n```"
    text = f"intro\n\n{code}\n\noutro"
    assert code in split_message(text, len(code) + 2)


def test_an_unclosed_fence_is_closed_and_a_long_code_line_is_cut_inside_it() -> None:
    parts = split_message("~~~\n" + "z" * 50, 20)
    assert len(parts) == 5 and all(len(part) <= 20 for part in parts)
    assert all(part.startswith("~~~\n") and part.endswith("\n~~~") for part in parts)
    assert "".join(part[4:-4] for part in parts) == "z" * 50


def test_inline_code_on_one_line_does_not_open_a_block() -> None:
    assert split_message("```a``` b\n\nc", 9) == ["```a``` b", "c"]


def test_emoji_count_two_in_utf16_and_one_as_code_points() -> None:
    text = "😀" * 5
    assert split_message(text, 4) == ["😀😀😀😀", "😀"]
    assert split_message(text, 4, measure=utf16_len) == ["😀😀", "😀😀", "😀"]


def test_a_surrogate_pair_is_never_cut_in_half() -> None:
    parts = split_message("😀" * 3, 3, measure=utf16_len)
    assert parts == ["😀", "😀", "😀"]
    assert all(part.encode("utf-16-le") for part in parts)  # no lone surrogate


def test_combining_marks_and_joiners_stay_with_their_character() -> None:
    assert split_message(ACCENTED * 3, 5) == [ACCENTED * 2, ACCENTED]
    assert split_message(FAMILY * 2, 10, measure=utf16_len) == [FAMILY, FAMILY]
    assert split_message(FAMILY * 2, 6) == [FAMILY, FAMILY]


def test_a_flag_is_not_cut_between_its_two_letters() -> None:
    assert split_message(FLAG * 3, 5) == [FLAG * 2, FLAG]


def test_a_cluster_longer_than_the_limit_is_cut_between_its_characters() -> None:
    parts = split_message(FAMILY, 4, measure=utf16_len)
    assert "".join(parts) == FAMILY
    assert all(utf16_len(part) <= 4 and part.encode("utf-16-le") for part in parts)


def test_fences_are_dropped_rather_than_overflow_when_only_half_an_emoji_fits_between() -> None:
    # Between "```" fences a part of 9 UTF-16 units has room for one unit: not an emoji.
    parts = split_message("```\n😀😀\n```", 9, measure=utf16_len)
    assert all(utf16_len(part) <= 9 for part in parts)
    assert non_space("".join(parts)) == non_space("```\n😀😀\n```")


@pytest.mark.parametrize(("limit", "measure"), [(0, len), (1, utf16_len)])
def test_a_limit_that_cannot_hold_one_character_is_refused(limit: int, measure: Measure) -> None:
    with pytest.raises(ValueError, match="at least"):
        split_message("text", limit, measure=measure)


@MEASURES
def test_random_answers_split_within_the_limit_without_losing_anything(measure: Measure) -> None:
    words = ["alpha", "beta", "𝔤𝔞𝔪𝔪𝔞", "😀ok", "δέλτα", ACCENTED * 3, FAMILY, FLAG, "漢字"]
    rng = random.Random(11)
    for limit in (12, 40, 200):
        paragraphs = [" ".join(rng.choices(words, k=rng.randint(1, 30))) for _ in range(60)]
        text = "\n\n".join(paragraphs)

        parts = split_message(text, limit, measure=measure)

        assert all(0 < measure(part) <= limit for part in parts)
        assert all(part == part.strip() for part in parts)
        assert all(part.encode("utf-16-le") for part in parts)  # no lone surrogate
        assert all(not unicodedata.combining(part[0]) for part in parts)
        assert non_space("".join(parts)) == non_space(text)


@MEASURES
def test_random_code_blocks_stay_fenced_and_within_the_limit(measure: Measure) -> None:
    rng = random.Random(5)
    lines = ["x = 1", "print('😀')", "# " + ACCENTED * 4, "y" * 70, ""]
    body = "\n".join(rng.choices(lines, k=80))
    parts = split_message(f"intro\n\n```js\n{body}\n```\n\noutro", 50, measure=measure)
    assert all(measure(part) <= 50 for part in parts)
    code = [part for part in parts if part not in ("intro", "outro")]
    assert all(part.startswith("```js\n") and part.count("```") == 2 for part in code)


def test_cut_gives_whole_clusters_of_at_most_the_limit() -> None:
    assert list(cut("ab" + ACCENTED + "cd", 3)) == ["ab", ACCENTED + "c", "d"]
    assert list(cut("", 3)) == [""]
