"""The `switchboard` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from bots.logs import configure_logging
from bots.settings import Settings, load_settings
from core.errors import ConfigurationError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchboard",
        description="A self-hosted AI assistant for workplace chat.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="serve the web chat, the REST API and the channels")
    serve.add_argument("--host", help="address to listen on (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: PORT or 3978)")
    sub.add_parser("chat", help="chat in this terminal")
    sub.add_parser("doctor", help="check the configuration and reach every backend")
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
    teams = sub.add_parser("teams", help="set up the Teams app")
    teams_sub = teams.add_subparsers(dest="teams_command", required=True, metavar="COMMAND")
    package = teams_sub.add_parser("package", help="build the Teams app package (zip) to upload")
    package.add_argument("--app-id", required=True, help="the bot's Microsoft App ID")
    package.add_argument("--url", required=True, help="the public HTTPS base URL")
    package.add_argument("--out", default=".", help="zip file or folder (default: here)")
    package.add_argument("--name", default=None, help="the app's name (default: the bot name)")
    package.add_argument("--app-version", default="1.0.0", help="raise it to update the app")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides: dict[str, Any] = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None):
        overrides["port"] = args.port
    try:
        settings = load_settings(**overrides)
        configure_logging(settings.log_level, settings.secrets())
        return _run(args, settings)
    except ConfigurationError as e:
        print(f"switchboard: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace, settings: Settings) -> int:
    match args.command:
        case "serve":
            from bots.server import serve

            serve(settings)
        case "chat":
            from bots.chat import run_chat

            asyncio.run(run_chat(settings))
        case "doctor":
            from bots.doctor import diagnose, report

            return report(asyncio.run(diagnose(settings)), sys.stdout)
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
        case "teams":
            from pathlib import Path

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
