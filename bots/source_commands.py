"""`switchboard source add | list | remove | sync`: folders the running assistant keeps in
sync, kept in the database beside those SWITCHBOARD_SOURCES declares.

The command only writes SQL; the process that owns the index (`serve`, `worker`) reads it
every few seconds, so a source added here is synced at once, with no restart.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from core.sources import (
    DEFAULT_INTERVAL,
    DeclaredSource,
    SourceAccess,
    SourceError,
    SourceRecord,
    absolute,
    format_interval,
    parse_interval,
)

if TYPE_CHECKING:  # the database side loads when a command runs, not for `--help`
    from adapters.sql.sources import SqlSourceStore
    from bots.settings import Settings

ENVIRONMENT_HELP = ("SWITCHBOARD_SOURCES declares more from the environment: PATH or "
                    "PATH=INTERVAL, separated by commas (/srv/handbook=10m,/mnt/wiki=1h)")


def add_source_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    source = sub.add_parser(
        "source", help="folders the running assistant re-ingests on a schedule (with prune)",
        description="Folders kept in sync by the running assistant: re-ingested every "
        f"interval, incrementally, with --prune. {ENVIRONMENT_HELP}.")
    commands = source.add_subparsers(dest="source_command", required=True, metavar="COMMAND")
    add = commands.add_parser("add", help="keep a folder in sync",
                              epilog=ENVIRONMENT_HELP)
    add.add_argument("path", metavar="PATH", help="a folder (or file) the assistant can read")
    add.add_argument("--every", type=_interval, default=DEFAULT_INTERVAL, metavar="INTERVAL",
                     help="how often: 30s, 10m, 1h, 1h30m (default 10m, at least 10s)")
    add.add_argument("--source-url-prefix", metavar="URL",
                     help="link each file as URL + its path under the folder")
    add.add_argument("--visibility", choices=["public", "restricted"], default=None,
                     help="for documents whose front matter does not say (default: "
                     "restricted when an --allow-… is given, else public)")
    add.add_argument("--allow-user", action="append", default=[], metavar="ID",
                     help="an email or channel-scoped id (slack:T1:U2) who may read them")
    add.add_argument("--allow-group", action="append", default=[], metavar="NAME")
    add.add_argument("--allow-channel", action="append", default=[], metavar="ID",
                     help="a channel that may read them: slack:T1:C2 or teams:<tenant>:<id>")
    commands.add_parser("list", help="every source, its last run and when it runs next")
    remove = commands.add_parser("remove", help="stop keeping a source in sync (its "
                                 "documents stay indexed)")
    remove.add_argument("id", metavar="ID", type=_source_id)
    sync = commands.add_parser("sync", help="sync now (one source, or all)")
    sync.add_argument("id", metavar="ID", type=_source_id, nargs="?")


def _interval(raw: str) -> int:
    try:
        return parse_interval(raw)
    except SourceError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _source_id(raw: str) -> int:
    if not raw.isdigit():
        raise argparse.ArgumentTypeError(f"{raw!r} is not a source id (see `switchboard "
                                         "source list`)")
    return int(raw)


async def run_source_command(
    args: argparse.Namespace, settings: Settings, out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    from adapters.sql.sources import SqlSourceStore
    from bots.database import open_database

    out, err = out or sys.stdout, err or sys.stderr

    async with open_database(settings) as engine:
        store = SqlSourceStore(engine)
        match args.source_command:
            case "add":
                return await _add(args, settings, store, err)
            case "list":
                _print(await store.list(), settings, out, err)
            case "remove":
                match await store.remove(args.id):
                    case "missing":
                        print(f"switchboard: no source {args.id} (see `switchboard source "
                              "list`)", file=err)
                        return 1
                    case "environment":
                        print(f"switchboard: source {args.id} is declared in "
                              "SWITCHBOARD_SOURCES: remove it there", file=err)
                        return 1
                print(f"removed source {args.id}: no longer synced; its documents stay in "
                      "the knowledge base", file=err)
            case "sync":
                if not await store.sync_now(args.id):
                    what = f"no source {args.id}" if args.id is not None else "no sources"
                    print(f"switchboard: {what} (see `switchboard source list`)", file=err)
                    return 1
                which = f"source {args.id}" if args.id is not None else "every source"
                print(f"{which} is due now: the running assistant syncs it within seconds",
                      file=err)
    return 0


async def _add(
    args: argparse.Namespace, settings: Settings, store: SqlSourceStore, err: TextIO
) -> int:
    from adapters.ingest.pipeline import IngestOptions

    path = absolute(args.path)
    if not Path(path).exists():
        print(f"switchboard: no such file or directory: {args.path}", file=err)
        return 2
    access = SourceAccess(
        visibility=args.visibility, users=tuple(dict.fromkeys(args.allow_user)),
        groups=tuple(dict.fromkeys(args.allow_group)),
        channels=tuple(dict.fromkeys(args.allow_channel)),
        source_url_prefix=args.source_url_prefix,
    )
    try:  # the same check `ingest` makes, before anything is kept
        IngestOptions(count_tokens=len, visibility=access.visibility,
                      allow_users=frozenset(access.users), allow_groups=frozenset(access.groups),
                      allow_channels=frozenset(access.channels))
    except ValueError as e:
        print(f"switchboard: {e}", file=err)
        return 2
    if any(declared.path == path for declared in settings.declared_sources):
        print(f"switchboard: {path} is declared in SWITCHBOARD_SOURCES already", file=err)
        return 1
    source_id = await store.add(DeclaredSource(path=path, interval=args.every, access=access))
    if source_id is None:
        print(f"switchboard: {path} is a source already (see `switchboard source list`)",
              file=err)
        return 1
    print(f"added source {source_id}: {path}, every {format_interval(args.every)}, "
          f"{access.describe()}; the running assistant syncs it within seconds", file=err)
    return 0


def _print(records: list[SourceRecord], settings: Settings, out: TextIO, err: TextIO) -> None:
    """Each source on one line, its last run and next run indented under it. A source
    SWITCHBOARD_SOURCES declares here that no assistant has registered yet is shown too."""
    registered = {r.declared.path for r in records if r.origin == "env"}
    pending = [d for d in settings.declared_sources if d.path not in registered]
    if not records and not pending:
        print("no sources (add one with `switchboard source add PATH`, or set "
              "SWITCHBOARD_SOURCES)", file=err)
    for record in records:
        declared = record.declared
        origin = "  [SWITCHBOARD_SOURCES]" if record.origin == "env" else ""
        print(f"{record.id}  {declared.path}  every {format_interval(declared.interval)}  "
              f"{declared.access.describe()}{origin}", file=out)
        print(f"    {_last_run(record)}", file=out)
        if record.last is not None and record.last.error:
            print(f"    last error: {record.last.error}", file=out)
    for declared in pending:
        print(f"-  {declared.path}  every {format_interval(declared.interval)}  public  "
              "[SWITCHBOARD_SOURCES]", file=out)
        print("    not registered yet: the assistant takes it up when it starts", file=out)


def _last_run(record: SourceRecord) -> str:
    if record.running and record.last_started_at is not None:
        now = f"syncing now (since {_time(record.last_started_at)})"
    else:
        now = f"next run {_time(record.next_run_at)}"
    last = record.last
    if last is None:
        return f"never run; {now}"
    if last.outcome == "ok" and last.counts is not None:
        what = f"ok, {last.counts.files} files: {last.counts.describe()}"
    else:
        what = "error"
    return f"last run {_time(last.finished_at)}: {what}; {now}"


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")
