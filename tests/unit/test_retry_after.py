"""`Retry-After` is read as delta-seconds or an HTTP date, and anything else is no answer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.retry import retry_after_seconds

WHEN = datetime(2025, 5, 1, 9, 30, tzinfo=UTC)


def test_delta_seconds_are_read_as_seconds() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(" 120 ") == 120.0
    assert retry_after_seconds("0") == 0.0


@pytest.mark.parametrize(
    "value",
    [
        "Thu, 01 May 2025 09:30:30 GMT",  # IMF-fixdate, the form to send
        "Thursday, 01-May-25 09:30:30 GMT",  # obsolete RFC 850
        "Thu May  1 09:30:30 2025",  # obsolete asctime, UTC without saying so
    ],
)
def test_an_http_date_is_read_as_seconds_from_now(value: str) -> None:
    assert retry_after_seconds(value, now=WHEN) == 30.0


def test_a_date_already_past_means_no_wait_never_a_negative_one() -> None:
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=WHEN) == 0.0


def test_a_now_without_a_time_zone_is_taken_as_utc() -> None:
    naive = WHEN.replace(tzinfo=None)
    assert retry_after_seconds("Thu, 01 May 2025 09:30:30 GMT", now=naive) == 30.0


@pytest.mark.parametrize("value", [None, "", "  ", "soon", "1.5", "-3", "²", "Thu, 31 Feb 2025"])
def test_an_absent_or_unreadable_header_gives_none(value: str | None) -> None:
    assert retry_after_seconds(value) is None


def test_without_now_the_date_is_measured_from_the_clock() -> None:
    seconds = retry_after_seconds("Fri, 01 Jan 9999 00:00:00 GMT")
    assert seconds is not None and seconds > 0
