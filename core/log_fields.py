"""Ids every log line carries while a message is handled (channel, message, inbox item,
conversation), without passing them to each call: a context variable, set where a turn
begins (and where a request hands a message to the inbox), read by the log formatter.

A request and a turn each run in their own task, so what one sets never leaks into another.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

LogValue = str | int

_fields: ContextVar[Mapping[str, LogValue]] = ContextVar("switchboard_log_fields", default={})


def current_log_fields() -> Mapping[str, LogValue]:
    return _fields.get()


def add_log_fields(**fields: LogValue | None) -> None:
    """Add to the fields of the current task, from here on (None values are skipped)."""
    _fields.set({**_fields.get(), **{k: v for k, v in fields.items() if v is not None}})


@contextmanager
def log_fields(**fields: LogValue | None) -> Iterator[None]:
    """These fields inside the block only."""
    token = _fields.set({**_fields.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _fields.reset(token)
