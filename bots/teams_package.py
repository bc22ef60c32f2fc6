"""`switchboard teams package`: the Teams app package (manifest + icons), rendered for one host.

The template in manifests/teams/ is a valid manifest as it stands: its ids are the all-zero
GUID and its host is `your.host`. Rendering fills in the bot's Microsoft App ID, the public
host and the display name; the package is the zip Teams accepts for upload.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from adapters.teams.commands import COMMANDS
from bots.slack_manifest import normalise_base_url

TEMPLATE_DIR = Path(__file__).parents[1] / "manifests" / "teams"
TEMPLATE = TEMPLATE_DIR / "manifest.json"
ICONS = ("color.png", "outline.png")
PLACEHOLDER_ID = "00000000-0000-0000-0000-000000000000"
PLACEHOLDER_URL = "https://your.host"
DEFAULT_PACKAGE_NAME = "switchboard-teams.zip"

COMMAND_SCOPES = ("personal", "team", "groupChat")

_GUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_SEMVER = re.compile(r"(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)")
_NAME_MAX = 30  # the schema's limit for name.short
# Fixed timestamps, so the same inputs always give the same zip bytes.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def render_manifest(
    app_id: str, *, base_url: str, name: str = "Switchboard", version: str = "1.0.0"
) -> dict[str, Any]:
    """The Teams app manifest for the bot `app_id` served at `base_url`, or ValueError why."""
    app_id = _check_app_id(app_id)
    base = _check_base_url(base_url)
    name = _check_name(name)
    if not _SEMVER.fullmatch(version):
        raise ValueError(f"app version must look like 1.0.0 (three numbers), not {version!r}")
    manifest: dict[str, Any] = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    manifest["id"] = app_id
    manifest["version"] = version
    manifest["name"]["short"] = name
    developer = manifest["developer"]
    for key in ("websiteUrl", "privacyUrl", "termsOfUseUrl"):
        if not developer[key].startswith(PLACEHOLDER_URL + "/"):
            raise RuntimeError(f"{TEMPLATE}: developer.{key} is not under {PLACEHOLDER_URL}/")
        developer[key] = base + developer[key].removeprefix(PLACEHOLDER_URL)
    # Domains, not URLs: no scheme, port or path.
    manifest["validDomains"] = [urlsplit(base).hostname]
    (bot,) = manifest["bots"]
    bot["botId"] = app_id
    bot["commandLists"] = command_lists()
    return manifest


def build_package(
    app_id: str,
    out: Path,
    *,
    base_url: str,
    name: str = "Switchboard",
    version: str = "1.0.0",
) -> Path:
    """Write the app package (manifest.json, color.png, outline.png at the zip root).

    `out` is the zip to write, or a directory to write `switchboard-teams.zip` into.
    Returns the path written; nothing is written when an argument is refused.
    """
    manifest = render_manifest(app_id, base_url=base_url, name=name, version=version)
    target = out / DEFAULT_PACKAGE_NAME if out.is_dir() else out
    files = {"manifest.json": (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()}
    files |= {icon: (TEMPLATE_DIR / icon).read_bytes() for icon in ICONS}
    partial = target.with_name(target.name + ".partial")
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as package:
            for filename, data in files.items():
                entry = zipfile.ZipInfo(filename, date_time=_ZIP_TIME)
                entry.external_attr = 0o644 << 16
                package.writestr(entry, data, compress_type=zipfile.ZIP_DEFLATED)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def command_lists() -> list[dict[str, Any]]:
    """COMMANDS as the manifest's bot command menu: one list per scope, as Teams asks."""
    commands = [{"title": title, "description": text} for title, text in COMMANDS]
    return [{"scopes": [scope], "commands": list(commands)} for scope in COMMAND_SCOPES]


def _check_app_id(app_id: str) -> str:
    value = app_id.strip().lower()
    if not _GUID.fullmatch(value):
        raise ValueError(
            f"app id must be the bot's Microsoft App ID, a GUID like "
            f"12345678-9abc-def0-1234-56789abcdef0, not {app_id!r}"
        )
    if value == PLACEHOLDER_ID:
        raise ValueError("app id is the all-zero placeholder: use the bot's Microsoft App ID")
    return value


def _check_base_url(url: str) -> str:
    # Teams only calls https endpoints, so unlike Slack there is no http://localhost exception.
    if urlsplit(url.strip()).scheme != "https":
        raise ValueError(f"base URL must start with https:// (Teams needs HTTPS), not {url!r}")
    return normalise_base_url(url)


def _check_name(name: str) -> str:
    value = name.strip()
    if not value:
        raise ValueError("app name must not be empty")
    if len(value) > _NAME_MAX:
        raise ValueError(f"app name must be at most {_NAME_MAX} characters, not {len(value)}")
    if not value.isprintable():
        raise ValueError(f"app name must not contain control characters: {name!r}")
    return value
