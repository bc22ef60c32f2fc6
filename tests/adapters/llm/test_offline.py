"""Without a model, the assistant says so and still shows what the knowledge base found:
one section per passage, its Markdown kept, cited rather than repeated under Sources."""

from __future__ import annotations

from markdown_it import MarkdownIt

from adapters.llm.offline import MORE, OfflineChatModel, excerpt
from core.knowledge import Passage, cited
from core.model import ChatMessage, ChatRequest, ModelEvent, ModelText

QUESTION = (ChatMessage(role="user", content="How do I reset my password?"),)
RESET = "Go to id.example.com\nand click **Reset**:\n\n```sh\nreset-password --user me\n```"


async def answer(request: ChatRequest) -> tuple[list[ModelEvent], str]:
    events = [event async for event in OfflineChatModel().stream(request)]
    return events, "".join(e.text for e in events if isinstance(e, ModelText))


def headings(markdown: str) -> list[str]:
    tokens = MarkdownIt("commonmark").parse(markdown)
    return [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]


def fences(markdown: str) -> list[str]:
    return [t.content for t in MarkdownIt("commonmark").parse(markdown) if t.type == "fence"]


async def test_says_no_model_is_configured_and_how_to_configure_one() -> None:
    events, text = await answer(ChatRequest(messages=QUESTION))

    assert "No language model is configured" in text
    assert "OPENAI_API_KEY" in text and "OPENAI_BASE_URL" in text and "Ollama" in text
    assert "knowledge base had nothing" in text
    assert all(isinstance(e, ModelText) for e in events)  # never a tool call, never usage


async def test_each_of_the_best_passages_is_a_section_headed_by_its_title_and_citation() -> None:
    passages = (
        Passage(id="a", title="Holidays", text="Ten days a year.", score=0.2),
        Passage(id="b", title="Password reset", text=RESET, url="https://wiki.example.com/pw",
                score=0.9),
        Passage(id="c", title="Badges", text="Ask reception.", score=0.1),
        Passage(id="d", title="SSO", text="Single sign-on.\n\n- one\n- two", score=0.8),
    )

    events, text = await answer(ChatRequest(messages=QUESTION, passages=passages))

    assert len(events) > 3  # streamed in pieces
    # The best three, in their numbers' order; the passage's Markdown as written.
    assert headings(text) == ["Holidays [1]", "Password reset [2]", "SSO [4]"]
    assert f"### Password reset [2]\n\n{RESET}\n\n### SSO [4]" in text
    assert fences(text) == ["reset-password --user me\n"]
    assert "Ask reception" not in text and "nothing" not in text
    # The link is left to the citation: the source is listed once, under the answer.
    assert "wiki.example.com/pw" not in text
    sources = cited(text, passages)
    assert [c.index for c in sources] == [1, 2, 4]
    assert [c.url for c in sources] == [None, "https://wiki.example.com/pw", None]
    assert [c.snippet for c in sources] == [None, None, None]  # quoted once, above


def test_a_long_passage_keeps_its_leading_blocks_whole() -> None:
    text = "First paragraph.\n\n```py\nprint(1)\n```\n\n" + "Later prose. " * 100

    shown = excerpt(text, 200)

    assert shown == f"First paragraph.\n\n```py\nprint(1)\n```\n\n{MORE}"


def test_a_first_block_too_long_is_cut_at_a_word_or_a_line_and_its_fence_closed() -> None:
    prose = excerpt("A fairly long sentence " * 20, 60)
    code = excerpt("~~~sh\n" + "".join(f"echo line {n}\n" for n in range(50)) + "~~~\n", 60)

    assert prose == f"A fairly long sentence A fairly long sentence A fairly {MORE}"
    assert code == f"~~~sh\necho line 0\necho line 1\necho line 2\necho line 3\n~~~\n\n{MORE}"
    assert fences(code) == ["echo line 0\necho line 1\necho line 2\necho line 3\n"]


def test_a_paraphrased_passage_keeps_its_snippet() -> None:
    passage = Passage(id="a", title="Leave", text="Everyone gets 25 days of paid leave a year.")

    [citation] = cited("You get 25 days [1].", (passage,))

    assert citation.snippet == passage.text
