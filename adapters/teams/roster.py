"""Who sent a message: name and email from the conversation roster, cached.

A roster lookup is one connector call made while Teams waits for our answer to its
request, so it is cached (an hour; a failure for a minute), made once at a time per
person, bounded by a short timeout, and never fatal: without it the message is still
answered, only without the sender's email. What it finds rides with the message as its
`Sender`; `begin_turn` keeps it in the profile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from adapters.teams.credentials import TokenUnavailable
from adapters.teams.outbound import BotConnector, ConnectorError

log = logging.getLogger(__name__)

FOUND_TTL = 3600.0
MISSING_TTL = 60.0
LOOKUP_TIMEOUT = 2.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Member:
    tenant: str
    aad_object_id: str
    name: str | None
    email: str | None


class TeamsRoster:
    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], tuple[float, Member | None]] = {}
        self._pending: dict[tuple[str, str], asyncio.Future[Member | None]] = {}

    async def get(
        self, connector: BotConnector, *, service_url: str, tenant: str, conversation_id: str,
        member_id: str, aad_object_id: str,
    ) -> Member | None:
        key = (tenant, aad_object_id)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        if key in self._pending:
            return await asyncio.shield(self._pending[key])
        future: asyncio.Future[Member | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            member = await self._fetch(
                connector, service_url, tenant, conversation_id, member_id, aad_object_id
            )
            future.set_result(member)
            return member
        finally:
            del self._pending[key]
            if not future.done():
                future.set_result(None)

    async def _fetch(
        self, connector: BotConnector, service_url: str, tenant: str, conversation_id: str,
        member_id: str, aad_object_id: str,
    ) -> Member | None:
        key = (tenant, aad_object_id)
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT):
                account = await connector.member(service_url, conversation_id, member_id)
        except (ConnectorError, TokenUnavailable, TimeoutError) as e:
            log.info("no roster entry for a member of %s: %s", conversation_id, type(e).__name__)
            self._cache[key] = (time.monotonic() + MISSING_TTL, None)
            return None
        member = Member(
            tenant=tenant,
            aad_object_id=_text(account.get("aadObjectId")) or aad_object_id,
            name=_text(account.get("name")),
            email=_text(account.get("email")),
        )
        self._cache[key] = (time.monotonic() + FOUND_TTL, member)
        return member


def _text(value: object) -> str | None:
    """A field of the member as text, as botbuilder's model read it."""
    return None if value is None else str(value)
