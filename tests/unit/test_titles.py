"""Titles from a first question: its first line that says something, without Markdown
markers, cut at a word."""

from __future__ import annotations

from core.titles import TITLE_CHARS, first_line_title


def test_the_first_line_that_says_something_is_the_title() -> None:
    assert first_line_title("\n\n  How do I   reset my VPN?\nThanks!") == "How do I reset my VPN?"


def test_markdown_markers_are_not_part_of_the_title() -> None:
    assert first_line_title("## **Printer** on floor 3") == "Printer on floor 3"
    assert first_line_title("> - `kubectl` fails") == "kubectl fails"


def test_a_long_first_line_is_cut_at_a_word_with_an_ellipsis() -> None:
    title = first_line_title("Why does the deployment pipeline fail " + "again " * 30)
    assert len(title) <= TITLE_CHARS and title.endswith("again…")


def test_a_message_without_words_has_no_title() -> None:
    assert first_line_title("  \n\t\n") == ""
