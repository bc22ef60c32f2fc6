"""Imports point inward: core imports no SDK, adapters do not import each other or bots."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SDKS = {
    "aiohttp", "aiohttp_sse", "aiosqlite", "alembic", "asyncpg", "botbuilder", "botframework",
    "httpx", "jwt", "markdown_it", "msal", "msrest", "openai", "prometheus_client",
    "pythonjsonlogger", "qdrant_client", "qdrant_edge", "requests", "slack_bolt", "slack_sdk",
    "sqlalchemy", "tiktoken",
}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", modules("core"), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_imports_no_sdk_and_nothing_outward(path: Path) -> None:
    bad = {
        name for name in imports(path)
        if name.split(".")[0] in SDKS | {"adapters", "bots"}
    }
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", modules("adapters"), ids=lambda p: str(p.relative_to(ROOT)))
def test_an_adapter_imports_only_core_and_its_own_sdk(path: Path) -> None:
    own = path.relative_to(ROOT / "adapters").parts[0]
    bad = {
        name for name in imports(path)
        if name.split(".")[0] == "bots"
        or (name.startswith("adapters.") and name.split(".")[1] != own)
    }
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


BOTBUILDER = {"botbuilder", "botframework", "msal", "msrest"}


@pytest.mark.parametrize(
    "path",
    [p for d in ("adapters", "bots", "core") for p in modules(d)
     if not p.is_relative_to(ROOT / "adapters" / "teams")],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_botbuilder_stays_in_the_teams_adapter(path: Path) -> None:
    """botbuilder-python is archived: keeping it in one package keeps a move to the
    Microsoft 365 Agents SDK to that package."""
    bad = {name for name in imports(path) if name.split(".")[0] in BOTBUILDER}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
