"""`switchboard groups add | remove | list | show`: groups kept in the database.

A member is an email (matched against senders' verified emails) or a channel-scoped id
(`slack:T123:U456`). Every process reads membership when a turn begins, so a change
counts from the next message on, with no restart.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from core.groups import GroupError, group_name, member_name

if TYPE_CHECKING:  # the database side loads when a command runs, not for `--help`
    from bots.settings import Settings

_MEMBER_HELP = "an email (ada@example.com) or a channel-scoped id (slack:T123:U456)"


def add_groups_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    groups = sub.add_parser("groups", help="named sets of people, for access lists and "
                            "ticket agents")
    commands = groups.add_subparsers(dest="groups_command", required=True, metavar="COMMAND")
    add = commands.add_parser("add", help="add members to a group (made when first used)")
    remove = commands.add_parser("remove", help="take members out of a group")
    for command in (add, remove):
        command.add_argument("group", metavar="GROUP", type=_checked(group_name))
        command.add_argument("members", metavar="MEMBER", nargs="+",
                             type=_checked(member_name), help=_MEMBER_HELP)
    commands.add_parser("list", help="every group and how many members it has")
    show = commands.add_parser("show", help="a group's members")
    show.add_argument("group", metavar="GROUP", type=_checked(group_name))


def _checked(parse: Callable[[str], str]) -> Callable[[str], str]:
    """argparse reports an `ArgumentTypeError`'s message (and exits 2) as a usage error."""

    def check(raw: str) -> str:
        try:
            return parse(raw)
        except GroupError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return check


async def run_groups_command(
    args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    from adapters.sql.groups import SqlGroupStore
    from bots.database import open_database

    async with open_database(settings) as engine:
        groups = SqlGroupStore(engine)
        match args.groups_command:
            case "add":
                added = await groups.add(args.group, args.members)
                already = len(set(args.members)) - added
                note = f" ({already} already in it)" if already else ""
                print(f"added {added} to {args.group}{note}", file=err)
            case "remove":
                removed = await groups.remove(args.group, args.members)
                if not removed:
                    print(f"switchboard: none of them is in {args.group} "
                          "(see `switchboard groups show GROUP`)", file=err)
                    return 1
                print(f"removed {removed} from {args.group}", file=err)
            case "list":
                found = await groups.list()
                if not found:
                    print("no groups (make one with `switchboard groups add GROUP MEMBER…`)",
                          file=err)
                width = max((len(g.name) for g in found), default=0)
                for group in found:
                    print(f"{group.name.ljust(width)}  {group.members}", file=out)
            case "show":
                members = await groups.members(args.group)
                if not members:
                    print(f"switchboard: no group {args.group} (see `switchboard groups list`)",
                          file=err)
                    return 1
                for member in members:
                    print(member, file=out)
    return 0
