"""Metrics and logs of `switchboard` as real processes, configured by the environment as an
operator would: a worker's metrics port, JSON log lines with the message's ids, and message
text kept out of the log (even slack_sdk's DEBUG request bodies) unless asked for.

A Slack mention goes through the fake Slack API (signed, acknowledged, answered with a
stream); the model is the fake OpenAI server."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.processes import Processes, free_port, post_slack, serve
from tests.e2e.slack.conftest import mention
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.fakes.slack_api import FakeSlack

pytestmark = pytest.mark.timeout(150)

ANSWERED_WITHIN = 30.0  # seconds: real processes on a small machine
QUESTION = "where does the quokka keep the vault code 7731?"
ANSWER = "Under the marmalade jar, says the ledger 4417."


async def metrics(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
        assert response.status == 200, await response.text()
        text = await response.text()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def ask_in_slack(url: str, slack: FakeSlack, *, ts: str) -> None:
    assert (await post_slack(url, mention(QUESTION, ts=ts, event_id=f"Ev{ts}"))).status == 200
    await slack.wait_for("chat.stopStream", timeout=ANSWERED_WITHIN)


async def test_a_worker_serves_its_metrics_on_the_metrics_port(
    procs: Processes, slack: FakeSlack, llm: FakeOpenAI
) -> None:
    llm.script(Reply(ANSWER))
    port = free_port()
    web = procs.start("web", "serve", "--role", "web", http=True)
    procs.start("worker", "worker", env={"SWITCHBOARD_METRICS_PORT": str(port)})
    await procs.ready(web)
    assert web.url is not None
    await ask_in_slack(web.url, slack, ts="1700000001.000100")

    worker = await metrics(f"http://127.0.0.1:{port}")
    received = await metrics(web.url)
    slack_worker = {"role": "worker", "channel": "slack"}
    assert sample(worker, "switchboard_messages_total", **slack_worker, outcome="answered") == 1
    assert sample(worker, "switchboard_first_sign_seconds_count", **slack_worker) == 1
    assert sample(worker, "switchboard_inbox_depth", role="worker", status="pending") == 0
    # The web role received it and answered nothing.
    assert sample(received, "switchboard_messages_received_total", role="web",
                  channel="slack") == 1
    assert sample(received, "switchboard_messages_total", role="web", channel="slack",
                  outcome="answered") == 0


async def test_json_log_lines_parse_and_carry_the_message_ids(
    procs: Processes, slack: FakeSlack, llm: FakeOpenAI
) -> None:
    llm.script(Reply(ANSWER))
    child = await serve(procs, grace=5, env={"LOG_FORMAT": "json",
                                             "SWITCHBOARD_LOG_LEVEL": "DEBUG"})
    assert child.url is not None
    ts = "1700000002.000200"
    await ask_in_slack(child.url, slack, ts=ts)
    await child.stop()

    lines = [line for line in child.stderr().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line: one JSON object
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    about = [r for r in records if r.get("message_id") == f"C111:{ts}"]
    assert about, "no record names the message"
    turn = [r for r in about if "inbox_item_id" in r and "conversation_id" in r]
    assert turn and all(r["channel"] == "slack" for r in turn)
    assert isinstance(turn[0]["inbox_item_id"], int)


@pytest.mark.parametrize("content", [False, True], ids=["content-off", "content-on"])
async def test_message_text_reaches_the_log_only_when_asked_for(
    procs: Processes, slack: FakeSlack, llm: FakeOpenAI, content: bool
) -> None:
    llm.script(Reply(ANSWER))
    env = {"SWITCHBOARD_LOG_LEVEL": "DEBUG", **({"LOG_CONTENT": "1"} if content else {})}
    child = await serve(procs, grace=5, env=env)
    assert child.url is not None
    await ask_in_slack(child.url, slack, ts="1700000003.000300")
    await child.stop()

    log = child.stderr()
    assert "slack_sdk" in log or not content  # DEBUG reached the SDKs when asked
    for secret in ("quokka", "7731", "marmalade", "4417"):
        where = "missing from" if content else "in"
        assert (secret in log) == content, f"{secret!r} {where} the log"
