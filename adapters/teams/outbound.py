"""Calls to the Bot Connector REST API (v3) as plain JSON on the app's aiohttp session:
answers, typing indicators, stream updates, cards and roster look-ups.

botbuilder's route (`continue_conversation` → a turn and its pipeline → msrest models,
serialization and validation) cost about a fifth of the CPU of every answer for the same
two requests; this sends what it sent (see `references.addressed`) to the same URLs.

The service URL's host is checked against the allow-list before a token is asked for or
attached. A POST that times out or fails with 5xx may already have delivered, so nothing
is repeated but a 429 (nothing was accepted), after `Retry-After`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import platform
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import aiohttp

from adapters.teams.credentials import AppTokens
from adapters.teams.references import addressed
from core.retry import retry_after_seconds

log = logging.getLogger(__name__)

MAX_429_RETRIES = 3
MAX_RETRY_AFTER = 30.0
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10)
USER_AGENT = f"python/{platform.python_version()} switchboard botframework-connector/v3"
# What msrest took as success for these operations; anything else is an error.
_POSTED = frozenset({200, 201, 202})
_FOUND = frozenset({200})
_UPDATED = frozenset({200, 201, 202})


class ConnectorError(Exception):
    """A call to the connector failed. `status` is the HTTP status it answered, None when
    no answer came (network error, timeout): the replier tells a refused stream (4xx) from
    a message that may have arrived (5xx, None) by it. `code` and `detail`: the error body's
    `error.code` and `error.message`, when it had them — Teams answers every refused stream
    update 403 `ContentStreamNotAllowed` and says why only in the message (the person
    pressed Stop, the two minutes ran out, …)."""

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail


class ServiceUrlNotAllowed(ConnectorError):
    """A stored or received service URL points outside the allow-list: nothing is sent."""


class ServiceHosts:
    """`TEAMS_SERVICE_URL_ALLOWLIST`: exact hosts, or `*.example.com` for subdomains."""

    def __init__(self, hosts: tuple[str, ...]) -> None:
        self._exact = {h.lower() for h in hosts if not h.startswith("*.")}
        self._suffixes = tuple(h[1:].lower() for h in hosts if h.startswith("*."))

    def allows(self, url: str) -> bool:
        host = (_host(url) or "").lower()
        return bool(host) and (host in self._exact or host.endswith(self._suffixes))


def _host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:  # not a URL (an unclosed IPv6 bracket, say)
        return None


def retry_delay(value: str | None, attempt: int) -> float:
    """The pause before retrying a 429: what `Retry-After` asks, else 2**attempt seconds,
    never over MAX_RETRY_AFTER."""
    seconds = retry_after_seconds(value)
    # A date already past most likely means the clocks disagree, not "retry at once": the
    # backoff stands. An explicit "0" is still taken at its word.
    if seconds is None or (seconds == 0 and value is not None and not value.strip().isdigit()):
        seconds = 2.0**attempt
    return min(seconds, MAX_RETRY_AFTER)


def connector_url(service_url: str, *segments: str) -> str:
    """`{serviceUrl}/v3/conversations/…` as msrest built it: each id quoted whole (a `/` in
    an id stays inside its segment), joined to the service URL with one slash."""
    path = "/".join(("v3/conversations", *(quote(s, safe="") for s in segments)))
    return urljoin(service_url.rstrip("/") + "/", path)


class BotConnector:
    """The Bot Connector of one app: one token scope, one allow-list, one session."""

    def __init__(
        self, session: aiohttp.ClientSession, tokens: AppTokens, *, scope: str,
        hosts: ServiceHosts,
    ) -> None:
        self._session = session
        self._tokens = tokens
        self._scope = scope
        self._hosts = hosts

    async def send(self, reference: Mapping[str, Any], activity: Mapping[str, Any]) -> str | None:
        """Sends `activity` into the conversation of `reference` (a reply to the activity
        it names, as `reply_to_activity`; else appended, as `send_to_conversation`).
        The id the connector gave the activity, if any (a stream's final gets none)."""
        outgoing = addressed(activity, reference)
        service_url = outgoing.get("serviceUrl")
        conversation = (outgoing.get("conversation") or {}).get("id")
        if not isinstance(service_url, str) or not isinstance(conversation, str):
            raise ConnectorError("the conversation reference has no service URL or conversation")
        headers = {"Accept": "application/json",
                   "Content-Type": "application/json; charset=utf-8"}
        reply_to = outgoing.get("replyToId")
        if reply_to:
            url = connector_url(service_url, conversation, "activities", str(reply_to))
            headers["x-ms-conversation-id"] = conversation
        else:
            url = connector_url(service_url, conversation, "activities")
        answer = await self._call(
            "POST", url, headers=headers, data=json.dumps(outgoing).encode(), ok=_POSTED
        )
        sent_id = answer.get("id") if isinstance(answer, dict) else None
        return str(sent_id) if sent_id is not None else None

    async def update(
        self, reference: Mapping[str, Any], activity_id: str, activity: Mapping[str, Any]
    ) -> None:
        """Replaces the activity `activity_id` the bot sent into the conversation of
        `reference` (`update_activity`)."""
        outgoing = {**addressed(activity, reference), "id": activity_id}
        outgoing.pop("replyToId", None)
        headers = {"Accept": "application/json",
                   "Content-Type": "application/json; charset=utf-8"}
        await self._call("PUT", _activity_url(outgoing, activity_id), headers=headers,
                         data=json.dumps(outgoing).encode(), ok=_UPDATED)

    async def delete(self, reference: Mapping[str, Any], activity_id: str) -> None:
        """Deletes the activity `activity_id` the bot sent into the conversation of
        `reference` (`delete_activity`)."""
        url = _activity_url(addressed({}, reference), activity_id)
        await self._call("DELETE", url, headers={"Accept": "application/json"}, ok=_UPDATED)

    async def member(
        self, service_url: str, conversation_id: str, member_id: str
    ) -> Mapping[str, Any]:
        """One member of a conversation (a `TeamsChannelAccount`: name, email, …)."""
        url = connector_url(service_url, conversation_id, "members", member_id)
        answer = await self._call("GET", url, headers={"Accept": "application/json"}, ok=_FOUND)
        if not isinstance(answer, dict):
            raise ConnectorError("the connector answered a member that is not an object")
        return answer

    async def _call(
        self, method: str, url: str, *, headers: dict[str, str], ok: frozenset[int],
        data: bytes | None = None,
    ) -> Any:
        if not self._hosts.allows(url):
            host = _host(url)
            log.error("refused to call %s: its host is not in TEAMS_SERVICE_URL_ALLOWLIST", host)
            raise ServiceUrlNotAllowed(f"service URL host {host!r} not allowed")
        token = await self._tokens.get(self._scope)
        headers = {**headers, "Authorization": f"Bearer {token}", "User-Agent": USER_AGENT}
        for attempt in range(MAX_429_RETRIES + 1):
            try:
                async with self._session.request(
                    method, url, headers=headers, data=data, timeout=REQUEST_TIMEOUT
                ) as response:
                    if response.status == 429 and attempt < MAX_429_RETRIES:
                        delay = retry_delay(response.headers.get("Retry-After"), attempt)
                    else:
                        body = await response.read()
                        if response.status not in ok:
                            code, detail = _error_fields(body)
                            raise ConnectorError(
                                f"the connector answered {response.status} to {method}: "
                                f"{code or 'no error code'}", status=response.status,
                                code=code, detail=detail,
                            )
                        return _json(body)
            except (aiohttp.ClientError, TimeoutError) as e:
                raise ConnectorError(f"{method} to the connector failed: {e!r}") from e
            log.warning("connector answered 429; retrying %s in %.1f s", method, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")


def _activity_url(addressed: Mapping[str, Any], activity_id: str) -> str:
    service_url = addressed.get("serviceUrl")
    conversation = (addressed.get("conversation") or {}).get("id")
    if not isinstance(service_url, str) or not isinstance(conversation, str):
        raise ConnectorError("the conversation reference has no service URL or conversation")
    return connector_url(service_url, conversation, "activities", activity_id)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _error_fields(body: bytes) -> tuple[str | None, str | None]:
    """The connector's error code and message (`{"error": {"code": …, "message": …}}`)."""
    error = _json(body)
    if not (isinstance(error, dict) and isinstance(error.get("error"), dict)):
        return None, None
    code, message = error["error"].get("code"), error["error"].get("message")
    return (str(code) if code else None), (str(message) if message else None)
