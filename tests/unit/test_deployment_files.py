"""The Dockerfile, compose.yaml and .env.example, checked by what can run without Docker:
the files parse, every command in them is one the CLI accepts and the README's Production
section shows, the health checks ask routes the app serves, and .env.example names every
setting the settings object reads (a new setting without a line there fails here)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices

from bots.cli import _parser
from bots.settings import Settings

ROOT = Path(__file__).parents[2]


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return document


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line and line[0] != "#")
    ]


def _final_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def _production_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n## Production\n")
    end = readme.find("\n## ", start + 1)
    return readme[start:end]


def _argv(command: list[str] | str) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def _accepted_by_the_cli(argv: list[str]) -> None:
    assert argv[0] == "switchboard"
    _parser().parse_args(argv[1:])  # exits (SystemExit) on an unknown command or role


def _setting_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice) for choice in alias.choices)
        else:
            names.add(str(alias or name).upper())
    return names


def _switchboard_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in _compose()["services"].items() if "command" in s}


# ----- compose.yaml ---------------------------------------------------------------------


def test_compose_runs_the_production_layout() -> None:
    services = _compose()["services"]
    assert set(services) >= {"postgres", "qdrant", "migrate", "web", "worker"}
    assert _argv(services["migrate"]["command"]) == ["switchboard", "db", "upgrade"]
    assert _argv(services["worker"]["command"]) == ["switchboard", "worker"]
    web = _argv(services["web"]["command"])
    assert web[:4] == ["switchboard", "serve", "--role", "web"] and "0.0.0.0" in web
    assert services["migrate"]["restart"] == "no"  # one-shot


@pytest.mark.parametrize("name", ["migrate", "web", "worker"])
def test_every_switchboard_service_runs_a_command_the_cli_accepts_and_the_readme_shows(
    name: str,
) -> None:
    argv = _argv(_compose()["services"][name]["command"])
    _accepted_by_the_cli(argv)
    assert " ".join(argv) in _production_section()


def test_processes_start_after_the_migrations_and_on_healthy_backends() -> None:
    services = _compose()["services"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("web", "worker"):  # workers search Qdrant, web shows cited documents
        needs = services[name]["depends_on"]
        assert needs["migrate"] == {"condition": "service_completed_successfully"}
        assert needs["postgres"] == {"condition": "service_healthy"}
        assert needs["qdrant"] == {"condition": "service_healthy"}


def test_long_running_services_have_health_checks_and_the_one_shot_step_none() -> None:
    services = _compose()["services"]
    for name in ("postgres", "qdrant", "web", "worker"):
        assert services[name]["healthcheck"]["test"], name
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "/readyz" in " ".join(services["qdrant"]["healthcheck"]["test"])
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])
    # A worker serves only its metrics, on the port its environment gives it.
    worker = services["worker"]
    port = worker["environment"]["SWITCHBOARD_METRICS_PORT"]
    assert f":{port}/metrics" in " ".join(worker["healthcheck"]["test"])
    assert services["migrate"]["healthcheck"] == {"disable": True}


def test_switchboard_services_reach_the_compose_database_and_qdrant() -> None:
    for name, service in _switchboard_services().items():
        env = service["environment"]
        assert "@postgres:5432/" in env["DATABASE_URL"], name
        assert "http://qdrant:6333" in env["QDRANT_URL"], name
        assert service["build"] == "." and service["env_file"][0]["path"] == ".env"


# ----- Dockerfile -----------------------------------------------------------------------


def test_the_image_is_small_and_runs_as_a_user_not_root() -> None:
    stages = [args for word, args in _dockerfile() if word == "FROM"]
    assert len(stages) == 2 and all("-slim" in s.split()[0] for s in stages)
    installs = [args for word, args in _dockerfile() if word == "RUN" and "pip install" in args]
    assert installs and all("--no-cache-dir" in args for args in installs)
    users = [args for word, args in _final_stage() if word == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_the_image_keeps_its_data_in_a_volume_at_data_dir() -> None:
    final = _final_stage()
    [volume] = [args for word, args in final if word == "VOLUME"]
    env = " ".join(args for word, args in final if word == "ENV")
    assert f"DATA_DIR={volume}" in env


def test_the_image_checks_its_health_on_a_route_the_app_serves() -> None:
    [check] = [args for word, args in _final_stage() if word == "HEALTHCHECK"]
    route = re.search(r"/(readyz|healthz)\b", check)
    assert route is not None
    from adapters.web import routes

    assert f'"/{route.group(1)}"' in Path(routes.__file__).read_text()


def test_the_image_runs_a_command_the_cli_accepts_and_the_readme_shows() -> None:
    [cmd] = [args for word, args in _final_stage() if word == "CMD"]
    argv = json.loads(cmd)  # exec form: signals reach switchboard, not a shell
    _accepted_by_the_cli(argv)
    assert " ".join(argv) in _production_section()


def test_secrets_and_local_state_stay_out_of_the_build_context() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".venv", ".git"} <= ignored


# ----- .env.example ---------------------------------------------------------------------


def _env_example_names() -> set[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {m.group(1) for line in lines if (m := re.match(r"#?\s*([A-Za-z_]\w*)=", line))}


def test_env_example_names_exactly_every_setting() -> None:
    """Plus the variables compose.yaml itself interpolates (not settings)."""
    compose_only = set(re.findall(r"\$\{(\w+)", (ROOT / "compose.yaml").read_text()))
    listed = _env_example_names()
    settings = _setting_names()
    assert settings - listed == set(), "settings missing from .env.example"
    assert listed - settings - compose_only == set(), ".env.example names unknown settings"
