"""Slack's inbound markup is read as the plain text a model should see."""

from __future__ import annotations

import pytest

from adapters.slack.markup import mentioned_users, strip_mention, to_plain_text


def test_mentioned_users_are_listed_in_order_once() -> None:
    text = "<@U2> and <@U1|ada> then <@U2> again, not <#C1> or <!subteam^S1>"
    assert mentioned_users(text) == ["U2", "U1"]


def test_text_without_mentions_mentions_nobody() -> None:
    assert mentioned_users("hello @U1 <https://x.y>") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<@UBOT> what is <@U2>'s role?", "what is <@U2>'s role?"),
        ("hey <@UBOT>, help", "hey, help"),
        ("<@UBOT>: summarise this", "summarise this"),
        ("<@UBOT|switchboard>, summarise this", "summarise this"),
        ("ask <@UBOT> now", "ask now"),
        ("thanks <@UBOT>!", "thanks!"),
        ("thanks <@UBOT>", "thanks"),
        ("  <@UBOT>   <@UBOT> twice  ", "twice"),
        ("a  <@UBOT>  b", "a b"),
        ("first line <@UBOT>\n<@UBOT> second line", "first line\nsecond line"),
        ("<@UBOT>", ""),
        ("no mention of <@UBOTTY> here", "no mention of <@UBOTTY> here"),
    ],
)
def test_mentions_of_the_bot_are_removed_with_their_gaps(text: str, expected: str) -> None:
    assert strip_mention(text, "UBOT") == expected


def test_stripping_keeps_everything_else() -> None:
    text = "line one\n\n  indented  &amp; spaced <https://x.y|link>"
    assert strip_mention(text, "UBOT") == text.strip()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text, nothing special: 2 * 3", "plain text, nothing special: 2 * 3"),
        ("<@U1> hi", "@Ada Lovelace hi"),
        ("<@U2|bob> hi", "@bob hi"),
        ("<@U3> hi", "@U3 hi"),
        ("<@U1|old-name>", "@Ada Lovelace"),
        ("see <#C123|general>", "see #general"),
        ("see <#C123>", "see #C123"),
        ("<!here> <!channel> <!everyone>", "@here @channel @everyone"),
        ("<!here|@here> <!channel|channel>", "@here @channel"),
        ("<!subteam^S123|@team> <!subteam^S456>", "@team @S456"),
        (
            "<!date^1392734382^{date} at {time}|Feb 18, 2014 at 6:39 AM PST>",
            "Feb 18, 2014 at 6:39 AM PST",
        ),
        ("<!date^1392734382^{date}>", "2014-02-18 14:39 UTC"),
        ("<https://x.y|the docs>", "the docs (https://x.y)"),
        ("<https://x.y|https://x.y>", "https://x.y"),
        ("<https://x.y>", "https://x.y"),
        ("<mailto:a@b.c|a@b.c>", "a@b.c"),
        ("<mailto:a@b.c|Ada>", "Ada (mailto:a@b.c)"),
        ("<http://example.com|example.com>", "example.com"),
        ("<https://x.y/?a=1&amp;b=2|Q &amp; A>", "Q & A (https://x.y/?a=1&b=2)"),
        ("1 &lt; 2 &amp;&amp; 3 &gt; 2", "1 < 2 && 3 > 2"),
        ("&amp;lt; stays escaped once", "&lt; stays escaped once"),
        ("a < b and <c", "a < b and <c"),
        ("unbalanced <@U1 and > too", "unbalanced <@U1 and > too"),
        ("<not an entity>", "<not an entity>"),
    ],
)
def test_markup_becomes_plain_text(text: str, expected: str) -> None:
    assert to_plain_text(text, user_names={"U1": "Ada Lovelace"}) == expected


def test_user_names_are_optional() -> None:
    assert to_plain_text("<@U1> &amp; <@U2|bob>") == "@U1 & @bob"


def test_user_names_are_not_unescaped() -> None:
    assert to_plain_text("<@U1>", user_names={"U1": "R&amp;D"}) == "@R&amp;D"
