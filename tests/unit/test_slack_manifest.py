"""The Slack app manifest renders for any host, in HTTP or Socket Mode, and stays valid YAML."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bots.cli import main
from bots.slack_manifest import PLACEHOLDER, TEMPLATE, render_manifest

BOT_SCOPES = [
    "app_mentions:read",
    "assistant:write",
    "channels:history",
    "channels:read",
    "chat:write",
    "commands",
    "groups:history",
    "groups:read",
    "im:history",
    "im:read",
    "im:write",
    "usergroups:read",
    "users:read",
    "users:read.email",
]


def urls(node: Any) -> Iterator[str]:
    """Every string value in the manifest that looks like a URL."""
    if isinstance(node, dict):
        for value in node.values():
            yield from urls(value)
    elif isinstance(node, list):
        for value in node:
            yield from urls(value)
    elif isinstance(node, str) and "://" in node:
        yield node


def render(base_url: str | None, *, socket_mode: bool = False) -> dict[str, Any]:
    text = render_manifest(base_url, socket_mode=socket_mode)
    assert PLACEHOLDER not in text
    manifest = yaml.safe_load(text)
    assert isinstance(manifest, dict)
    return manifest


def test_the_template_is_valid_yaml_with_the_placeholder_in_every_url() -> None:
    manifest = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    assert manifest["_metadata"] == {"major_version": 2, "minor_version": 1}
    found = list(urls(manifest))
    assert len(found) == 5
    assert all(u.startswith(PLACEHOLDER + "/slack/") for u in found)


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("https://chat.example.com", "https://chat.example.com"),
        ("https://chat.example.com/", "https://chat.example.com"),
        ("https://example.com:8443/bot/", "https://example.com:8443/bot"),
        ("http://localhost:3978", "http://localhost:3978"),
        ("http://127.0.0.1:3978/", "http://127.0.0.1:3978"),
    ],
)
def test_every_url_lives_under_the_given_base_and_path_prefix(given: str, base: str) -> None:
    manifest = render(given)
    assert sorted(urls(manifest)) == [base + "/slack/events"] * 4 + [base + "/slack/oauth_redirect"]
    assert manifest["settings"]["event_subscriptions"]["request_url"] == base + "/slack/events"
    assert manifest["settings"]["interactivity"]["request_url"] == base + "/slack/events"
    assert manifest["features"]["slash_commands"][0]["url"] == base + "/slack/events"
    assert manifest["oauth_config"]["redirect_urls"] == [base + "/slack/oauth_redirect"]
    assert manifest["settings"]["socket_mode_enabled"] is False


def test_comments_survive_rendering() -> None:
    text = render_manifest("https://chat.example.com")
    assert "# Slack rejects a long_description shorter than 174 characters." in text


def test_socket_mode_without_a_url_declares_no_url_at_all() -> None:
    manifest = render(None, socket_mode=True)
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert "request_url" not in settings["event_subscriptions"]
    assert settings["event_subscriptions"]["bot_events"]  # still subscribed, over the socket
    assert settings["interactivity"] == {"is_enabled": True}
    assert all("url" not in command for command in manifest["features"]["slash_commands"])
    assert "redirect_urls" not in manifest["oauth_config"]
    assert list(urls(manifest)) == []


def test_socket_mode_with_a_url_keeps_only_the_oauth_redirect() -> None:
    manifest = render("https://chat.example.com/bot", socket_mode=True)
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert list(urls(manifest)) == ["https://chat.example.com/bot/slack/oauth_redirect"]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://chat.example.com", "https://"),
        ("http://chat.example.com", "https://"),
        ("chat.example.com", "https://"),
        ("https://chat.example.com/?team=T1", "query or fragment"),
        ("https://chat.example.com/#top", "query or fragment"),
        ("https://user:pw@chat.example.com", "host name"),
        ("https://", "host name"),
        ("https://chat.example.com:99999", "host name"),
        ("https://chat.example.com/a b", "path"),
        ("https://chat.example.com/a:#b", "query or fragment"),
    ],
)
def test_bad_base_urls_are_refused_with_a_one_line_reason(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as caught:
        render_manifest(url)
    assert "\n" not in str(caught.value)


def test_a_url_or_socket_mode_is_required() -> None:
    with pytest.raises(ValueError, match="Socket Mode"):
        render_manifest(None)


def test_scopes_events_and_slack_length_rules() -> None:
    manifest = render("https://chat.example.com")
    assert manifest["oauth_config"]["scopes"]["bot"] == BOT_SCOPES
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == [
        "app_context_changed",
        "app_home_opened",
        "app_mention",
        "assistant_thread_context_changed",
        "assistant_thread_started",
        "message.channels",
        "message.groups",
        "message.im",
        "agent_session_stopped",
    ]
    info = manifest["display_information"]
    assert len(info["long_description"]) >= 174  # Slack refuses shorter ones
    assert len(info["description"]) <= 140
    assert info["background_color"].startswith("#")
    assert len(manifest["features"]["agent_view"]["suggested_prompts"]) == 3


def test_tickets_have_a_slash_command_and_a_message_shortcut() -> None:
    features = render("https://chat.example.com")["features"]
    ticket = next(c for c in features["slash_commands"] if c["command"] == "/ticket")
    assert ticket["url"] == "https://chat.example.com/slack/events"
    assert "new <title>" in ticket["usage_hint"] and len(ticket["usage_hint"]) <= 1000
    assert features["shortcuts"] == [{
        "name": "Create ticket from message", "type": "message",
        "callback_id": "create_ticket_from_message",
        "description": "Open a support ticket prefilled with this message",
    }]


def test_cli_prints_the_manifest_as_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert main(["slack", "manifest", "--url", "https://chat.example.com/bot"]) == 0
    manifest = yaml.safe_load(capsys.readouterr().out)
    assert manifest["settings"]["event_subscriptions"]["request_url"] == (
        "https://chat.example.com/bot/slack/events"
    )

    assert main(["slack", "manifest", "--socket-mode"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["settings"]["socket_mode_enabled"] is True


@pytest.mark.parametrize(
    "argv",
    [["--url", "http://chat.example.com"], ["--url", "https://chat.example.com?x=1"], []],
)
def test_cli_exits_2_on_a_bad_or_missing_url(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert main(["slack", "manifest", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("switchboard: ") and err.count("\n") == 1
