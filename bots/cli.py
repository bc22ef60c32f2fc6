"""The `switchboard` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bots.apikeys import add_apikey_commands
from bots.groups import add_groups_commands
from bots.logs import configure_logging
from bots.settings import Settings, load_settings
from bots.source_commands import add_source_commands
from core.errors import ConfigurationError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchboard",
        description="A self-hosted AI assistant for workplace chat.",
    )
    parser.add_argument("--version", action="version", version=f"switchboard {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="serve the web chat, the REST API and the channels")
    serve.add_argument("--host", help="address to listen on (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: PORT or 3978)")
    serve.add_argument(
        "--role", choices=["all", "web", "worker"], default="all",
        help="all: receive and answer (default); web: receive and acknowledge only, for "
        "`switchboard worker` processes to answer; worker: answer only",
    )
    sub.add_parser("worker", help="answer what the web processes receive (serve --role worker)")
    sub.add_parser("chat", help="chat in this terminal")
    sub.add_parser("doctor", help="check the configuration and reach every backend")
    purge = sub.add_parser(
        "purge", help="delete conversations, turns, feedback and finished work older than "
        "SWITCHBOARD_RETENTION_DAYS (or --days)")
    purge.add_argument("--days", type=_days, metavar="N",
                       help="retention in days (default: SWITCHBOARD_RETENTION_DAYS)")
    purge.add_argument("--dry-run", action="store_true", help="count only, delete nothing")
    export = sub.add_parser(
        "export", help="one conversation or one person's data as JSON (audits, data requests)")
    subject = export.add_mutually_exclusive_group(required=True)
    subject.add_argument("--conversation", metavar="ID", help="a conversation id")
    subject.add_argument("--user", metavar="ID",
                         help="a channel-scoped id: slack:T1:U1, teams:<tenant>:<id>, "
                         "web:local:alice, cli:<host>:<user>")
    export.add_argument("--output", "-o", type=Path, metavar="FILE",
                        help="write here (mode 600) instead of standard output")
    add_apikey_commands(sub)
    add_groups_commands(sub)
    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    db_sub.add_parser("upgrade", help="apply the database migrations")
    slack = sub.add_parser("slack", help="set up the Slack app")
    slack_sub = slack.add_subparsers(dest="slack_command", required=True, metavar="COMMAND")
    manifest = slack_sub.add_parser("manifest", help="print the Slack app manifest for your host")
    manifest.add_argument("--url", help="the public HTTPS base URL, e.g. https://chat.example.com")
    manifest.add_argument(
        "--socket-mode", action="store_true", help="Socket Mode: no request URLs, --url optional"
    )
    ingest = sub.add_parser("ingest", help="add documents to the knowledge base")
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    ingest.add_argument("--source-url-prefix", metavar="URL",
                        help="link each file as URL + its path under the folder given")
    ingest.add_argument("--visibility", choices=["public", "restricted"], default=None,
                        help="for documents whose front matter does not say (default: "
                        "restricted when an --allow-… is given, else public)")
    ingest.add_argument("--allow-user", action="append", default=[], metavar="ID",
                        help="an email or channel-scoped id (slack:T1:U2) who may read them")
    ingest.add_argument("--allow-group", action="append", default=[], metavar="NAME")
    ingest.add_argument("--allow-channel", action="append", default=[], metavar="ID",
                        help="a channel that may read them: slack:T1:C2 or teams:<tenant>:<id>")
    ingest.add_argument("--prune", action="store_true",
                        help="remove indexed documents under PATH that no longer exist")
    ingest.add_argument("-v", "--verbose", action="store_true",
                        help="list every skipped file with its reason, not only the counts")
    ingest.add_argument("--server", metavar="URL",
                        help="upload to the assistant at URL (an admin's API key in "
                        "SWITCHBOARD_API_KEY); without it, an assistant running on this "
                        "DATA_DIR takes the ingest, or the index is opened here")
    add_source_commands(sub)
    kb = sub.add_parser("kb", help="inspect and maintain the knowledge base")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True, metavar="COMMAND")
    stats = kb_sub.add_parser("stats", help="what is indexed")
    stats.add_argument("--sources", action="store_true", help="list every document")
    delete = kb_sub.add_parser("delete", help="remove one document")
    delete.add_argument("source", metavar="SOURCE", help="as `kb stats --sources` lists it")
    evaluate = kb_sub.add_parser("eval", help="retrieval quality on a BEIR-layout data set")
    evaluate.add_argument("dataset", metavar="DIR", type=Path)
    teams = sub.add_parser("teams", help="set up the Teams app")
    teams_sub = teams.add_subparsers(dest="teams_command", required=True, metavar="COMMAND")
    package = teams_sub.add_parser("package", help="build the Teams app package (zip) to upload")
    package.add_argument("--app-id", required=True, help="the bot's Microsoft App ID")
    package.add_argument("--url", required=True, help="the public HTTPS base URL")
    package.add_argument("--out", default=".", help="zip file or folder (default: here)")
    package.add_argument("--name", default=None, help="the app's name (default: the bot name)")
    package.add_argument("--app-version", default="1.0.0", help="raise it to update the app")
    return parser


def _version() -> str:
    try:
        return version("switchboard")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 36_500:  # as SWITCHBOARD_RETENTION_DAYS
        raise argparse.ArgumentTypeError("must be from 1 to 36500")
    return value


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides: dict[str, Any] = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None):
        overrides["port"] = args.port
    try:
        settings = load_settings(**overrides)
        configure_logging(settings.log_level, settings.secrets(),
                          json=settings.log_format == "json", content=settings.log_content,
                          file=_log_file(args, settings))
        return _run(args, settings)
    except ConfigurationError as e:
        print(f"switchboard: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _log_file(args: argparse.Namespace, settings: Settings) -> Path | None:
    if args.command == "chat":
        from bots.chat import chat_log

        return chat_log(settings)
    return None


def _run(args: argparse.Namespace, settings: Settings) -> int:
    match args.command:
        case "serve" if args.role == "worker":
            from bots.server import work

            work(settings)
        case "serve":
            from bots.server import serve

            serve(settings, role=args.role)
        case "worker":
            from bots.server import work

            work(settings)
        case "chat":
            from bots.chat import chat_log, run_chat

            asyncio.run(run_chat(settings, log=chat_log(settings)))
        case "doctor":
            from bots.doctor import diagnose, report

            return report(asyncio.run(diagnose(settings)), sys.stdout)
        case "purge":
            from bots.retention import run_purge

            return asyncio.run(
                run_purge(settings, days=args.days, dry_run=args.dry_run, out=sys.stdout)
            )
        case "export":
            from bots.retention import run_export

            return asyncio.run(run_export(
                settings, conversation=args.conversation, user=args.user,
                output=args.output, out=sys.stdout,
            ))
        case "apikey":
            from bots.apikeys import run_apikey_command

            return asyncio.run(run_apikey_command(args, settings))
        case "groups":
            from bots.groups import run_groups_command

            return asyncio.run(run_groups_command(args, settings))
        case "db":
            from bots.database import upgrade

            print(asyncio.run(upgrade(settings)))
        case "slack":
            from bots.slack_manifest import render_manifest

            try:
                sys.stdout.write(render_manifest(args.url, socket_mode=args.socket_mode))
            except ValueError as e:
                print(f"switchboard: {e}", file=sys.stderr)
                return 2
        case "ingest" | "kb":
            from bots.knowledge import run_knowledge_command

            return asyncio.run(run_knowledge_command(args, settings))
        case "source":
            from bots.source_commands import run_source_command

            return asyncio.run(run_source_command(args, settings))
        case "teams":
            from bots.teams_package import build_package

            try:
                path = build_package(
                    args.app_id, Path(args.out), base_url=args.url,
                    name=args.name or settings.bot_name, version=args.app_version,
                )
            except (ValueError, OSError) as e:
                print(f"switchboard: {e}", file=sys.stderr)
                return 2
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
