"""The REST API's chat and ticket routes against generated raw bodies and headers
(hypothesis): never a 5xx, never a traceback, and the API answers afterwards.

Bodies the API document describes are Schemathesis's (tests/e2e/test_api_schemathesis.py);
these are the ones it does not: bytes, JSON of any shape, known-good bodies with fields
replaced or dropped, and junk headers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from tests.e2e.conftest import MakeSettings, serving, settled
from tests.fuzzing import (
    FUZZ,
    content_types,
    header_text,
    json_values,
    mutated,
    no_traceback,
    raw_bodies,
)

Client = TestClient[Any, Any]
KEY = "alice-key-0123456789"
ALICE = {"Authorization": f"Bearer {KEY}"}
ROUTES = [("POST", "/api/v1/chat"), ("POST", "/api/v1/chat/stream"),
          ("POST", "/api/v1/tickets"), ("PATCH", "/api/v1/tickets/TCK-1001")]

bodies = st.one_of(
    raw_bodies,
    json_values.map(lambda v: json.dumps(v).encode()),
    mutated({"message": "hi", "conversation_id": "c1", "message_id": "m-1",
             "time_zone": "Europe/Paris"}).map(lambda v: json.dumps(v).encode()),
    mutated({"title": "Printer", "description": "Floor 2", "priority": "high",
             "status": "closed", "comment": "done"}).map(lambda v: json.dumps(v).encode()),
)
authorizations = st.sampled_from([ALICE["Authorization"], "Bearer sbk_0123", "Basic x"]) \
    | header_text.map(lambda t: f"Bearer {t}")


@pytest.fixture
async def api(
    make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Client]:
    """The API with one ticket to patch; afterwards it still answers, and its worker
    answered what the examples let in without a traceback."""
    async with serving(make_settings(api_keys=f"alice:{KEY}")) as client:
        created = await client.post("/api/v1/tickets", json={"title": "Printer"}, headers=ALICE)
        assert created.status == 201
        yield client
        await settled(client)
        response = await client.post("/api/v1/chat", json={"message": "still there?"},
                                     headers=ALICE)
        assert response.status == 200
        no_traceback(caplog)


@FUZZ
@given(route=st.sampled_from(ROUTES), body=bodies, content_type=content_types,
       authorization=authorizations)
async def test_chat_and_ticket_routes_never_get_a_5xx(
    api: Client, caplog: pytest.LogCaptureFixture, route: tuple[str, str], body: bytes,
    content_type: str, authorization: str,
) -> None:
    caplog.clear()  # each example's own lines
    method, path = route

    response = await api.request(method, path, data=body, headers={
        "Content-Type": content_type, "Authorization": authorization})
    await response.read()  # a stream, to its end

    assert response.status < 500
    no_traceback(caplog)
