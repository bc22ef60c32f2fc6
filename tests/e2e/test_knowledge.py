"""The knowledge base from the command line to the answer: ingest, stats, delete, eval,
the bundled documentation, and access — a restricted passage reaches only its reader."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from adapters.ingest.pipeline import ingest
from adapters.slack.blocks import sources_block
from adapters.slack.mrkdwn import to_mrkdwn
from adapters.teams.render import citation_entity, to_teams_markdown
from bots.chat import run_chat
from bots.cli import main
from bots.knowledge import ingest_options, knowledge_index
from core.messages import Citation
from tests.e2e.conftest import MakeSettings, serving
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.fakes.qdrant_server import FakeQdrant

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


def test_ingest_reports_what_it_did_and_a_second_run_changes_nothing(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = FIXTURES / "ingest" / "docs"

    assert main(["ingest", str(docs)]) == 0
    first = capsys.readouterr().out
    assert main(["ingest", str(docs)]) == 0
    second = capsys.readouterr().out

    assert "5 added" in first
    # The skipped files are counted by reason, one line each, not listed one by one.
    assert "skipped 3 files (--verbose lists them):" in first
    assert "  corrupt.pdf" not in first and "logo.png" not in first
    assert "\n  empty: 1\n" in first and "\n  unsupported format: 1 (.png 1)\n" in first
    assert "0 added, 0 updated, 5 unchanged, 0 removed" in second
    assert "0 passages written" in second


def test_skipped_files_are_counted_by_reason_and_verbose_lists_each(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "kb"
    write(folder, "guide.md", "# Guide\n\nhow to\n")
    for n in range(3):
        (folder / f"photo-{n}.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    write(folder, "blank.txt", "  \n")
    (folder / "tool").write_bytes(b"\x7fELF\x00\x00")

    assert main(["ingest", str(folder)]) == 0
    summary = capsys.readouterr().out
    assert main(["ingest", "--verbose", str(folder)]) == 0
    verbose = capsys.readouterr().out

    assert summary.splitlines()[1:] == [
        "skipped 5 files (--verbose lists them):",
        "  unsupported format: 4 (.png 3, (no extension) 1)",
        "  empty: 1",
    ]
    assert verbose.splitlines()[1:4] == [
        "skipped 5 files:", "  unsupported format: 4 (.png 3, (no extension) 1)", "  empty: 1",
    ]
    assert f"  {folder / 'photo-0.png'}: unsupported format .png" in verbose
    assert f"  {folder / 'tool'}: unsupported format (no extension)" in verbose
    assert f"  {folder / 'blank.txt'}: empty" in verbose


async def test_a_missing_path_fails_the_whole_run_before_anything_is_ingested(
    tmp_path: Path,
) -> None:
    from tests.e2e.processes import Processes

    folder = tmp_path / "kb"
    write(folder, "guide.md", "# Guide\n\nhow to\n")
    env = {"DATA_DIR": str(tmp_path / "data"), "SWITCHBOARD_BUNDLED_DOCS": "false"}
    with Processes(tmp_path / "processes", env) as procs:
        refused = procs.start("ingest", "ingest", str(folder), str(tmp_path / "typo"),
                              str(tmp_path / "unmounted" / "docs"))
        assert await refused.wait(60) == 2
        stats = await procs.run("stats", "kb", "stats")

        lines = refused.stderr().strip().splitlines()
        assert lines[-3:] == [
            f"switchboard: no such file or directory: {tmp_path / 'typo'}",
            f"switchboard: no such file or directory: {tmp_path / 'unmounted' / 'docs'}",
            "switchboard: nothing ingested",
        ]
        assert ": 0 documents, 0 passages" in stats.stderr()  # stdout shares the log


def test_stats_lists_documents_and_delete_removes_one(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "kb"
    write(folder, "vpn.md", "# VPN\n\n## Reset your VPN password\n\nUse the portal.\n")
    write(folder, "wifi.md", "# Wi-Fi\n\nUse CORP-SECURE.\n")
    assert main(["ingest", str(folder), "--source-url-prefix", "https://wiki.example.com/"]) == 0
    capsys.readouterr()

    assert main(["kb", "stats", "--sources"]) == 0
    stats = capsys.readouterr().out
    assert "2 documents" in stats and "https://wiki.example.com/vpn.md" in stats

    assert main(["kb", "delete", "https://wiki.example.com/vpn.md"]) == 0
    assert main(["kb", "delete", "https://wiki.example.com/vpn.md"]) == 1
    assert main(["kb", "stats"]) == 0
    assert "1 documents" in capsys.readouterr().out


def test_prune_removes_files_that_are_gone(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "kb"
    write(folder, "a.md", "# A\n\nalpha\n")
    gone = write(folder, "b.md", "# B\n\nbeta\n")
    assert main(["ingest", str(folder)]) == 0
    gone.unlink()

    assert main(["ingest", str(folder), "--prune"]) == 0

    assert "1 removed" in capsys.readouterr().out


def test_eval_prints_retrieval_metrics_for_a_beir_data_set(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kb", "eval", str(FIXTURES / "beir-mini")]) == 0

    out = capsys.readouterr().out
    assert "nDCG@10" in out and "bm25" in out
    row = next(line for line in out.splitlines() if "bm25" in line)
    ndcg = float(row.replace("│", " ").split()[1])
    assert 0.8 <= ndcg <= 1.0  # BM25 answers this small set almost perfectly


def test_eval_names_a_broken_data_set(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kb", "eval", str(tmp_path)]) == 2
    assert "corpus.jsonl" in capsys.readouterr().out


async def test_a_newcomer_gets_a_sourced_answer_from_the_bundled_docs_offline(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(openai_base_url=None, openai_api_key=None, bundled_docs=True)
    async with serving(settings) as client:
        response = await client.post(
            "/api/v1/chat", json={"message": "How do I connect Switchboard to Slack?"}
        )
        body = await response.json()

    assert response.status == 200
    reply, citations = body["reply"], body["citations"]
    # One section per passage, headed by its title and its citation marker.
    sections = reply.split("\n### ")[1:]
    assert [s.split("\n", 1)[0] for s in sections] == [
        f"{c['title']} [{c['index']}]" for c in citations
    ]
    assert any(c["title"] == "Connecting Switchboard to Slack › Create the Slack app"
               for c in citations)
    # The passages' Markdown as written: the manifest command stays a fenced block.
    manifest = "```sh\nswitchboard slack manifest --url https://chat.example.com"
    assert manifest in reply and reply.count("switchboard slack manifest") == 1
    # Quoted once: no snippet repeats a passage under Sources.
    assert all(c["snippet"] is None for c in citations)
    # The web page gets one <h3> per passage and the command as code.
    assert body["html"].count("<h3>") == len(citations)
    assert '<pre><code class="language-sh">switchboard slack manifest' in body["html"]


async def test_the_offline_answer_reads_as_sections_in_slack_and_teams(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(openai_base_url=None, openai_api_key=None, bundled_docs=True)
    async with serving(settings) as client:
        body = await (await client.post(
            "/api/v1/chat", json={"message": "How do I connect Switchboard to Slack?"}
        )).json()
    reply = body["reply"]
    citations = [Citation(**c) for c in body["citations"]]
    titles = [f"{c.title} [{c.index}]" for c in citations]

    slack = to_mrkdwn(reply)
    assert all(f"*{t}*" in slack.split("\n") for t in titles)  # a bold line each
    assert "```\nswitchboard slack manifest --url https://chat.example.com &gt; " in slack
    sources = sources_block(citations)["elements"][0]["text"]
    assert "switchboard slack manifest" not in sources  # titles and links only

    teams = to_teams_markdown(reply)
    assert all(f"**{t}**" in teams.split("\n") for t in titles)
    assert "```sh\nswitchboard slack manifest --url https://chat.example.com >" in teams
    claims = citation_entity(citations, teams)["citation"]
    assert [claim["position"] for claim in claims] == [c.index for c in citations]
    assert all("manifest --url" not in claim["appearance"]["abstract"] for claim in claims)


async def test_a_restricted_passage_reaches_only_the_person_allowed(
    make_settings: MakeSettings, llm: FakeOpenAI, tmp_path: Path,
) -> None:
    folder = tmp_path / "kb"
    write(folder, "salaries.md", "---\nvisibility: restricted\nallow_users: [web:local:alice]\n"
                                 "---\n# Salary bands\n\nThe VPN team's salary band is 7.\n")
    write(folder, "vpn.md", "# VPN\n\n## Reset your VPN password\n\nUse the VPN portal.\n")
    keys = "alice:alice-key-0123456789,bob:bob-key-0123456789"
    settings = make_settings(api_keys=keys)
    async with knowledge_index(settings) as index:  # what `switchboard ingest` opens
        await ingest([folder], index, options=ingest_options(settings))
    llm.script(Reply("Band 7 [1] [2]."), Reply("Use the portal [1] [2]."))

    async with serving(settings) as client:
        seen: dict[str, Any] = {}
        for user in ("alice", "bob"):
            response = await client.post(
                "/api/v1/chat", json={"message": "VPN team salary band and VPN portal"},
                headers={"Authorization": f"Bearer {user}-key-0123456789"},
            )
            seen[user] = await response.json()

    alice_prompt, bob_prompt = (r.json["messages"][0]["content"] for r in llm.requests)
    assert "salary band is 7" in alice_prompt
    assert "salary band is 7" not in bob_prompt and "Use the VPN portal" in bob_prompt
    assert "Salary bands" not in str(seen["bob"]["citations"])
    assert "Salary bands" in str(seen["alice"]["citations"])


# qdrant-client asks the server its version on a thread of its own: down by then.
@pytest.mark.filterwarnings("ignore:Failed to obtain server version")
async def test_with_the_qdrant_server_down_the_answer_comes_without_it_and_says_so(
    make_settings: MakeSettings, llm: FakeOpenAI, tmp_path: Path
) -> None:
    async with FakeQdrant() as qdrant:
        settings = make_settings(qdrant_url=qdrant.base_url)
        write(tmp_path / "kb", "vpn.md", "# VPN\n\nReset the VPN token at the network desk.\n")
        async with knowledge_index(settings) as index:  # a document it could have found
            await ingest([tmp_path / "kb"], index, options=ingest_options(settings))
        async with serving(settings) as client:
            await qdrant.stop_answering()
            llm.script(Reply("Try turning it off and on again."))
            response = await client.post("/api/v1/chat", json={"message": "VPN token?"})
            body = await response.json()

    assert response.status == 200
    assert body["reply"].startswith("Try turning it off and on again.")
    assert "_Not from your documents: the knowledge base could not be searched._" \
        in body["reply"]
    assert body["citations"] == []
    [request] = llm.requests
    system = request.json["messages"][0]["content"]
    assert "could not be searched" in system and "network desk" not in system


# qdrant-client asks the server its version on a thread of its own, which the fake (on this
# test's loop, busy with the chat) may not answer in time.
@pytest.mark.filterwarnings("ignore:Failed to obtain server version")
async def test_the_terminal_chat_answers_from_a_shared_qdrant_offline(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    async with FakeQdrant() as qdrant:
        settings = make_settings(openai_base_url=None, openai_api_key=None,
                                 qdrant_url=qdrant.base_url)
        write(tmp_path / "kb", "vpn.md", "# VPN\n\n## Reset the token\n\nAt the network desk:"
                                         "\n\n```sh\nvpn-token --reset\n```\n")
        async with knowledge_index(settings) as index:  # what `switchboard ingest` fills
            await ingest([tmp_path / "kb"], index, options=ingest_options(settings))
        out = io.StringIO()  # not a terminal: the answer's Markdown as written
        await run_chat(settings, lines=io.StringIO("How do I reset the VPN token?\n"), out=out)

    section = "### VPN › Reset the token [1]\n\nAt the network desk:\n\n```sh\nvpn-token --reset\n```"
    assert section in out.getvalue()
    assert "  [1] VPN › Reset the token" in out.getvalue()  # its source, once, under it
