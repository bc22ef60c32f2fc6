"""The admin ingest routes over HTTP: who may use them, what they refuse (clearly, before
anything is written), and what an upload keeps on the server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from tests.e2e.conftest import MakeSettings, read_events, serving

ADMIN = {"Authorization": "Bearer admin-key-0123456789abcdef"}
READER = {"Authorization": "Bearer reader-key-0123456789abcdef"}
KEYS = "root:admin-key-0123456789abcdef,reader:reader-key-0123456789abcdef"


def form(*files: tuple[str, bytes], options: str | None = None) -> aiohttp.FormData:
    data = aiohttp.FormData()
    if options is not None:
        data.add_field("options", options, content_type="application/json")
    for name, content in files:
        data.add_field("file", content, filename=name, content_type="text/markdown")
    return data


async def error(response: aiohttp.ClientResponse) -> str:
    body: dict[str, Any] = await response.json()
    return " ".join([body["error"], *body.get("problems", [])])


async def test_an_upload_is_kept_in_its_folder_and_reported_by_events(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = make_settings(api_keys=KEYS, admins="root", openai_base_url=None,
                             openai_api_key=None)
    async with serving(settings) as client:
        response = await client.post(
            "/api/v1/ingest/upload", headers=ADMIN,
            data=form(("guide/setup.md", b"# Setup\n\nPlug it in.\n"),
                      ("notes.txt", b"plain notes"), options='{"folder": "kit"}'),
        )
        assert response.status == 200, await response.text()
        events = await read_events(response)

    names = [name for name, _ in events]
    assert names[-1] == "report" and set(names[:-1]) <= {"progress"}
    report = events[-1][1]
    assert (report["files"], report["added"], report["passages_indexed"]) == (2, 2, 2)
    kept = tmp_path / "data" / "uploads" / "kit"
    assert (kept / "guide" / "setup.md").read_bytes() == b"# Setup\n\nPlug it in.\n"


@pytest.mark.parametrize(("headers", "status", "says"), [
    (READER, 403, "administrators only"),
    ({}, 401, "API key is required"),
    ({**ADMIN, "Origin": "https://elsewhere.example"}, 403, "another site"),
])
async def test_only_administrators_may_ingest(
    make_settings: MakeSettings, tmp_path: Path, headers: dict[str, str], status: int,
    says: str
) -> None:
    async with serving(make_settings(api_keys=KEYS, admins="root")) as client:
        response = await client.post("/api/v1/ingest", headers=headers,
                                     json={"paths": [str(tmp_path)]})
        assert response.status == status
        assert says in await error(response)


async def test_stats_and_removal_are_for_administrators(make_settings: MakeSettings) -> None:
    async with serving(make_settings(api_keys=KEYS, admins="root")) as client:
        hidden = await client.get("/api/v1/knowledge?sources=true", headers=READER)
        stats = await client.get("/api/v1/knowledge?sources=true", headers=ADMIN)
        refused = await client.delete("/api/v1/knowledge/documents?source=x", headers=READER)
        unknown = await client.delete("/api/v1/knowledge/documents?source=x", headers=ADMIN)

        assert hidden.status == 403 and refused.status == 403
        assert stats.status == 200
        body = await stats.json()
        assert body["index"].startswith("embedded Qdrant Edge shard")
        assert (body["documents"], body["passages"], body["sources"]) == (0, 0, [])
        assert unknown.status == 404 and "no document 'x'" in await error(unknown)


@pytest.mark.parametrize(("body", "says"), [
    ({"paths": ["relative/docs"]}, "paths must be absolute relative/docs"),
    ({"paths": ["/no/such/folder"]}, "no such file or directory on the server /no/such/folder"),
    ({"paths": []}, "invalid request"),
    ({"paths": ["/tmp"], "visibility": "public", "allow_users": ["ann@example.com"]},
     "public"),
])
async def test_a_bad_ingest_request_is_refused_before_anything_is_read(
    client: TestClient[Any, Any], body: dict[str, Any], says: str
) -> None:
    response = await client.post("/api/v1/ingest", json=body)  # the local user: an admin

    assert response.status == 400
    assert says in await error(response)


@pytest.mark.parametrize(("data", "says"), [
    (form(("../escape.md", b"# x")), "not a relative document path"),
    (form((".hidden/x.md", b"# x")), "not a relative document path"),
    (form(("/abs.md", b"# x")), "not a relative document path"),
    (form(options='{"folder": "kit"}'), "no files were uploaded"),
    (form(("a.md", b"# a"), options='{"folder": "../up"}'), "invalid options"),
    (form(("a.md", b"# a"), options="not json"), "invalid options"),
])
async def test_a_bad_upload_is_refused_and_leaves_nothing_behind(
    client: TestClient[Any, Any], tmp_path: Path, data: aiohttp.FormData, says: str
) -> None:
    response = await client.post("/api/v1/ingest/upload", data=data)

    assert response.status == 400
    assert says in await error(response)
    uploads = tmp_path / "data" / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


async def test_an_upload_over_the_limit_gets_413(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    async with serving(make_settings(max_upload_bytes=2048)) as client:
        response = await client.post("/api/v1/ingest/upload",
                                     data=form(("big.md", b"# Big\n\n" + b"x" * 5000)))
        assert response.status == 413
        assert "SWITCHBOARD_MAX_UPLOAD_BYTES" in await error(response)
        plain = await client.post("/api/v1/ingest/upload", json={"paths": ["/tmp"]})
        assert plain.status == 400 and "multipart/form-data" in await error(plain)
    assert not any((tmp_path / "data" / "uploads").iterdir())


async def test_the_web_role_sends_ingests_to_the_process_that_holds_the_index(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    from bots.server import create_app

    app = create_app(make_settings(), role="web")
    from aiohttp.test_utils import TestServer

    async with TestServer(app, host="127.0.0.1") as server, TestClient(server) as client:
        response = await client.post("/api/v1/ingest", json={"paths": [str(tmp_path)]})
        assert response.status == 503
        assert "switchboard ingest" in await error(response)


@pytest.mark.parametrize(("content_type", "body"), [
    ("multipart/form-data", b"garbage"),
    ("multipart/form-data; boundary=XX", b"garbage"),
    ("multipart/form-data; boundary=XX",
     b'--XX\r\nContent-Disposition: form-data; name="file"; filename="a.md"\r\n\r\ncut'),
    ("multipart/mixed; boundary=XX",
     b"--XX\r\nContent-Type: multipart/mixed; boundary=YY\r\n\r\n--YY\r\n\r\nx\r\n--YY--\r\n--XX--\r\n"),
])
async def test_a_malformed_multipart_body_is_a_400_not_a_500(
    client: TestClient[Any, Any], tmp_path: Path, content_type: str, body: bytes
) -> None:
    response = await client.post("/api/v1/ingest/upload", data=body,
                                 headers={"Content-Type": content_type})

    assert response.status == 400
    assert (await response.json())["error"]
    uploads = tmp_path / "data" / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


async def test_contradictory_upload_options_leave_the_folder_as_it_was(
    client: TestClient[Any, Any], tmp_path: Path
) -> None:
    kept = await client.post("/api/v1/ingest/upload", data=form(
        ("a.md", b"# A\n\nfirst"), options='{"folder": "kit"}'))
    assert kept.status == 200
    await kept.read()

    refused = await client.post("/api/v1/ingest/upload", data=form(
        ("b.md", b"# B\n\nsecond"),
        options='{"folder": "kit", "prune": true, "visibility": "public", '
                '"allow_users": ["ann@example.com"]}'))

    assert refused.status == 400
    assert sorted(p.name for p in (tmp_path / "data" / "uploads" / "kit").iterdir()) == ["a.md"]
