"""The Slack fake, driven only through slack_sdk over real HTTP and websockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import ApiError, FakeSlack, RateLimited

THREAD = "1690000000.000001"  # a user's message the bot replies under


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(team_id="T111", bot_user_id="UBOT", bot_id="BBOT") as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=slack.base_url)


async def test_posted_then_updated_reply_shows_in_thread(slack: FakeSlack, client: AsyncWebClient):
    posted = await client.chat_postMessage(channel="D1", thread_ts=THREAD, text="thinking…")
    await client.chat_update(
        channel="D1", ts=posted["ts"], text="done", blocks=[{"type": "divider"}]
    )

    [reply] = slack.thread("D1", THREAD)
    assert (reply.ts, reply.text, reply.blocks) == (posted["ts"], "done", [{"type": "divider"}])
    assert reply.user == "UBOT" and reply.bot_id == "BBOT"
    assert slack.calls_to("chat.postMessage")[0].token == "xoxb-test"


async def test_scripted_429_is_retried_after_retry_after(slack: FakeSlack):
    slack.script("chat.postMessage", RateLimited(retry_after=1))
    client = AsyncWebClient(
        token="xoxb-test",
        base_url=slack.base_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )

    await client.chat_postMessage(channel="D1", text="hi")

    first, second = slack.calls_to("chat.postMessage")
    assert second.at - first.at >= 1.0
    assert [m.text for m in slack.messages.values()] == ["hi"]


async def test_scripted_api_error_raises_slack_api_error(slack: FakeSlack, client: AsyncWebClient):
    slack.script("chat.postMessage", ApiError("channel_not_found"))

    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="C404", text="hi")

    assert raised.value.response["error"] == "channel_not_found"
    assert slack.messages == {}


async def test_chat_stream_builds_one_message_with_all_text_and_stop_blocks(
    slack: FakeSlack, client: AsyncWebClient
):
    stream = await client.chat_stream(channel="D1", thread_ts=THREAD, buffer_size=5)
    for piece in ["Hello, ", "wide ", "world", "!"]:
        await stream.append(markdown_text=piece)
    await stream.stop(blocks=[{"type": "context_actions", "elements": []}])

    [reply] = slack.thread("D1", THREAD)
    assert (reply.ts, reply.text, reply.state) == (stream.ts, "Hello, wide world!", "stopped")
    assert reply.blocks == [{"type": "context_actions", "elements": []}]
    assert len(slack.calls_to("chat.appendStream")) >= 1


async def test_expired_stream_rejects_appends_but_accepts_chat_update(
    slack: FakeSlack, client: AsyncWebClient
):
    slack.expire_streams_after(1)
    started = await client.chat_startStream(channel="D1", thread_ts=THREAD, markdown_text="a")
    await client.chat_appendStream(channel="D1", ts=started["ts"], markdown_text="b")

    with pytest.raises(SlackApiError) as raised:
        await client.chat_appendStream(channel="D1", ts=started["ts"], markdown_text="c")
    assert raised.value.response["error"] == "message_not_in_streaming_state"

    await client.chat_update(channel="D1", ts=started["ts"], text="abc")
    assert [m.text for m in slack.thread("D1", THREAD)] == ["abc"]


async def test_channel_stream_without_recipient_is_invalid(client: AsyncWebClient):
    with pytest.raises(SlackApiError) as raised:
        await client.chat_startStream(channel="C1", thread_ts=THREAD, markdown_text="hi")
    assert raised.value.response["error"] == "invalid_arguments"


async def test_users_info_knows_registered_users_only(slack: FakeSlack, client: AsyncWebClient):
    slack.add_user(
        "U222", name="ada", real_name="Ada Lovelace", email="ada@example.com", tz="Europe/London"
    )

    ada = (await client.users_info(user="U222"))["user"]
    assert (ada["real_name"], ada["profile"]["email"], ada["tz"]) == (
        "Ada Lovelace",
        "ada@example.com",
        "Europe/London",
    )
    with pytest.raises(SlackApiError) as raised:
        await client.users_info(user="U404")
    assert raised.value.response["error"] == "user_not_found"


async def test_auth_test_and_missing_token(slack: FakeSlack, client: AsyncWebClient):
    me = await client.auth_test()
    assert (me["team_id"], me["user_id"], me["bot_id"]) == ("T111", "UBOT", "BBOT")
    with pytest.raises(SlackApiError) as raised:
        await AsyncWebClient(base_url=slack.base_url).auth_test()
    assert raised.value.response["error"] == "not_authed"


@pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")  # slack_sdk's
async def test_oauth_v2_access_checks_the_client_secret():
    async with FakeSlack(team_id="T9", client_secret="s3cret") as slack:
        client = AsyncWebClient(base_url=slack.base_url)
        installed = await client.oauth_v2_access(
            client_id="1.2", client_secret="s3cret", code="c0de"
        )
        assert (installed["access_token"], installed["team"]["id"]) == ("xoxb-installed-T9", "T9")
        with pytest.raises(SlackApiError) as raised:
            await client.oauth_v2_access(client_id="1.2", client_secret="wrong", code="c0de")
        assert raised.value.response["error"] == "bad_client_secret"


async def test_socket_mode_client_receives_envelope_and_acks_it(slack: FakeSlack):
    web_client = AsyncWebClient(token="xoxb-test", base_url=slack.base_url)
    socket = SocketModeClient(app_token="xapp-1-test", web_client=web_client)

    async def ack(client: SocketModeClient, request: SocketModeRequest) -> None:
        await client.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload={"text": "got it"})
        )

    socket.socket_mode_request_listeners.append(ack)
    try:
        await socket.connect()
        await slack.socket_connected.wait()
        await slack.send_envelope(
            {
                "envelope_id": "e1",
                "type": "events_api",
                "accepts_response_payload": False,
                "payload": {"event": {"type": "app_mention"}},
            }
        )
        assert await slack.wait_ack("e1") == {"envelope_id": "e1", "payload": {"text": "got it"}}
    finally:
        await socket.close()
    assert slack.calls_to("apps.connections.open")[0].token == "xapp-1-test"


async def test_closing_the_fake_closes_open_websockets():
    async with aiohttp.ClientSession() as http:
        async with FakeSlack() as slack:
            ws = await http.ws_connect(slack.socket_url)
            assert (await ws.receive_json())["type"] == "hello"
            closing = asyncio.ensure_future(ws.receive())
        assert (await closing).type == aiohttp.WSMsgType.CLOSE
        await ws.close()


async def test_wait_for_names_the_methods_seen_on_timeout(slack: FakeSlack, client: AsyncWebClient):
    await client.auth_test()
    with pytest.raises(TimeoutError, match=r"chat\.postMessage.*auth\.test"):
        await slack.wait_for("chat.postMessage", timeout=0.05)
