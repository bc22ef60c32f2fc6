"""`GroupStore` on SQL, and the lookup the `begin_turn` unit joins in (`sender_groups`).

Membership is read fresh on every turn, inside the unit that already opens the turn: one
indexed SELECT in a transaction that is there anyway, so a change made with
`switchboard groups` counts from the next message on, in every process, with no cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.engine import single_statement, transaction
from adapters.sql.tables import group_members
from adapters.sql.types import utcnow
from core.groups import GroupSummary, member_keys
from core.messages import Sender

_OF_MEMBERS = (
    select(group_members.c.group_name).distinct()
    .where(group_members.c.member.in_(bindparam("b_members", expanding=True)))
    .order_by(group_members.c.group_name)
)


def sender_groups(conn: Connection, sender_id: str, email: str | None) -> tuple[str, ...]:
    """The groups naming the sender by id or email, sorted (for the units of work)."""
    keys = list(member_keys(sender_id, email))
    return tuple(conn.execute(_OF_MEMBERS, {"b_members": keys}).scalars())


class SqlGroupStore:
    def __init__(self, engine: AsyncEngine, *, now: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._now = now

    async def add(self, group: str, members: Sequence[str]) -> int:
        insert = postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
        statement = insert(group_members).on_conflict_do_nothing(
            index_elements=["group_name", "member"]
        )
        added, now = 0, self._now()
        async with transaction(self._engine, "adding group members") as conn:
            for member in dict.fromkeys(members):
                result = await conn.execute(
                    statement, {"group_name": group, "member": member, "added_at": now}
                )
                added += result.rowcount
        return added

    async def remove(self, group: str, members: Sequence[str]) -> int:
        statement = delete(group_members).where(
            group_members.c.group_name == group, group_members.c.member.in_(list(members))
        )
        async with single_statement(self._engine, "removing group members") as conn:
            removed: int = (await conn.execute(statement)).rowcount
        return removed

    async def members(self, group: str) -> list[str]:
        query = (
            select(group_members.c.member).where(group_members.c.group_name == group)
            .order_by(group_members.c.member)
        )
        async with single_statement(self._engine, "reading a group") as conn:
            return list((await conn.execute(query)).scalars())

    async def groups_of(self, sender: Sender) -> frozenset[str]:
        keys = list(member_keys(sender.id, sender.email))
        async with single_statement(self._engine, "reading a sender's groups") as conn:
            return frozenset((await conn.execute(_OF_MEMBERS, {"b_members": keys})).scalars())

    async def list(self) -> list[GroupSummary]:
        query = (
            select(group_members.c.group_name, func.count())
            .group_by(group_members.c.group_name).order_by(group_members.c.group_name)
        )
        async with single_statement(self._engine, "listing groups") as conn:
            rows = (await conn.execute(query)).all()
        return [GroupSummary(name=name, members=count) for name, count in rows]
