"""The web chat's conversation list, answer ratings and source view over real HTTP: each
person sees only their own, and a document only when retrieval would show it to them."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp.test_utils import TestClient

from adapters.ingest.pipeline import ingest
from bots.knowledge import ingest_options, knowledge_index
from tests.e2e.conftest import MakeSettings, restricted_to_group, services, serving
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.fakes.qdrant_server import FakeQdrant

Client = TestClient[Any, Any]
KEYS = "alice:alice-key-0123456789,bob:bob-key-0123456789"
ALICE = {"Authorization": "Bearer alice-key-0123456789"}
BOB = {"Authorization": "Bearer bob-key-0123456789"}


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


async def ask(client: Client, message: str, headers: dict[str, str], **body: Any) -> Any:
    response = await client.post(
        "/api/v1/chat", json={"message": message, **body}, headers=headers
    )
    assert response.status == 200, await response.text()
    return await response.json()


async def error(response: Any, status: int) -> str:
    assert response.status == status, await response.text()
    body = await response.json()
    assert set(body) >= {"error"} and isinstance(body["error"], str)
    return str(body["error"])


async def test_the_list_is_the_callers_own_newest_first_titled_and_paged(
    make_settings: MakeSettings, llm: FakeOpenAI
) -> None:
    async with serving(make_settings(api_keys=KEYS)) as client:
        first = await ask(client, "  How do I\n reset my VPN password? " + "x" * 200, ALICE)
        second = await ask(client, "Where is the printer?", ALICE)
        await ask(client, "bob's own question", BOB)
        await ask(client, "and on the first", ALICE, conversation_id=first["conversation_id"])

        listed = await (await client.get("/api/v1/conversations", headers=ALICE)).json()
        [top, below] = listed["conversations"]
        assert "next" not in listed
        assert [top["id"], below["id"]] == [first["conversation_id"], second["conversation_id"]]
        # Named by the model from each first question (the fake's titles quote three words).
        assert top["title"] == "Title: How do I"
        assert below["title"] == "Title: Where is the"
        assert top["updated_at"] > below["updated_at"]

        page = await (await client.get("/api/v1/conversations?limit=1", headers=ALICE)).json()
        assert [c["id"] for c in page["conversations"]] == [top["id"]]
        rest = await client.get(
            f"/api/v1/conversations?limit=1&cursor={page['next']}", headers=ALICE
        )
        body = await rest.json()
        assert [c["id"] for c in body["conversations"]] == [below["id"]] and "next" not in body

        bobs = await (await client.get("/api/v1/conversations", headers=BOB)).json()
        assert [c["title"] for c in bobs["conversations"]] == ["Title: bob's own question"]
        other = await client.get(f"/api/v1/conversations/{top['id']}", headers=BOB)
        assert await error(other, 404) == "unknown conversation"

        await error(await client.get("/api/v1/conversations"), 401)
        await error(await client.get("/api/v1/conversations?cursor=nonsense", headers=ALICE), 400)
        await error(await client.get("/api/v1/conversations?limit=many", headers=ALICE), 400)


async def test_feedback_on_ones_own_answer_is_stored_like_slack_and_teams_feedback(
    make_settings: MakeSettings, llm: FakeOpenAI
) -> None:
    async with serving(make_settings(api_keys=KEYS)) as client:
        answer = await ask(client, "rate me", ALICE)
        cid, turn = answer["conversation_id"], answer["turn_id"]
        url = f"/api/v1/conversations/{cid}/turns/{turn}/feedback"

        response = await client.post(url, json={"rating": "up"}, headers=ALICE)
        assert response.status == 200
        assert await response.json() == {"turn_id": turn, "rating": "up"}
        feedback = services(client).feedback
        assert await feedback.ratings(turn) == {"web:local:alice": "up"}
        await client.post(url, json={"rating": "down"}, headers=ALICE)
        assert await feedback.ratings(turn) == {"web:local:alice": "down"}
        history = await (await client.get(f"/api/v1/conversations/{cid}", headers=ALICE)).json()
        assert [(t["role"], t.get("rating")) for t in history["turns"]] == [
            ("user", None), ("assistant", "down")
        ]

        # Someone else's conversation, a question rather than an answer, a made-up turn.
        await error(await client.post(url, json={"rating": "up"}, headers=BOB), 404)
        history = await (await client.get(f"/api/v1/conversations/{cid}", headers=ALICE)).json()
        question = next(t["id"] for t in history["turns"] if t["role"] == "user")
        for other in (question, turn + 1000, "x1", "99999999999999999999999"):
            bad = f"/api/v1/conversations/{cid}/turns/{other}/feedback"
            await error(await client.post(bad, json={"rating": "up"}, headers=ALICE), 404)
        await error(await client.post(url, json={"rating": "meh"}, headers=ALICE), 400)
        await error(await client.post(url, data=b"{", headers=ALICE), 400)
        await error(await client.post(url, json={"rating": "up"}), 401)
        assert await feedback.ratings(turn) == {"web:local:alice": "down"}


async def test_a_cited_local_file_is_shown_to_those_who_may_read_it_and_nobody_else(
    make_settings: MakeSettings, llm: FakeOpenAI, tmp_path: Path
) -> None:
    folder = tmp_path / "kb"
    write(folder, "vpn.md", "# VPN\n\n## Reset your VPN password\n\nUse the VPN portal.\n\n"
                            "## Travel\n\nThe VPN works abroad.\n")
    write(folder, "salaries.md", "---\nvisibility: restricted\nallow_users: [web:local:alice]\n"
                                 "---\n# Salary bands\n\nThe VPN team's salary band is 7.\n")
    settings = make_settings(api_keys=KEYS)
    async with knowledge_index(settings) as index:
        await ingest([folder], index, options=ingest_options(settings))
    llm.script(Reply("Band 7 [1], portal [2]."))

    async with serving(settings) as client:
        answer = await ask(client, "VPN team salary band and VPN portal", ALICE)
        sources = {c["title"].split(" › ")[0]: c["source"] for c in answer["citations"]}
        assert set(sources) == {"Salary bands", "VPN"}
        assert all(s.startswith("file://") for s in sources.values())

        def view(source: str) -> str:
            return f"/api/v1/sources?source={quote(source, safe='')}"

        shown = await (await client.get(view(sources["VPN"]), headers=BOB)).json()
        assert shown["title"] == "VPN" and shown["url"] is None and shown["complete"]
        assert [p["text"] for p in shown["passages"]] == [
            "Use the VPN portal.", "The VPN works abroad."
        ]
        secret = await client.get(view(sources["Salary bands"]), headers=ALICE)
        assert "salary band is 7" in (await secret.json())["passages"][0]["text"]

        hidden = await client.get(view(sources["Salary bands"]), headers=BOB)
        missing = await client.get(view(sources["VPN"] + "x"), headers=BOB)
        assert await error(hidden, 404) == await error(missing, 404) == "unknown source"
        await error(await client.get("/api/v1/sources", headers=BOB), 400)
        await error(await client.get("/api/v1/sources?source=%00", headers=BOB), 400)
        await error(await client.get(view(sources["VPN"])), 401)


async def test_a_document_allowed_to_a_group_is_shown_to_its_members_only(
    make_settings: MakeSettings, llm: FakeOpenAI, tmp_path: Path
) -> None:
    settings = make_settings(api_keys=KEYS)
    await restricted_to_group(settings, tmp_path / "kb", group="planners",
                              members=["web:local:alice"],
                              text="# Budget\n\nThe planners get two more desks.")
    llm.script(Reply("Two more desks [1]."))

    async with serving(settings) as client:
        answer = await ask(client, "How many desks do the planners get?", ALICE)
        [source] = [c["source"] for c in answer["citations"]]
        view = f"/api/v1/sources?source={quote(source, safe='')}"

        shown = await (await client.get(view, headers=ALICE)).json()
        assert "two more desks" in shown["passages"][0]["text"]
        assert await error(await client.get(view, headers=BOB), 404) == "unknown source"


async def test_the_web_role_beside_a_qdrant_server_shows_documents_without_creating_one(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    async with FakeQdrant() as qdrant:
        settings = make_settings(qdrant_url=qdrant.base_url, api_keys=KEYS)
        async with serving(settings, role="web") as client:
            # Nothing indexed yet: a reader must not create the collection (the worker
            # creates it with its vectors).
            empty = await client.get("/api/v1/sources?source=file:///vpn.md", headers=BOB)
            assert await error(empty, 404) == "unknown source"
            async with aiohttp.ClientSession() as session:
                listed = await (await session.get(f"{qdrant.base_url}/collections")).json()
            assert listed["result"]["collections"] == []
            source = write(tmp_path / "kb", "vpn.md", "# VPN\n\nUse the VPN portal.\n")
            async with knowledge_index(settings) as index:  # `switchboard ingest`
                await ingest([source.parent], index, options=ingest_options(settings))
            view = f"/api/v1/sources?source={quote(source.resolve().as_uri(), safe='')}"
            shown = await (await client.get(view, headers=BOB)).json()
        assert [p["text"] for p in shown["passages"]] == ["Use the VPN portal."]


async def test_the_web_role_without_the_index_says_so_in_json(
    make_settings: MakeSettings,
) -> None:
    # The split layout's web role: the worker owns the embedded shard.
    async with serving(make_settings(), role="web") as client:
        response = await client.get("/api/v1/sources?source=file:///doc.md")
        assert "knowledge index" in await error(response, 503)
        assert response.headers["Retry-After"]
