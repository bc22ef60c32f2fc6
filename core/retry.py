"""Reading an HTTP `Retry-After` header; what to do with it is each caller's retry policy."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# RFC 9110 delta-seconds is 1*DIGIT in ASCII; str.isdigit() would also take "²" or "٣".
_DELTA_SECONDS = re.compile(r"[0-9]+")


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds from `now`: delta-seconds or an HTTP date (RFC 9110 §10.2.3).

    None when the header is absent or unparseable; a date already past is 0, never negative.
    A `now` without a time zone is taken as UTC, as HTTP dates are.
    """
    if value is None or not (value := value.strip()):
        return None
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        # Takes all three HTTP-date forms: IMF-fixdate, RFC 850 and asctime.
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    now = now or datetime.now(UTC)
    return max(0.0, (_utc(when) - _utc(now)).total_seconds())


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
