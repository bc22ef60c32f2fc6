"""Knowledge that changes while the assistant runs: `switchboard ingest` from a second
process goes to the running `switchboard serve` (its control socket, or `--server` with an
admin's key), the new document is cited at once with no restart, two ingests at once
lose and duplicate nothing, and `switchboard chat` is answered by the running assistant.
Real processes, the embedded index, no model (offline answers cite what was found)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.processes import CLI, REPOSITORY, Child, Processes, clean_env

ADMIN_KEY = "admin-key-0123456789abcdef"
READER_KEY = "reader-key-0123456789abcdef"


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    env = {"DATA_DIR": str(tmp_path / "data"), "SWITCHBOARD_BUNDLED_DOCS": "false",
           "SWITCHBOARD_LOG_LEVEL": "INFO"}
    with Processes(tmp_path / "processes", env) as processes:
        yield processes
        print(processes.report())


def write(folder: Path, name: str, text: str) -> Path:
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


def switchboard(procs: Processes, *args: str, stdin: str = "",
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A `switchboard` command run to its end, as a person would in a second terminal."""
    return subprocess.run(
        [*CLI, *args], input=stdin, capture_output=True, text=True, timeout=120, check=False,
        cwd=REPOSITORY, env=clean_env({**procs.env, **(env or {})}),
    )


async def serve(procs: Processes, env: dict[str, str] | None = None) -> Child:
    child = procs.start("serve", "serve", http=True, env=env)
    await procs.ready(child)
    return child


async def ask(url: str, question: str, key: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/api/v1/chat", json={"message": question}, headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer


def titles(answer: dict[str, Any]) -> list[str]:
    return [c["title"] for c in answer["citations"]]


async def test_a_document_ingested_from_a_second_process_is_cited_without_a_restart(
    procs: Processes, tmp_path: Path
) -> None:
    server = await serve(procs)
    assert server.url is not None
    before = await ask(server.url, "What is the zebra crossing code?")
    docs = tmp_path / "docs"
    write(docs, "zebra.md", "# Zebra crossing\n\nThe zebra crossing code is ZX-4471.\n")

    ingested = switchboard(procs, "ingest", str(docs))

    assert ingested.returncode == 0, ingested.stderr
    assert "1 files: 1 added" in ingested.stdout
    answer = await ask(server.url, "What is the zebra crossing code?")
    assert "Zebra crossing" not in titles(before)
    assert titles(answer)[0] == "Zebra crossing" and "ZX-4471" in answer["reply"]
    # The same process answered: it was never stopped to let the ingest in.
    assert server.running and not server.stopped
    again = switchboard(procs, "ingest", str(docs))
    assert "0 added, 0 updated, 1 unchanged" in again.stdout  # incremental, as before


async def test_kb_stats_and_delete_reach_the_running_assistant(
    procs: Processes, tmp_path: Path
) -> None:
    server = await serve(procs)
    assert server.url is not None
    docs = tmp_path / "docs"
    write(docs, "zebra.md", "# Zebra crossing\n\nThe zebra crossing code is ZX-4471.\n")
    write(docs, "lion.md", "# Lion enclosure\n\nThe lion enclosure code is LE-1212.\n")
    assert switchboard(procs, "ingest", str(docs)).returncode == 0
    zebra = (docs / "zebra.md").resolve().as_uri()

    stats = switchboard(procs, "kb", "stats", "--sources")
    deleted = switchboard(procs, "kb", "delete", zebra)
    missing = switchboard(procs, "kb", "delete", zebra)

    assert stats.returncode == 0, stats.stderr
    assert "embedded Qdrant Edge shard" in stats.stdout and "2 documents, 2 passages" in stats.stdout
    assert f"  {zebra}" in stats.stdout
    assert deleted.returncode == 0 and f"removed {zebra} (1 passages)" in deleted.stdout
    assert missing.returncode == 1 and "no document" in missing.stdout
    assert "Zebra crossing" not in titles(await ask(server.url, "zebra crossing code"))


async def test_two_ingests_at_once_during_chat_lose_and_duplicate_nothing(
    procs: Processes, tmp_path: Path
) -> None:
    server = await serve(procs)
    assert server.url is not None
    docs = tmp_path / "docs"
    for n in range(40):
        write(docs, f"team-{n:02d}.md",
              f"# Team {n:02d}\n\nTeam {n:02d} owns service code SVC-{n:02d}{n:02d}.\n")
    runs = [subprocess.Popen([*CLI, "ingest", str(docs)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=REPOSITORY,
                             env=clean_env(dict(procs.env)))
            for _ in range(2)]
    finished = asyncio.gather(*(asyncio.to_thread(run.communicate, timeout=120)
                                for run in runs))
    answers = []
    while not finished.done():  # chat goes on meanwhile; every question gets an answer
        answers += await asyncio.gather(*(ask(server.url, f"who owns SVC-{n:02d}{n:02d}?")
                                          for n in range(0, 40, 4)))
    outputs = await finished

    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
    summaries = sorted(out for out, _ in outputs)
    # One run wrote the documents, the other found them written (they took turns).
    assert "40 added" in summaries[0] + summaries[1]
    assert "40 unchanged" in summaries[0] + summaries[1]
    assert all("40 passages indexed" in out for out in summaries), summaries
    assert answers and all(a["reply"] for a in answers)
    answer = await ask(server.url, "who owns SVC-0707?")
    assert titles(answer)[0] == "Team 07"
    assert len(titles(answer)) == len(set(titles(answer)))  # each passage once


async def test_an_admin_uploads_to_a_server_and_prune_replaces_the_folder(
    procs: Processes, tmp_path: Path
) -> None:
    server = await serve(procs, env={
        "SWITCHBOARD_API_KEYS": f"root:{ADMIN_KEY},reader:{READER_KEY}",
        "SWITCHBOARD_ADMINS": "root",
    })
    assert server.url is not None
    handbook = tmp_path / "elsewhere" / "handbook"
    write(handbook, "okapi.md", "# Okapi\n\nThe okapi badge number is OK-991.\n")
    write(handbook, "deep/giraffe.md", "# Giraffe\n\nThe giraffe badge number is GI-552.\n")
    write(handbook, 'Zürich "office" 100%.txt', "The Zürich office opens at nine.\n")
    # Another machine's view: a data directory of its own, the server by URL.
    elsewhere = {"DATA_DIR": str(tmp_path / "client-data")}

    refused = switchboard(procs, "ingest", "--server", server.url, str(handbook),
                          env={**elsewhere, "SWITCHBOARD_API_KEY": READER_KEY})
    uploaded = switchboard(procs, "ingest", "--server", server.url, str(handbook),
                           env={**elsewhere, "SWITCHBOARD_API_KEY": ADMIN_KEY})

    assert refused.returncode == 1 and "administrators only" in refused.stderr
    assert uploaded.returncode == 0, uploaded.stderr
    assert "3 files: 3 added" in uploaded.stdout
    answer = await ask(server.url, "giraffe badge number", key=READER_KEY)
    assert titles(answer)[0] == "Giraffe"
    kept = tmp_path / "data" / "uploads" / "handbook"
    assert (kept / "deep" / "giraffe.md").exists()
    assert (kept / 'Zürich "office" 100%.txt').exists()  # named as it was

    (handbook / "deep" / "giraffe.md").unlink()
    pruned = switchboard(procs, "ingest", "--server", server.url, "--prune", str(handbook),
                         env={**elsewhere, "SWITCHBOARD_API_KEY": ADMIN_KEY})

    assert pruned.returncode == 0, pruned.stderr
    assert "2 unchanged, 1 removed" in pruned.stdout
    assert not (kept / "deep").exists()
    assert "Giraffe" not in titles(await ask(server.url, "giraffe badge number",
                                             key=READER_KEY))


async def test_the_terminal_chat_is_answered_by_the_running_assistant(
    procs: Processes, tmp_path: Path
) -> None:
    server = await serve(procs)
    docs = tmp_path / "docs"
    write(docs, "vpn.md", "# VPN\n\n## Reset the token\n\nRun `vpn-token --reset` at the desk.\n")
    assert switchboard(procs, "ingest", str(docs)).returncode == 0

    chat = switchboard(procs, "chat", stdin="How do I reset the VPN token?\n")

    assert chat.returncode == 0, chat.stderr
    assert "Answered by the assistant running on this data directory." in chat.stdout
    assert "### VPN › Reset the token [1]" in chat.stdout
    assert "vpn-token --reset" in chat.stdout
    # The chat took nothing from the server: it still answers, with the same index.
    assert server.running and server.url is not None
    assert titles(await ask(server.url, "reset the VPN token"))[0] == "VPN › Reset the token"


async def test_without_a_running_assistant_ingest_and_chat_open_the_index_themselves(
    procs: Processes, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    write(docs, "vpn.md", "# VPN\n\n## Reset the token\n\nRun `vpn-token --reset` at the desk.\n")

    ingested = switchboard(procs, "ingest", str(docs))
    chat = switchboard(procs, "chat", stdin="How do I reset the VPN token?\n")

    assert ingested.returncode == 0 and "1 added" in ingested.stdout
    assert "Answered by the assistant running" not in chat.stdout
    assert "### VPN › Reset the token [1]" in chat.stdout


async def test_a_socket_left_by_a_killed_server_is_not_taken_for_a_running_one(
    procs: Processes, tmp_path: Path
) -> None:
    server = await serve(procs)
    server.kill()
    docs = tmp_path / "docs"
    write(docs, "note.md", "# Note\n\nA note.\n")

    ingested = switchboard(procs, "ingest", str(docs))
    restarted = await serve(procs)  # and a new server takes the socket over

    assert ingested.returncode == 0 and "1 added" in ingested.stdout
    assert restarted.running
    assert os.path.exists(tmp_path / "data" / "run" / "control.sock")
