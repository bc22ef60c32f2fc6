"""`RateLimiter` with the `limits` library: fixed windows, one per person and one per
workspace, counted in whatever storage the composition root gives (SQL, to share the
count among processes)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from limits import RateLimitItem
from limits.aio.storage import Storage
from limits.aio.strategies import FixedWindowRateLimiter

from core.limits import Admission, Admitted, Limited


class LimitsRateLimiter:
    def __init__(
        self, storage: Storage, *, per_user: RateLimitItem | None,
        per_workspace: RateLimitItem | None, now: Callable[[], float] = time.time,
    ) -> None:
        self._limiter = FixedWindowRateLimiter(storage)
        self._limits = [("user", per_user), ("workspace", per_workspace)]
        self._now = now

    async def admit(self, sender_id: str, workspace: str) -> Admission:
        for scope, item in self._limits:
            if item is None:
                continue
            who = sender_id if scope == "user" else workspace
            if await self._limiter.hit(item, scope, who):
                continue
            stats = await self._limiter.get_window_stats(item, scope, who)
            # One "slow down" per person and window: a limit of 1 over the same period.
            notice = type(item)(1, item.multiples)
            tell = await self._limiter.hit(notice, "told", scope, sender_id)
            return Limited(
                scope="user" if scope == "user" else "workspace",
                retry_after=max(1, math.ceil(stats.reset_time - self._now())),
                tell=tell,
            )
        return Admitted()
