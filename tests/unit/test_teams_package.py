"""The Teams app package: a manifest valid under the official schema, the icons Teams requires."""

from __future__ import annotations

import hashlib
import json
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bots.teams_package import (
    COMMANDS,
    PLACEHOLDER_ID,
    PLACEHOLDER_URL,
    TEMPLATE,
    TEMPLATE_DIR,
    build_package,
    render_manifest,
)

SCHEMA_FILE = Path(__file__).parents[1] / "fixtures/teams/schema/MicrosoftTeams.schema.json"
# The vendored file is the one in @microsoft/app-manifest 1.1.2 (see SOURCE.md), unedited.
SCHEMA_SHA256 = "3339690aacd9049bc65ade66b258982803d8c6c6d3897a23f8a057b6ebe35479"
SCHEMA_URL = "https://developer.microsoft.com/json-schemas/teams/v1.30/MicrosoftTeams.schema.json"
APP_ID = "8f0c2d4e-1a2b-4c3d-9e8f-0123456789ab"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WHITE = (255, 255, 255)


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    assert cls is jsonschema.Draft4Validator  # the draft the schema declares
    # One pattern (Office add-in custom functions) uses `\p{L}`, which Python's `re` lacks;
    # check the schema's structure without the "regex" format. Our manifest never reaches it.
    cls.check_schema(schema, format_checker=None)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def assert_valid(validator: jsonschema.protocols.Validator, manifest: dict[str, Any]) -> None:
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(manifest)]
    assert errors == []


def test_the_vendored_schema_is_the_published_file_unedited() -> None:
    assert hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest() == SCHEMA_SHA256
    refs = re.findall(r'"\$ref":\s*"([^"]*)"', SCHEMA_FILE.read_text(encoding="utf-8"))
    # Every $ref points inside the file: there is nothing else to vendor.
    assert refs and all(ref.startswith("#/") for ref in refs)


def test_the_template_itself_is_a_valid_manifest_with_placeholders(
    validator: jsonschema.protocols.Validator,
) -> None:
    template = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    assert_valid(validator, template)
    assert template["$schema"] == SCHEMA_URL
    assert template["manifestVersion"] == validator.schema["properties"]["manifestVersion"]["const"]
    assert template["id"] == template["bots"][0]["botId"] == PLACEHOLDER_ID
    assert template["validDomains"] == ["your.host"]
    assert all(
        url.startswith(PLACEHOLDER_URL + "/")
        for url in template["developer"].values()
        if "://" in url
    )


@pytest.mark.parametrize(
    ("given", "base", "domain"),
    [
        ("https://chat.example.com", "https://chat.example.com", "chat.example.com"),
        ("https://Chat.Example.com/", "https://chat.example.com", "chat.example.com"),
        ("https://example.com:8443/bot/", "https://example.com:8443/bot", "example.com"),
    ],
)
def test_a_rendered_manifest_is_valid_and_points_at_the_host(
    validator: jsonschema.protocols.Validator, given: str, base: str, domain: str
) -> None:
    manifest = render_manifest(APP_ID.upper(), base_url=given)
    assert_valid(validator, manifest)
    assert manifest["id"] == manifest["bots"][0]["botId"] == APP_ID
    assert manifest["validDomains"] == [domain]
    assert manifest["developer"] == {
        "name": "Switchboard",
        "websiteUrl": base + "/",
        "privacyUrl": base + "/privacy",
        "termsOfUseUrl": base + "/terms",
    }
    text = json.dumps(manifest)
    assert PLACEHOLDER_ID not in text and "your.host" not in text


def test_the_validator_is_not_vacuous(validator: jsonschema.protocols.Validator) -> None:
    manifest = render_manifest(APP_ID, base_url="https://chat.example.com")
    manifest["bots"][0]["botId"] = "not-a-guid"
    manifest["developer"]["privacyUrl"] = "ftp://chat.example.com/privacy"
    manifest["bots"][0]["supportFiles"] = False  # misspelt
    paths = sorted(e.json_path for e in validator.iter_errors(manifest))
    assert paths == ["$.bots[0]", "$.bots[0].botId", "$.developer.privacyUrl"]


def test_name_and_version_are_filled_in(validator: jsonschema.protocols.Validator) -> None:
    manifest = render_manifest(
        APP_ID, base_url="https://chat.example.com", name="  Ask IT  ", version="1.4.0"
    )
    assert_valid(validator, manifest)
    assert manifest["name"] == {"short": "Ask IT"}
    assert manifest["version"] == "1.4.0"
    assert render_manifest(APP_ID, base_url="https://chat.example.com")["version"] == "1.0.0"


def test_the_bot_is_conversational_everywhere_and_takes_no_files() -> None:
    (bot,) = render_manifest(APP_ID, base_url="https://chat.example.com")["bots"]
    assert bot["scopes"] == ["personal", "team", "groupChat"]
    assert bot["supportsFiles"] is False
    assert bot["isNotificationOnly"] is False


def test_the_command_menu_is_commands_in_every_scope() -> None:
    expected = [{"title": title, "description": text} for title, text in COMMANDS]
    template = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    rendered = render_manifest(APP_ID, base_url="https://chat.example.com")
    for manifest in (template, rendered):  # the checked-in template must not drift either
        lists = manifest["bots"][0]["commandLists"]
        assert [entry["scopes"] for entry in lists] == [["personal"], ["team"], ["groupChat"]]
        assert all(entry["commands"] == expected for entry in lists)
    assert [title for title, _ in COMMANDS] == ["help", "ticket", "ticket list"]


@pytest.mark.parametrize(
    ("app_id", "why"),
    [
        ("", "GUID"),
        ("not-a-guid", "GUID"),
        ("8f0c2d4e1a2b4c3d9e8f0123456789ab", "GUID"),
        ("{8f0c2d4e-1a2b-4c3d-9e8f-0123456789ab}", "GUID"),
        ("8f0c2d4e-1a2b-4c3d-9e8f-0123456789ag", "GUID"),
        (PLACEHOLDER_ID, "placeholder"),
    ],
)
def test_bad_app_ids_are_refused(app_id: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as caught:
        render_manifest(app_id, base_url="https://chat.example.com")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://chat.example.com", "https://"),
        ("http://localhost:3978", "https://"),
        ("chat.example.com", "https://"),
        ("ftp://chat.example.com", "https://"),
        ("https://chat.example.com/?x=1", "query or fragment"),
        ("https://user:pw@chat.example.com", "host name"),
        ("https://", "host name"),
        ("https://chat.example.com/a b", "path"),
    ],
)
def test_bad_base_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as caught:
        render_manifest(APP_ID, base_url=url)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"name": "   "}, "empty"),
        ({"name": "x" * 31}, "at most 30"),
        ({"name": "Switch\nboard"}, "control"),
        ({"version": "1.0"}, "three numbers"),
        ({"version": "v1.0.0"}, "three numbers"),
        ({"version": "1.01.0"}, "three numbers"),
    ],
)
def test_bad_names_and_versions_are_refused(kwargs: dict[str, str], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        render_manifest(APP_ID, base_url="https://chat.example.com", **kwargs)


def chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    assert data[:8] == PNG_SIGNATURE
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        yield kind, body
        pos += 12 + length


def png_size(data: bytes) -> tuple[int, int]:
    kind, body = next(chunks(data))
    assert kind == b"IHDR"
    width, height = struct.unpack(">II", body[:8])
    return width, height


def png_pixels(data: bytes) -> list[tuple[int, ...]]:
    """RGBA pixels of the PNGs we draw: 8-bit RGBA, not interlaced, every row unfiltered."""
    found = list(chunks(data))
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", found[0][1])
    assert (depth, colour, interlace) == (8, 6, 0), "this decoder reads only 8-bit RGBA"
    raw = zlib.decompress(b"".join(body for kind, body in found if kind == b"IDAT"))
    stride = 1 + 4 * width
    assert len(raw) == height * stride
    rows = [raw[y * stride : (y + 1) * stride] for y in range(height)]
    assert all(row[0] == 0 for row in rows), "this decoder reads only filter type 0"
    return [tuple(row[1 + 4 * x : 5 + 4 * x]) for row in rows for x in range(width)]


@pytest.mark.parametrize(("icon", "size"), [("color.png", 192), ("outline.png", 32)])
def test_the_icons_are_pngs_of_the_sizes_teams_requires(icon: str, size: int) -> None:
    template = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    assert icon in template["icons"].values()
    assert png_size((TEMPLATE_DIR / icon).read_bytes()) == (size, size)


def test_the_outline_icon_is_white_on_transparent_only() -> None:
    pixels = png_pixels((TEMPLATE_DIR / "outline.png").read_bytes())
    assert len(pixels) == 32 * 32
    assert all(p[3] == 0 or p[:3] == WHITE for p in pixels)
    assert any(p == (*WHITE, 255) for p in pixels)  # something is drawn
    assert pixels[0][3] == 0  # on a transparent background


def test_the_colour_icon_is_drawn_in_the_accent_colour() -> None:
    pixels = png_pixels((TEMPLATE_DIR / "color.png").read_bytes())
    accent = json.loads(TEMPLATE.read_text(encoding="utf-8"))["accentColor"]
    top_middle = pixels[8 * 192 + 96]
    assert top_middle == (*bytes.fromhex(accent[1:]), 255)
    assert any(p == (*WHITE, 255) for p in pixels)


def test_the_package_is_the_manifest_and_icons_at_the_zip_root(tmp_path: Path) -> None:
    out = build_package(APP_ID, tmp_path / "app.zip", base_url="https://chat.example.com")
    assert out == tmp_path / "app.zip"
    with zipfile.ZipFile(out) as package:
        assert package.testzip() is None
        assert package.namelist() == ["manifest.json", "color.png", "outline.png"]
        manifest = json.loads(package.read("manifest.json").decode("utf-8"))
        icons = {icon: package.read(icon) for icon in ("color.png", "outline.png")}
    assert manifest == render_manifest(APP_ID, base_url="https://chat.example.com")
    assert icons == {icon: (TEMPLATE_DIR / icon).read_bytes() for icon in icons}
    assert list(tmp_path.iterdir()) == [out]  # no partial file left behind


def test_the_package_is_reproducible_and_defaults_its_name_in_a_directory(
    tmp_path: Path,
) -> None:
    first = build_package(APP_ID, tmp_path, base_url="https://chat.example.com", name="Ask IT")
    assert first == tmp_path / "switchboard-teams.zip"
    again = build_package(
        APP_ID, tmp_path / "b.zip", base_url="https://chat.example.com", name="Ask IT"
    )
    assert first.read_bytes() == again.read_bytes()


def test_a_refused_argument_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        build_package("nope", tmp_path / "app.zip", base_url="https://chat.example.com")
    with pytest.raises(ValueError):
        build_package(APP_ID, tmp_path / "app.zip", base_url="http://chat.example.com")
    assert list(tmp_path.iterdir()) == []


def test_the_cli_writes_the_package_and_refuses_a_bad_app_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bots.cli import main

    out = tmp_path / "app.zip"
    args = ["teams", "package", "--app-id", "11111111-2222-3333-4444-555555555555",
            "--url", "https://bot.example.com", "--out", str(out)]

    assert main(args) == 0
    assert zipfile.ZipFile(out).namelist() == ["manifest.json", "color.png", "outline.png"]
    assert main([*args[:3], "not-a-guid", *args[4:]]) == 2
    assert "GUID" in capsys.readouterr().err
