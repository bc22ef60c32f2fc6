"""Schemathesis against the running app, from the app's own API document: whatever it
generates, no answer is a 5xx and every answer (status, headers, body) is documented.

The real bootstrap, offline (no model: answers come from the offline model, quickly),
with an API key; bounded and derandomized, so a run is repeatable and short.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.browser import serving_in_thread

API_KEY = "schemathesis-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
# Not `positive_data_acceptance`: a request can match the schema and still break a rule
# only the service knows (a requester may not resolve their own ticket: 400).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]
# Negative cases (schema-invalid data) must also be refused with a 4xx: the document and
# the models that check requests cannot drift apart.
MAX_EXAMPLES = 15  # per operation and mode: about 15 s on 2 CPUs


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from bots.server import create_app
    from bots.settings import load_settings

    app_settings = load_settings(
        _env_file=None,  # never a developer's .env (it may configure a real model)
        data_dir=tmp_path_factory.mktemp("schemathesis"),
        api_keys=f"tester:{API_KEY}",
        openai_api_key=None,
        openai_base_url=None,
        bundled_docs=False,
    )
    with serving_in_thread(create_app(app_settings)) as url:
        yield url.rstrip("/")


def test_every_answer_is_documented_and_none_is_a_server_error(base_url: str) -> None:
    # Each operation's strategy driven by hypothesis directly: Schemathesis's pytest
    # plugin (`from_fixture`) does not run under pytest 9.
    api = schemathesis.openapi.from_url(f"{base_url}/api/v1/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 8
    known = _known_ids(base_url)
    for operation in operations:
        _exercise(operation, base_url, GenerationMode.POSITIVE)
        if operation.body or operation.query:  # something to get wrong
            _exercise(operation, base_url, GenerationMode.NEGATIVE)
        if operation.path in known:  # generated ids are unknown: these reach the 404 only
            _exercise(operation, base_url, GenerationMode.POSITIVE, **known[operation.path])


def _known_ids(base_url: str) -> dict[str, dict[str, str]]:
    """A conversation, an answer and a ticket of the caller's, for the routes that take
    ids."""
    with requests.Session() as http:
        chat = http.post(f"{base_url}/api/v1/chat", json={"message": "hello"}, headers=AUTH)
        ticket = http.post(f"{base_url}/api/v1/tickets", json={"title": "VPN"}, headers=AUTH)
    assert chat.status_code == 200 and ticket.status_code == 201
    answer = chat.json()
    conversation = {"id": answer["conversation_id"]}
    return {
        "/api/v1/conversations/{id}": conversation,
        "/api/v1/conversations/{id}/turns/{turn_id}/feedback": {
            **conversation, "turn_id": str(answer["turn_id"])
        },
        "/api/v1/tickets/{id}": {"id": ticket.json()["number"]},
    }


def _exercise(operation: Any, base_url: str, mode: GenerationMode, **path: str) -> None:
    checks = CHECKS + ([negative_data_rejection] if mode == GenerationMode.NEGATIVE else [])

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path or None))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, headers=AUTH, checks=checks)

    run()
