"""The `switchboard` command: terminal chat, doctor and migrations."""

from __future__ import annotations

import asyncio
import io
import socket
from pathlib import Path

import pytest

from adapters.sql import migrate
from bots.chat import run_chat
from bots.cli import main
from bots.settings import load_settings
from tests.fakes.scripted import ScriptedChatModel, says


class Lines(io.StringIO):
    def isatty(self) -> bool:
        return False


def chat(tmp_path: Path, text: str, model: ScriptedChatModel) -> str:
    out = io.StringIO()
    asyncio.run(run_chat(load_settings(data_dir=tmp_path), lines=Lines(text), out=out, model=model))
    return out.getvalue()


def test_terminal_chat_streams_answers_and_threads_persist_across_runs(tmp_path: Path) -> None:
    model = ScriptedChatModel([says("Hello ", "there."), says("Noted."), says("Fresh start.")])
    first = chat(tmp_path, "hi\n", model)
    assert "Hello there." in first

    second = chat(tmp_path, "remember this\n/new\nand now?\n", model)
    assert second.startswith("Continuing your last thread")
    assert "you> hi" in second and "Hello there." in second
    assert "Started a new thread." in second
    # The second message continued the first thread; the third started a new one.
    assert [m.content for m in model.requests[1].messages[1:]] == ["hi", "Hello there.", "remember this"]
    assert [m.content for m in model.requests[2].messages[1:]] == ["and now?"]


def test_doctor_reports_offline_defaults_as_missing_not_broken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "ok       database" in out and "ok       qdrant" in out
    assert "missing  model" in out and "OPENAI_API_KEY" in out


def test_doctor_fails_when_a_configured_backend_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-doctor-secret-value")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "BROKEN   model" in out and "unreachable" in out
    assert "sk-doctor-secret-value" not in out


def test_invalid_settings_exit_2_listing_every_problem(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PORT", "-1")
    monkeypatch.setenv("SWITCHBOARD_CONTEXT_TOKENS", "ten")
    assert main(["doctor"]) == 2
    err = capsys.readouterr().err
    assert "PORT:" in err and "SWITCHBOARD_CONTEXT_TOKENS:" in err


def test_db_upgrade_migrates_and_reports_the_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "new"))
    assert main(["db", "upgrade"]) == 0
    assert capsys.readouterr().out.strip().endswith(f"is at revision {migrate.HEAD}")
    assert (tmp_path / "new" / "switchboard.db").exists()


@pytest.mark.parametrize("args", [
    ["--user", "a:b"], ["--user", " "], ["--user", "ada", "--expires", "2001-01-01"],
    ["--user", "ada", "--expires", "soon"],
])
def test_apikey_create_refuses_a_bad_user_or_expiry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as exited:
        main(["apikey", "create", *args])
    assert exited.value.code == 2
    assert "sbk_" not in capsys.readouterr().out
