"""`switchboard apikey create | list | revoke`: API keys kept in the database.

The key itself goes to stdout alone (`KEY=$(switchboard apikey create --user ada)`), once;
everything said about it goes to stderr. Every process reads the same table on every
request, so a revoked key stops working at once, with no restart.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, TextIO

from core.apikeys import ApiKey, new_key

if TYPE_CHECKING:  # the database side loads when a command runs, not for `--help`
    from bots.settings import Settings

_DURATION = re.compile(r"(\d+)\s*([mhdw])", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def add_apikey_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    apikey = sub.add_parser("apikey", help="make, list and revoke API keys")
    commands = apikey.add_subparsers(dest="apikey_command", required=True, metavar="COMMAND")
    create = commands.add_parser("create", help="make a key for a user (shown once)")
    create.add_argument("--user", required=True, type=user_name,
                        help="who the key acts as (web:local:USER)")
    create.add_argument("--expires", metavar="WHEN", type=expiry,
                        help="after a duration (90d, 12h, 2w, 30m) or on a date "
                        "(2027-01-31, 00:00 UTC; or an ISO date and time); default: never")
    commands.add_parser("list", help="every key: id, user, prefix, expiry, state")
    revoke = commands.add_parser("revoke", help="stop a key at once, in every process")
    revoke.add_argument("id", metavar="ID", help="as `apikey list` shows it")


def user_name(raw: str) -> str:
    """`--user`: the last part of a channel-scoped id, so no colon and no spaces."""
    name = raw.strip()
    if not name or len(name) > 200 or ":" in name or any(c.isspace() for c in name):
        raise argparse.ArgumentTypeError("a user name of 1 to 200 characters, no ':' or spaces")
    return name


def expiry(raw: str, *, now: datetime | None = None) -> datetime:
    """`--expires`: a duration from now, or a date (its start, UTC), or a date and time."""
    now = now or datetime.now(UTC)
    if match := _DURATION.fullmatch(raw.strip()):
        amount, unit = int(match[1]), _UNITS[match[2].lower()]
        if amount < 1:
            raise argparse.ArgumentTypeError("a duration must be at least 1")
        return now + timedelta(**{unit: amount})
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw.strip()):
            when = datetime.combine(date.fromisoformat(raw.strip()), datetime.min.time(), UTC)
        else:
            when = datetime.fromisoformat(raw.strip())
            when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is neither a duration (90d, 12h, 2w, 30m) nor a date (2027-01-31)"
        ) from None
    if when <= now:
        raise argparse.ArgumentTypeError(f"{raw} is in the past")
    return when


async def run_apikey_command(
    args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    from adapters.sql.api_keys import SqlApiKeys
    from bots.database import open_database

    async with open_database(settings) as engine:
        keys = SqlApiKeys(engine)
        match args.apikey_command:
            case "create":
                made = new_key()
                key = await keys.create(made, user=args.user, expires_at=args.expires)
                print(f"API key {key.id} for {key.user}, {_expires(key)}. It is shown only "
                      "this once: keep it now.", file=err)
                print(made.secret, file=out)
            case "list":
                _table(await keys.list(), out)
            case "revoke":
                revoked = await keys.revoke(args.id)
                if revoked is None:
                    print(f"switchboard: no API key {args.id} (see `switchboard apikey list`)",
                          file=err)
                    return 1
                print(f"revoked API key {revoked.id} of {revoked.user}", file=err)
    return 0


def _expires(key: ApiKey) -> str:
    return f"expires {_when(key.expires_at)}" if key.expires_at else "never expires"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


def _table(keys: list[ApiKey], out: TextIO) -> None:
    if not keys:
        print("no API keys (make one with `switchboard apikey create --user NAME`)", file=out)
        return
    now = datetime.now(UTC)
    rows = [("ID", "USER", "PREFIX", "CREATED", "EXPIRES", "STATE")] + [
        (k.id, k.user, k.prefix + "…", _when(k.created_at), _when(k.expires_at), k.state(now))
        for k in keys
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(),
              file=out)
