"""A real HTTP server imitating the Slack Web API and Socket Mode, scripted by tests.

    async with FakeSlack(team_id="T111", bot_user_id="UBOT", bot_id="BBOT") as slack:
        slack.add_user("U222", name="ada", real_name="Ada Lovelace", email="ada@example.com")
        slack.script("chat.postMessage", RateLimited(retry_after=1), ApiError("channel_not_found"))
        client = AsyncWebClient(token="xoxb-test", base_url=slack.base_url)
        ...
        await slack.wait_for("chat.postMessage", count=3)
        assert [m.text for m in slack.thread("C1", "1700000000.000001")] == ["hi"]

Agent sessions: `agents.sessions.setStatus` creates or updates a thread's session
(`slack.sessions`), `agents.sessions.rename` and `assistant.threads.setTitle` name threads
(`slack.titles`); `refuse_agent_sessions` makes the workspace refuse them, or accept them
with the warning Slack gives an app not subscribed to `agent_session_stopped`;
`press_session_stop` is the person clicking the session's stop control.
Channels the bot may read: `slack.add_channel("C1", name="general", members=["U222"],
messages=[("U222", "hello")])` (`private=True`, `bot_member=False` as Slack would answer
them) for conversations.info, conversations.members and conversations.history.

Every call is recorded in `slack.calls` (scripted failures too). Scripted steps for a method are
used up in order; after that each method behaves like Slack. Socket Mode clients connect to the
URL `apps.connections.open` hands out (needs an `xapp-` token); push events to them with
`send_envelope` and read their acks with `wait_ack`. Close Socket Mode clients before leaving the
`async with`, or they will try to reconnect to a fake that is shutting down.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Self
from zoneinfo import ZoneInfo

from aiohttp import WSCloseCode, WSMsgType, web

Args = dict[str, Any]
Key = tuple[str, str]  # (channel, ts)


@dataclass(frozen=True)
class RateLimited:
    """HTTP 429 with `Retry-After: <retry_after>` and `{"ok": false, "error": "ratelimited"}`."""

    retry_after: int = 1


@dataclass(frozen=True)
class ApiError:
    """HTTP 200 with `{"ok": false, "error": error}`."""

    error: str


@dataclass(frozen=True)
class HttpStatus:
    """That status with a small JSON body (e.g. 500, 503)."""

    status: int


@dataclass(frozen=True)
class Delay:
    """Answer normally after `seconds` (or as soon as the fake closes)."""

    seconds: float


Step = RateLimited | ApiError | HttpStatus | Delay


@dataclass(frozen=True)
class Call:
    method: str
    body: Args
    token: str | None
    at: float  # time.monotonic() on arrival


@dataclass(frozen=True)
class Message:
    """What a user sees of one bot message. `state`: posted, streaming, stopped or expired."""

    channel: str
    ts: str
    thread_ts: str | None
    text: str
    blocks: list[Any] | None = None
    # Stream chunks other than markdown_text (task and plan updates, blocks), in order.
    chunks: tuple[Args, ...] = ()
    state: str = "posted"
    user: str = ""
    bot_id: str = ""

    @property
    def streaming(self) -> bool:
        return self.state == "streaming"

    @property
    def shown_blocks(self) -> list[Any]:
        """The blocks a person sees: a stream's `blocks` chunks, then the message's own
        (chat.stopStream's go at the bottom; chat.update's replace everything)."""
        streamed = [b for c in self.chunks if c.get("type") == "blocks" for b in c["blocks"]]
        return [*streamed, *(self.blocks or [])]

    def to_slack(self) -> Args:
        message: Args = {"type": "message", "user": self.user, "bot_id": self.bot_id,
                         "text": self.text, "ts": self.ts}
        if self.thread_ts:
            message["thread_ts"] = self.thread_ts
        if self.blocks is not None or self.shown_blocks:
            message["blocks"] = self.shown_blocks
        return message


_APP_TOKEN_METHODS = {"apps.connections.open", "auth.test"}
SESSION_STATUSES = frozenset({"active", "processing", "suspended", "closed"})
TASK_STATUSES = frozenset({"pending", "in_progress", "complete", "error"})
_TEXT_FIELDS = {"text", "markdown_text"}  # never JSON-decoded, even if they look like JSON


class FakeSlack:
    def __init__(
        self,
        *,
        team_id: str = "T111",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        app_id: str = "A111",
        team_name: str = "Fake Team",
        client_id: str | None = None,  # None: oauth.v2.access accepts any
        client_secret: str | None = None,
    ) -> None:
        self.team_id, self.bot_user_id, self.bot_id = team_id, bot_user_id, bot_id
        self.app_id, self.team_name = app_id, team_name
        self.client_id, self.client_secret = client_id, client_secret
        self.calls: list[Call] = []
        self.users: dict[str, Args] = {}
        self.usergroups: list[Args] = []  # usergroups.list's answer (add_usergroup)
        self.messages: dict[Key, Message] = {}
        self.ephemerals: list[Args] = []
        self.channels: dict[str, Args] = {}  # add_channel: info, members and history
        self.views: dict[str, Args] = {}  # last view published per user id
        self.modals: dict[str, Args] = {}  # modals opened (views.open) or updated, by view id
        self.socket_frames: list[Args] = []  # every frame Socket Mode clients sent (acks)
        self.sessions: dict[Key, str] = {}  # agent session status per (channel, thread_ts)
        self.titles: dict[Key, str] = {}  # thread names (agent sessions, assistant threads)
        self.socket_connected = asyncio.Event()  # set while a Socket Mode client is connected
        self.base_url = ""  # http://127.0.0.1:PORT/api/
        self.socket_url = ""  # ws://127.0.0.1:PORT/link/
        self._scripts: defaultdict[str, deque[Step]] = defaultdict(deque)
        self._changed = asyncio.Condition()
        self._closing = asyncio.Event()
        self._ts = itertools.count(1)
        self._expire_after: int | None = None
        self._stream_budgets: dict[Key, int] = {}  # successful appends left before expiry
        self._streaming_error: str | None = None
        self._sessions_error: str | None = None
        self._sessions_warning: str | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self._runner: web.AppRunner | None = None
        self._handlers: dict[str, Callable[[Args, str | None], Args]] = {
            "auth.test": self._auth_test,
            "users.info": self._users_info,
            "usergroups.list": self._usergroups_list,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.delete": self._delete,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.startStream": self._start_stream,
            "chat.appendStream": self._append_stream,
            "chat.stopStream": self._stop_stream,
            "assistant.threads.setStatus": _ok,
            "assistant.threads.setSuggestedPrompts": _ok,
            "assistant.threads.setTitle": self._set_title,
            "agents.sessions.setStatus": self._session_set_status,
            "agents.sessions.rename": self._session_rename,
            "reactions.add": _ok,
            "conversations.info": self._conversations_info,
            "conversations.members": self._conversations_members,
            "conversations.history": self._conversations_history,
            "views.publish": self._views_publish,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "chat.getPermalink": self._get_permalink,
            "apps.connections.open": self._connections_open,
            "oauth.v2.access": self._oauth_v2_access,
        }

    # --- setup -------------------------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        *,
        name: str,
        real_name: str = "",
        email: str | None = None,
        tz: str = "America/Los_Angeles",
        display_name: str = "",
        is_bot: bool = False,
        deleted: bool = False,
    ) -> Args:
        """Registers a user for users.info; returns the `user` object Slack would send."""
        offset = ZoneInfo(tz).utcoffset(datetime.now())
        profile: Args = {"real_name": real_name, "display_name": display_name,
                         "real_name_normalized": real_name,
                         "display_name_normalized": display_name}
        if email is not None:
            profile["email"] = email
        self.users[user_id] = user = {
            "id": user_id, "team_id": self.team_id, "name": name, "deleted": deleted,
            "real_name": real_name, "tz": tz,
            "tz_offset": int(offset.total_seconds()) if offset else 0,
            "is_bot": is_bot, "is_admin": False, "is_app_user": False, "updated": 0,
            "profile": profile,
        }
        return user

    def add_usergroup(self, handle: str, users: list[str], *, disabled: bool = False) -> Args:
        """Registers a user group (its members as `usergroups.users.list` would list them)."""
        group_id = f"S{len(self.usergroups) + 1:08d}"
        group: Args = {
            "id": group_id, "team_id": self.team_id, "is_usergroup": True, "name": handle.title(),
            "handle": handle, "description": "", "date_delete": 1700000000 if disabled else 0,
            "users": list(users), "user_count": len(users),
        }
        self.usergroups.append(group)
        return group

    def add_channel(
        self,
        channel_id: str,
        *,
        name: str,
        private: bool = False,
        members: list[str] | None = None,
        bot_member: bool = True,
        messages: list[tuple[str, str]] | None = None,
    ) -> Args:
        """Registers a channel; `messages` are (user, text), oldest first. A private channel
        the bot is not in does not exist for it (channel_not_found), as in Slack."""
        history = [
            {"type": "message", "user": user, "text": text, "ts": f"{1_700_000_000 + i}.000100",
             "team": self.team_id}
            for i, (user, text) in enumerate(messages or [])
        ]
        self.channels[channel_id] = channel = {
            "id": channel_id, "name": name, "is_channel": not private, "is_group": False,
            "is_im": False, "is_mpim": False, "is_private": private, "is_archived": False,
            "is_member": bot_member, "members": list(members or []),
            "history": list(reversed(history)),  # Slack answers newest first
        }
        return channel

    def script(self, method: str, *steps: Step) -> None:
        """Queues steps that answer the next calls to `method`, before its default behaviour."""
        self._scripts[method].extend(steps)

    def expire_streams_after(self, appends: int) -> None:
        """Streams started from now on leave streaming state after that many appendStreams."""
        self._expire_after = appends

    def disable_streaming(self, error: str = "feature_not_enabled") -> None:
        self._streaming_error = error

    def refuse_agent_sessions(
        self, error: str | None = "not_allowed", *, warning: str | None = None
    ) -> None:
        """agents.sessions.* fail with `error`; or (error None) succeed with `warning`."""
        self._sessions_error, self._sessions_warning = error, warning

    def press_session_stop(self, channel: str, thread_ts: str) -> list[str]:
        """The person clicks the session's stop control: Slack stops the app's streams in
        the thread (their ts, for the event) and leaves the session's status alone."""
        stopped = [m.ts for m in self.thread(channel, thread_ts) if m.streaming]
        for ts in stopped:
            self._store(replace(self.messages[(channel, ts)], state="stopped"))
        return stopped
    # --- observing ---------------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    async def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[Call]:
        await self._wait(
            lambda: len(self.calls_to(method)) >= count, timeout,
            lambda: f"expected {count} call(s) to {method}, got {len(self.calls_to(method))}; "
            f"methods seen: {[call.method for call in self.calls]}",
        )
        return self.calls_to(method)

    def thread(self, channel: str, thread_ts: str) -> list[Message]:
        """The bot's messages in that thread (the root too, if the bot posted it), oldest first."""
        found = [m for m in self.messages.values() if m.channel == channel
                 and thread_ts in (m.ts, m.thread_ts)]
        return sorted(found, key=lambda m: _ts_key(m.ts))

    async def wait_for_text(
        self, channel: str, thread_ts: str, match: str | Callable[[Message], bool],
        timeout: float = 5.0,
    ) -> Message:
        """The first bot message in the thread whose text contains `match` (or satisfies it)."""
        def matches(m: Message) -> bool:
            return match in m.text if isinstance(match, str) else match(m)

        def first() -> Message | None:
            return next((m for m in self.thread(channel, thread_ts) if matches(m)), None)

        await self._wait(lambda: first() is not None, timeout,
                         lambda: f"no message matching {match!r} in {channel}/{thread_ts}; "
                         f"texts: {[m.text for m in self.thread(channel, thread_ts)]}")
        return first()  # type: ignore[return-value]

    # --- Socket Mode -------------------------------------------------------------------------

    async def send_envelope(self, envelope: Args) -> None:
        """Sends a frame to the most recently connected Socket Mode client."""
        if not self._sockets:
            raise RuntimeError("no Socket Mode client is connected to the fake")
        await self._sockets[-1].send_json(envelope)

    async def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> Args:
        def ack() -> Args | None:
            return next((f for f in self.socket_frames if f.get("envelope_id") == envelope_id),
                        None)

        await self._wait(lambda: ack() is not None, timeout,
                         lambda: f"no ack for envelope {envelope_id!r}; "
                         f"frames received: {self.socket_frames}")
        return ack()  # type: ignore[return-value]

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("POST", "/api/{method}", self._api)
        app.router.add_route("GET", "/api/{method}", self._api)
        app.router.add_get("/link/", self._link)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/api/"
        self.socket_url = f"ws://127.0.0.1:{port}/link/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing.set()  # releases any Delay still sleeping
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"fake slack closing")
        if self._runner is not None:
            await self._runner.cleanup()

    # --- HTTP --------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body, token = await _read_args(request)
        async with self._changed:
            self.calls.append(Call(method, body, token, time.monotonic()))
            self._changed.notify_all()
        queue = self._scripts.get(method)
        match queue.popleft() if queue else None:
            case RateLimited(retry_after=seconds):
                return web.json_response(_error("ratelimited"), status=429,
                                         headers={"Retry-After": str(seconds)})
            case ApiError(error=error):
                return web.json_response(_error(error))
            case HttpStatus(status=status):
                return web.json_response(_error(f"fake_http_{status}"), status=status)
            case Delay(seconds=seconds):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), seconds)
        async with self._changed:
            answer = self._answer(method, body, token)
            self._changed.notify_all()
        return web.json_response(answer)

    def _answer(self, method: str, body: Args, token: str | None) -> Args:
        handler = self._handlers.get(method)
        if handler is None:
            return _error("unknown_method")
        if method != "oauth.v2.access":
            if not token:
                return _error("not_authed")
            app_token = token.startswith("xapp-")
            wants_app_token = method == "apps.connections.open"
            if app_token != wants_app_token and not (app_token and method in _APP_TOKEN_METHODS):
                return _error("not_allowed_token_type")
        return handler(body, token)

    def _auth_test(self, body: Args, token: str | None) -> Args:
        return {"ok": True, "url": "https://fake.slack.com/", "team": self.team_name,
                "user": "switchboard", "team_id": self.team_id, "user_id": self.bot_user_id,
                "bot_id": self.bot_id, "is_enterprise_install": False}

    def _users_info(self, body: Args, token: str | None) -> Args:
        user = self.users.get(body.get("user", ""))
        return {"ok": True, "user": user} if user else _error("user_not_found")

    def _usergroups_list(self, body: Args, token: str | None) -> Args:
        include_users = str(body.get("include_users", "")).lower() in ("1", "true")
        include_disabled = str(body.get("include_disabled", "")).lower() in ("1", "true")
        groups = [
            g if include_users else {k: v for k, v in g.items() if k != "users"}
            for g in self.usergroups if include_disabled or not g["date_delete"]
        ]
        return {"ok": True, "usergroups": groups}

    def _post_message(self, body: Args, token: str | None) -> Args:
        if not body.get("channel"):
            return _error("channel_not_found")
        text = body.get("text") or body.get("markdown_text") or ""
        if not text and not body.get("blocks"):
            return _error("no_text")
        if len(text) > 40_000:
            return _error("msg_too_long")
        message = self._store(self._new_message(body, text=text, blocks=body.get("blocks")))
        return {"ok": True, "channel": message.channel, "ts": message.ts,
                "message": message.to_slack()}

    def _update(self, body: Args, token: str | None) -> Args:
        message = self.messages.get((body.get("channel", ""), str(body.get("ts", ""))))
        if message is None:
            return _error("message_not_found")
        text = body.get("text", body.get("markdown_text", message.text))
        if len(text) > 4_000:
            return _error("msg_too_long")
        if "blocks" in body:  # the message's blocks, stream-built ones too, are replaced
            message = replace(message, blocks=body["blocks"], chunks=())
        message = self._store(replace(message, text=text))
        return {"ok": True, "channel": message.channel, "ts": message.ts, "text": message.text,
                "message": message.to_slack()}

    def _delete(self, body: Args, token: str | None) -> Args:
        key = (body.get("channel", ""), str(body.get("ts", "")))
        if self.messages.pop(key, None) is None:
            return _error("message_not_found")
        return {"ok": True, "channel": key[0], "ts": key[1]}

    def _post_ephemeral(self, body: Args, token: str | None) -> Args:
        if not body.get("channel"):
            return _error("channel_not_found")
        ts = self._next_ts()
        self.ephemerals.append({"channel": body["channel"], "user": body.get("user"),
                                "text": body.get("text", ""), "blocks": body.get("blocks"),
                                "thread_ts": body.get("thread_ts"), "ts": ts})
        return {"ok": True, "message_ts": ts}

    def _session_set_status(self, body: Args, token: str | None) -> Args:
        if self._sessions_error is not None:
            return _error(self._sessions_error)
        status, channel = body.get("status"), body.get("channel_id")
        if status not in SESSION_STATUSES:
            return _error("invalid_arguments")
        if not channel:
            return _error("channel_not_found")
        self.sessions[(channel, str(body.get("thread_ts", "")))] = status
        answer: Args = {"ok": True, "status": status}
        if self._sessions_warning is not None:
            answer["warning"] = self._sessions_warning
        return answer

    def _session_rename(self, body: Args, token: str | None) -> Args:
        if self._sessions_error is not None:
            return _error(self._sessions_error)
        key = (body.get("channel_id", ""), str(body.get("thread_ts", "")))
        title = str(body.get("title", ""))
        if key not in self.sessions:
            return _error("session_not_found")
        if not 1 <= len(title) <= 200:
            return _error("invalid_arguments")
        self.titles[key] = title
        return {"ok": True, "title": title}

    def _set_title(self, body: Args, token: str | None) -> Args:
        channel, thread_ts = body.get("channel_id", ""), str(body.get("thread_ts", ""))
        if not channel or not thread_ts or not body.get("title"):
            return _error("invalid_arguments")
        self.titles[(channel, thread_ts)] = str(body["title"])
        return {"ok": True}

    def _start_stream(self, body: Args, token: str | None) -> Args:
        if self._streaming_error is not None:
            return _error(self._streaming_error)
        channel = body.get("channel", "")
        if not channel:
            return _error("channel_not_found")
        if not body.get("thread_ts"):
            return _error("invalid_arguments")
        recipients = body.get("recipient_user_id") and body.get("recipient_team_id")
        if channel[0] in "CG" and not recipients:
            return _error("invalid_arguments")
        if _bad_chunks(body, ()):
            return _error("invalid_chunks")
        message = self._new_message(body, text="", state="streaming")
        self._store(_appended(message, body))
        if self._expire_after is not None:
            self._stream_budgets[(channel, message.ts)] = self._expire_after
        return {"ok": True, "channel": channel, "ts": message.ts}

    def _append_stream(self, body: Args, token: str | None) -> Args:
        message = self._streaming_message(body)
        if message is None:
            return _error("message_not_in_streaming_state")
        if _bad_chunks(body, message.chunks):
            return _error("invalid_chunks")
        message = _appended(message, body)
        key = (message.channel, message.ts)
        if key in self._stream_budgets:
            self._stream_budgets[key] -= 1
            if self._stream_budgets[key] <= 0:
                message = replace(message, state="expired")
        self._store(message)
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _stop_stream(self, body: Args, token: str | None) -> Args:
        message = self._streaming_message(body)
        if message is None:
            return _error("message_not_in_streaming_state")
        if _bad_chunks(body, message.chunks) or body.get(
                "session_status", "active") not in SESSION_STATUSES:
            return _error("invalid_chunks")
        session = (message.channel, message.thread_ts or "")
        if session in self.sessions:  # chat.stopStream moves the session on (default active)
            self.sessions[session] = body.get("session_status", "active")
        message = _appended(message, body)
        message = self._store(replace(message, state="stopped",
                                      blocks=body.get("blocks", message.blocks)))
        return {"ok": True, "channel": message.channel, "ts": message.ts,
                "message": message.to_slack()}

    def _visible_channel(self, body: Args) -> Args | None:
        channel = self.channels.get(body.get("channel", ""))
        if channel is None or (channel["is_private"] and not channel["is_member"]):
            return None
        return channel

    def _conversations_info(self, body: Args, token: str | None) -> Args:
        channel = self._visible_channel(body)
        if channel is None:
            return _error("channel_not_found")
        info = {k: v for k, v in channel.items() if k not in ("members", "history")}
        return {"ok": True, "channel": info}

    def _conversations_members(self, body: Args, token: str | None) -> Args:
        channel = self._visible_channel(body)
        if channel is None:
            return _error("channel_not_found")
        start = int(body.get("cursor") or 0)
        limit = int(body.get("limit") or 100)
        page = channel["members"][start:start + limit]
        more = start + limit < len(channel["members"])
        return {"ok": True, "members": page,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def _conversations_history(self, body: Args, token: str | None) -> Args:
        channel = self._visible_channel(body)
        if channel is None:
            return _error("channel_not_found")
        if not channel["is_member"]:
            return _error("not_in_channel")
        limit = int(body.get("limit") or 100)
        return {"ok": True, "messages": channel["history"][:limit],
                "has_more": len(channel["history"]) > limit}

    def _views_publish(self, body: Args, token: str | None) -> Args:
        if not body.get("user_id") or not isinstance(body.get("view"), dict):
            return _error("invalid_arguments")
        self.views[body["user_id"]] = body["view"]
        return {"ok": True, "view": {"id": f"V{next(self._ts):08d}", **body["view"]}}

    def _views_open(self, body: Args, token: str | None) -> Args:
        view = body.get("view")
        if not body.get("trigger_id"):
            return _error("invalid_trigger_id")
        if not isinstance(view, dict) or view.get("type") != "modal":
            return _error("invalid_arguments")
        view_id = f"V{next(self._ts):08d}"
        self.modals[view_id] = view
        return {"ok": True, "view": {"id": view_id, **view}}

    def _views_update(self, body: Args, token: str | None) -> Args:
        view = body.get("view")
        view_id = body.get("view_id")
        if not isinstance(view, dict) or view_id not in self.modals:
            return _error("not_found")
        self.modals[view_id] = view
        return {"ok": True, "view": {"id": view_id, **view}}

    def _get_permalink(self, body: Args, token: str | None) -> Args:
        channel, ts = body.get("channel"), str(body.get("message_ts", ""))
        if not channel or not ts:
            return _error("invalid_arguments")
        link = f"https://fake.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        return {"ok": True, "channel": channel, "permalink": link}

    def _connections_open(self, body: Args, token: str | None) -> Args:
        return {"ok": True, "url": f"{self.socket_url}?ticket={uuid.uuid4()}"}

    def _oauth_v2_access(self, body: Args, token: str | None) -> Args:
        if self.client_id is not None and body.get("client_id") != self.client_id:
            return _error("invalid_client_id")
        if self.client_secret is not None and body.get("client_secret") != self.client_secret:
            return _error("bad_client_secret")
        if not body.get("code"):
            return _error("invalid_code")
        return {
            "ok": True, "app_id": self.app_id, "authed_user": {"id": "U222"},
            "scope": "app_mentions:read,assistant:write,chat:write,im:history,users:read",
            "token_type": "bot", "access_token": f"xoxb-installed-{self.team_id}",
            "bot_user_id": self.bot_user_id, "team": {"id": self.team_id, "name": self.team_name},
            "enterprise": None, "is_enterprise_install": False,
        }

    def _new_message(self, body: Args, **fields: Any) -> Message:
        thread_ts = body.get("thread_ts")
        return Message(channel=body["channel"], ts=self._next_ts(),
                       thread_ts=str(thread_ts) if thread_ts else None,
                       user=self.bot_user_id, bot_id=self.bot_id, **fields)

    def _streaming_message(self, body: Args) -> Message | None:
        message = self.messages.get((body.get("channel", ""), str(body.get("ts", ""))))
        return message if message is not None and message.streaming else None

    def _store(self, message: Message) -> Message:
        self.messages[(message.channel, message.ts)] = message
        return message

    def _next_ts(self) -> str:
        micros = next(self._ts) * 100
        return f"{1_700_000_000 + micros // 1_000_000}.{micros % 1_000_000:06d}"

    async def _wait(
        self, ready: Callable[[], bool], timeout: float, describe: Callable[[], str]
    ) -> None:
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(ready)
        except TimeoutError:
            raise TimeoutError(describe()) from None

    # --- websocket ---------------------------------------------------------------------------

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, timeout=2.0)
        await ws.prepare(request)
        self._sockets.append(ws)
        try:
            await ws.send_json({
                "type": "hello", "num_connections": len(self._sockets),
                "debug_info": {"host": "applink-fake", "build_number": 10,
                               "approximate_connection_time": 18060},
                "connection_info": {"app_id": self.app_id},
            })
            self.socket_connected.set()
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    async with self._changed:
                        self.socket_frames.append(json.loads(frame.data))
                        self._changed.notify_all()
        finally:
            self._sockets.remove(ws)
            if not self._sockets:
                self.socket_connected.clear()
        return ws


async def _read_args(request: web.Request) -> tuple[Args, str | None]:
    """Query string, form fields and JSON body merged; the token from header or `token`."""
    args: Args = {k: _decode(k, v) for k, v in request.query.items()}
    if request.content_type == "application/json":
        args.update(await request.json() if request.can_read_body else {})
    elif request.can_read_body:
        form = await request.post()
        args.update({k: _decode(k, v) for k, v in form.items() if isinstance(v, str)})
    token = args.pop("token", None)
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        token = auth.removeprefix("Bearer ").strip()
    elif auth.startswith("Basic "):  # oauth.v2.access sends client_id:client_secret
        login, _, password = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
        args.setdefault("client_id", login)
        args.setdefault("client_secret", password)
    return args, token or None


def _decode(key: str, value: str) -> Any:
    if key in _TEXT_FIELDS or not value.startswith(("[", "{")):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _appended(message: Message, body: Args) -> Message:
    """`markdown_text`, then the text of each markdown_text chunk; other chunks are kept."""
    text = body.get("markdown_text") or ""
    others = []
    for chunk in body.get("chunks") or []:
        if chunk.get("type") == "markdown_text":
            text += chunk.get("text", "")
        else:
            others.append(chunk)
    return replace(message, text=message.text + text, chunks=(*message.chunks, *others))


def _bad_chunks(body: Args, before: tuple[Args, ...]) -> bool:
    """Task statuses Slack accepts; plan and task cards never in one stream."""
    chunks = [*before, *(body.get("chunks") or [])]
    kinds = {chunk.get("type") for chunk in chunks}
    if any(c.get("type") == "blocks" and not 0 < len(c.get("blocks") or ()) <= 50
           for c in chunks):
        return True
    if {"task_update", "plan_update"} <= kinds:
        return True
    return any(chunk.get("type") == "task_update" and chunk.get("status") not in TASK_STATUSES
               for chunk in chunks)


def _ts_key(ts: str) -> tuple[int, ...]:
    return tuple(int(part) for part in ts.split("."))


def _ok(body: Args, token: str | None) -> Args:
    return {"ok": True}


def _error(error: str) -> Args:
    return {"ok": False, "error": error}

