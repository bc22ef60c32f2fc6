"""The same listeners over Socket Mode and for many workspaces (OAuth), and a manifest
whose every event, command and URL the app handles."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient

from bots.slack_manifest import render_manifest
from tests.e2e.conftest import services, serving
from tests.e2e.slack.conftest import SlackSettings, fixture, mention, post_event
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import FakeSlack
from tests.fuzzing import no_traceback


async def test_socket_mode_answers_and_acks_after_recording(
    slack_settings: SlackSettings, slack: FakeSlack, llm: FakeOpenAI
) -> None:
    settings = slack_settings(slack_app_token="xapp-1-A111-test", slack_signing_secret=None)
    async with serving(settings) as app:
        await slack.socket_connected.wait()
        envelope = fixture("sdk_socketmode_envelope_events_api_app_mention.json")

        await slack.send_envelope(envelope)

        ack = await slack.wait_ack(envelope["envelope_id"])
        assert ack["envelope_id"] == envelope["envelope_id"]
        item = await services(app).inbox.find(
            channel="slack", tenant="T111", message_id="C111:1610241741.000200"
        )
        assert item is not None  # recorded before the ack was sent
        await slack.wait_for("chat.stopStream")
        (reply,) = slack.thread("C111", "1610241741.000200")
        assert reply.text == "echo: Hello!"  # an empty mention is a greeting


# slack-sdk 3.47 authenticates oauth.v2.access with aiohttp's deprecated BasicAuth.
@pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")
async def test_an_installed_workspace_is_answered_with_its_own_token(
    slack_settings: SlackSettings, slack: FakeSlack, llm: FakeOpenAI
) -> None:
    settings = slack_settings(
        slack_bot_token=None, slack_client_id="111.222", slack_client_secret="s3cr3t-client"
    )
    async with serving(settings) as app:
        install = await app.get("/slack/install", allow_redirects=False)
        assert install.status in (200, 302)
        page = await install.text() + install.headers.get("Location", "")
        state = re.search(r"state=([\w-]+)", page)
        assert state is not None
        cookies = {"slack-app-oauth-state": state[1]}

        done = await app.get(
            f"/slack/oauth_redirect?code=abc&state={state[1]}", cookies=cookies,
            allow_redirects=False,
        )
        assert done.status == 200, await done.text()

        await post_event(app, mention("hello from an installed workspace"))
        await slack.wait_for("chat.stopStream")
        tokens = {c.token for c in slack.calls_to("chat.startStream")}
        assert tokens == {"xoxb-installed-T111"}


async def test_every_event_command_and_url_in_the_manifest_is_handled(
    app: TestClient[Any, Any],
) -> None:
    """Bolt answers 404 to a request no listener takes; Slack would count it a failure."""
    manifest = yaml.safe_load(render_manifest("https://bot.example.com"))
    paths = {
        url.removeprefix("https://bot.example.com")
        for url in (
            manifest["settings"]["event_subscriptions"]["request_url"],
            manifest["settings"]["interactivity"]["request_url"],
            *(c["url"] for c in manifest["features"]["slash_commands"]),
        )
    }
    assert paths == {"/slack/events"}
    for url in manifest["oauth_config"]["redirect_urls"]:
        route = app.server.app.router.resources()  # type: ignore[union-attr]
        assert any(r.canonical == url.removeprefix("https://bot.example.com") for r in route)

    for n, event in enumerate(manifest["settings"]["event_subscriptions"]["bot_events"]):
        body = mention("hi", ts=f"1700000100.{n:06d}", event_id=f"EvManifest{n}")
        kind, _, where = event.partition(".")
        body["event"]["type"] = kind
        if where:
            types = {"channels": "channel", "groups": "group"}
            body["event"]["channel_type"] = types.get(where, where)
        response = await post_event(app, body)
        assert response.status == 200, event

    for command in manifest["features"]["slash_commands"]:
        name = command["command"].replace("/", "%2F")
        form = f"command={name}&text=help&team_id=T111&user_id=U222&channel_id=C111"
        response = await post_event(app, form, content_type="application/x-www-form-urlencoded")
        assert response.status == 200, command["command"]


async def test_socket_mode_acks_and_ignores_a_payload_with_unusable_fields(
    slack_settings: SlackSettings, slack: FakeSlack, llm: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = slack_settings(slack_app_token="xapp-1-A111-test", slack_signing_secret=None)
    async with serving(settings):
        await slack.socket_connected.wait()
        junk = fixture("sdk_socketmode_envelope_events_api_app_mention.json")
        junk["envelope_id"] = "junk-envelope"
        junk["payload"]["event"]["ts"] = "yesterday"

        await slack.send_envelope(junk)

        assert (await slack.wait_ack("junk-envelope"))["envelope_id"] == "junk-envelope"
        good = fixture("sdk_socketmode_envelope_events_api_app_mention.json")
        await slack.send_envelope(good)
        await slack.wait_ack(good["envelope_id"])
        await slack.wait_for("chat.stopStream")
        assert len(llm.requests) == 1
    no_traceback(caplog)
    assert any("unusable fields: event.ts" in r.getMessage() for r in caplog.records)
