"""Without a model, the assistant says so and still shows what the knowledge base found."""

from __future__ import annotations

from adapters.llm.offline import OfflineChatModel
from core.knowledge import Passage, cited
from core.model import ChatMessage, ChatRequest, ModelEvent, ModelText

QUESTION = (ChatMessage(role="user", content="How do I reset my password?"),)


async def answer(request: ChatRequest) -> tuple[list[ModelEvent], str]:
    events = [event async for event in OfflineChatModel().stream(request)]
    return events, "".join(e.text for e in events if isinstance(e, ModelText))


async def test_says_no_model_is_configured_and_how_to_configure_one() -> None:
    events, text = await answer(ChatRequest(messages=QUESTION))

    assert "No language model is configured" in text
    assert "OPENAI_API_KEY" in text and "OPENAI_BASE_URL" in text and "Ollama" in text
    assert "knowledge base had nothing" in text
    assert all(isinstance(e, ModelText) for e in events)  # never a tool call, never usage


async def test_lists_the_best_passages_with_sources_as_citations() -> None:
    passages = (
        Passage(id="a", title="Holidays", text="Ten days a year.", score=0.2),
        Passage(id="b", title="Password reset", text="Go to  id.example.com\nand click Reset.",
                url="https://wiki.example.com/pw", score=0.9),
        Passage(id="c", title="Badges", text="Ask reception.", score=0.1),
        Passage(id="d", title="SSO", text="Single sign-on " * 40, score=0.8),
    )

    events, text = await answer(ChatRequest(messages=QUESTION, passages=passages))

    assert len(events) > 3  # streamed in pieces
    assert "[2] **Password reset** — Go to id.example.com and click Reset. " \
           "(https://wiki.example.com/pw)" in text
    assert "[1] **Holidays** — Ten days a year." in text
    assert "[3]" not in text  # only the best three
    sso = next(line for line in text.splitlines() if line.startswith("[4]"))
    assert sso.endswith(" …") and len(sso) < 330
    assert [c.index for c in cited(text, passages)] == [1, 2, 4]
    assert "nothing" not in text
