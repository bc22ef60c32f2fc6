"""`switchboard doctor` asks Slack who the bot is (`auth.test`, against the fake Slack Web
API), and `switchboard --version` says what is installed."""

from __future__ import annotations

import asyncio
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest

from bots.cli import main
from tests.e2e.processes import CLI, REPOSITORY, clean_env, free_port
from tests.fakes.slack_api import ApiError, FakeSlack

TOKEN = "xoxb-doctor-0000-secret"


def _slack_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, api_url: str) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "doctor-signing-secret")
    monkeypatch.setenv("SLACK_API_URL", api_url)


async def _doctor(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    # The CLI runs its own event loop; the fake Slack serves from this one.
    code = await asyncio.to_thread(main, ["doctor"])
    out = capsys.readouterr().out
    assert TOKEN not in out
    return code, out


def _line(out: str, area: str) -> str:
    [line] = [line for line in out.splitlines() if line.split()[1:2] == [area]]
    return line


async def test_doctor_shows_the_workspace_and_bot_slack_accepts_the_token_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeSlack(team_id="T42", team_name="Acme", bot_user_id="UBOT9") as slack:
        _slack_env(monkeypatch, tmp_path, slack.base_url)
        code, out = await _doctor(capsys)
        [call] = [c for c in slack.calls if c.method == "auth.test"]

    assert code == 0, out
    assert call.token == TOKEN
    line = _line(out, "slack")
    assert line.startswith("ok ")
    assert "workspace Acme (T42)" in line and "(UBOT9)" in line and "HTTP events" in line


async def test_doctor_checks_the_app_token_of_a_socket_mode_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-doctor-app-token")
    async with FakeSlack() as slack:
        _slack_env(monkeypatch, tmp_path, slack.base_url)
        code, out = await _doctor(capsys)
        slack.script("apps.connections.open", ApiError("invalid_auth"))
        refused, refusal = await _doctor(capsys)

    assert code == 0 and _line(out, "slack").endswith(", Socket Mode")
    assert refused == 1 and "Slack refused the app token: invalid_auth" in refusal
    assert "xapp-doctor-app-token" not in out + refusal


async def test_doctor_fails_when_slack_refuses_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeSlack() as slack:
        slack.script("auth.test", ApiError("invalid_auth"))
        _slack_env(monkeypatch, tmp_path, slack.base_url)
        code, out = await _doctor(capsys)

    assert code == 1
    assert _line(out, "slack").startswith("BROKEN ")
    assert "Slack refused the bot token: invalid_auth" in out


async def test_doctor_fails_when_slack_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _slack_env(monkeypatch, tmp_path, f"http://127.0.0.1:{free_port()}/api/")
    code, out = await _doctor(capsys)

    assert code == 1
    line = _line(out, "slack")
    assert line.startswith("BROKEN ") and "unreachable" in line


def test_doctor_says_how_to_set_slack_up_when_it_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert main(["doctor"]) == 0
    line = _line(capsys.readouterr().out, "slack")
    assert line.startswith("missing ") and "SLACK_BOT_TOKEN" in line


def test_version_prints_the_installed_version() -> None:
    done = subprocess.run([*CLI, "--version"], env=clean_env({}), cwd=REPOSITORY,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"switchboard {version('switchboard')}\n"
