"""Titles from a first question: its first line that says something, without Markdown
markers, cut at a word."""

from __future__ import annotations

from core.titles import TITLE_CHARS, TITLE_PROMPT, Titles, first_line_title
from tests.fakes.scripted import STALL, ScriptedChatModel, says


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


async def test_the_models_title_is_taken_once_the_answer_began() -> None:
    model = ScriptedChatModel([says('"Resetting the VPN"')])
    titling = Titles(model=model).begin("How do I reset my VPN?")
    assert model.requests == []  # not before the answer's own text is coming
    titling.answer_began()
    assert await titling.title(wait=5) == "Resetting the VPN"
    [asked] = model.requests
    assert asked.messages[0].content == TITLE_PROMPT


async def test_under_load_a_title_is_the_first_line_and_the_model_is_not_asked() -> None:
    model = ScriptedChatModel([says("A model title")])
    titling = Titles(model=model, quiet=lambda: False).begin("How do I reset my VPN?")
    titling.answer_began()
    assert await titling.title() == "How do I reset my VPN?"
    assert model.requests == []


async def test_a_model_slower_than_the_answer_leaves_the_first_line() -> None:
    model = ScriptedChatModel([[*says("Never finished"), STALL]])
    titling = Titles(model=model).begin("How do I reset my VPN?")
    titling.answer_began()
    assert await titling.title(wait=0.01) == "How do I reset my VPN?"
