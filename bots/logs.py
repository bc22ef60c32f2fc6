"""Logging set-up: text or JSON lines, the ids of the message being handled on every
record, every known secret masked before a record is written, and the SDKs that log
message text kept quiet unless content logging is asked for."""

from __future__ import annotations

import logging
import logging.handlers
from collections.abc import Iterable
from pathlib import Path

from pythonjsonlogger.json import JsonFormatter

from core.log_fields import current_log_fields

# A log file that nothing rotates for it (the terminal chat's) stays this small.
FILE_BYTES = 1_000_000
FILE_BACKUPS = 3

# Loggers whose records carry message text or prompts below WARNING: slack_sdk logs each
# Web API request and response body at DEBUG (chat.postMessage's text, the stream's
# chunks), Bolt the incoming event, openai the request options (every prompt),
# botbuilder/msrest the activities, SQLAlchemy the statements' parameters (turns).
CONTENT_LOGGERS = ("slack_sdk", "slack_bolt", "openai", "botbuilder", "botframework",
                   "msrest", "sqlalchemy")
# Loggers that log request details (headers included) at DEBUG: at WARNING always.
NOISY_LOGGERS = ("httpx", "httpcore", "httpx2", "aiosqlite", "asyncio", "alembic", "msal",
                 "urllib3", "pypdf")


class RedactSecrets(logging.Filter):
    """Masks secret values wherever they appear in a formatted record, including
    exception text (an SDK error can echo a URL with a password or a bearer token)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted(set(secrets), key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        masked = self._mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_text:
            record.exc_text = self._mask(record.exc_text)
            # Formatters use the masked text only while there is no exception to format
            # afresh (python-json-logger formats `exc_info` again whenever it is set).
            record.exc_info = None
        return True

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


class LogFields(logging.Filter):
    """Puts the ids of the message being handled (`core.log_fields`) on each record:
    fields of their own in JSON lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current_log_fields().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "{asctime}{levelname}{name}{message}", style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )


def configure_logging(
    level: str, secrets: Iterable[str], *, json: bool = False, content: bool = False,
    file: Path | None = None,
) -> None:
    """`json`: one JSON object per line. `content`: let the SDKs that log message text
    (CONTENT_LOGGERS) log at `level` too; otherwise they log warnings and errors only.
    `file`: log there (rotated) instead of stderr, for a process whose stderr is where a
    person reads the conversation."""
    handler: logging.Handler
    if file is None:
        handler = logging.StreamHandler()
    else:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            file, maxBytes=FILE_BYTES, backupCount=FILE_BACKUPS, encoding="utf-8"
        )
        logging.captureWarnings(True)  # `warnings` would write to stderr
    handler.setFormatter(
        json_formatter() if json else
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    )
    handler.addFilter(LogFields())
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet = max(logging.WARNING, logging.getLevelName(level))
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(quiet)
    for name in CONTENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if content else quiet)
