"""`switchboard ingest` and `switchboard kb …`: fill, inspect and evaluate the knowledge
base, and index the bundled documentation at start-up."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from adapters.ingest.document import Skipped
from adapters.ingest.pipeline import IngestOptions, IngestReport, ingest
from adapters.ingest.readers.frontmatter import make_access
from adapters.ingest.service import Ingestor
from adapters.llm.tokens import EstimatingTokenCounter, token_counter_for
from adapters.sockets.control import answers as control_answers
from adapters.sockets.control import control_socket
from adapters.web.models import IngestBody, IngestReportOut, KnowledgeStats, SkippedFile
from bots.answering import embedder_for, open_knowledge_index
from bots.bootstrap import KnowledgeIndex
from bots.evaluation import Dataset, Scores, load_dataset, score
from bots.ingest_client import IngestClient, IngestRefused, api_key_from_environment
from bots.settings import Settings
from core.knowledge import Audience
from core.ports import TokenCounter

log = logging.getLogger(__name__)

BUNDLED_DOCS = Path(__file__).parent / "docs"
# Their source keys, the same wherever Switchboard is installed (a file:// key would not be).
BUNDLED_PREFIX = "switchboard-docs:"
LOCAL_URL = "http://switchboard"  # the host name on the control socket (any will do)
EVERYONE = Audience(kind="person", principals=frozenset())  # public passages only


@asynccontextmanager
async def knowledge_index(
    settings: Settings, path: Path | None = None
) -> AsyncIterator[KnowledgeIndex]:
    """The configured index (or a scratch shard at `path`), with the embedding model."""
    async with AsyncExitStack() as stack:
        embedder, dense_size = await embedder_for(settings, stack)
        if path is None:
            index = open_knowledge_index(settings, embedder=embedder, dense_size=dense_size)
        else:
            from adapters.qdrant.edge import EdgeKnowledgeIndex

            index = EdgeKnowledgeIndex.open(path, embedder=embedder, dense_size=dense_size)
        stack.push_async_callback(index.aclose)
        await index.prepare()
        yield index


def ingest_options(
    settings: Settings, *, counter: TokenCounter | None = None, **overrides: object
) -> IngestOptions:
    counter = counter or token_counter_for(settings.model)
    return IngestOptions(count_tokens=counter.count, **overrides)  # type: ignore[arg-type]


def ingestor_for(index: KnowledgeIndex, settings: Settings) -> Ingestor:
    """The one way into `index` for this process: runs one at a time, each followed by
    what the index needs after a change."""

    async def after(report: IngestReport) -> None:
        await _optimize(index, settings, report)

    return Ingestor(index, after=after)


async def ingest_bundled_docs(ingestor: Ingestor, settings: Settings) -> IngestReport:
    """The documentation about Switchboard itself, public, kept in step at every start.
    Its few short pages are sized by estimate: tiktoken's tables would cost the server
    ~40 MB before any message needs them."""
    options = ingest_options(settings, counter=EstimatingTokenCounter(), prune=True,
                             source_url_prefix=BUNDLED_PREFIX)
    return await ingestor.run([BUNDLED_DOCS], options=options)


async def _optimize(index: KnowledgeIndex, settings: Settings, report: IngestReport) -> None:
    """Build the dense vector's HNSW graph after a change (the bundled static one by
    default). BM25 alone does not need it (measured: optimized BM25 queries are no
    faster, and optimizing peaks in memory)."""
    dense = settings.embedding_model or getattr(index, "dense_model", None)
    if dense and (report.added or report.updated or report.removed):
        await index.optimize()


async def run_knowledge_command(args: argparse.Namespace, settings: Settings) -> int:
    console = Console(soft_wrap=True)
    try:
        match args.command, getattr(args, "kb_command", None):
            case "ingest", _:
                return await _ingest(args, settings, console)
            case "kb", "stats":
                return await _stats(args, settings, console)
            case "kb", "delete":
                return await _delete(args, settings, console)
            case "kb", "eval":
                return await _evaluate(args, settings, console)
    except IngestRefused as e:  # the running assistant said no, and why
        print(f"switchboard: {e}", file=sys.stderr)
        return 1
    except aiohttp.ClientError as e:
        print(f"switchboard: could not reach the assistant: {e}", file=sys.stderr)
        return 1
    raise AssertionError(f"unknown command {args.command} {args.kb_command}")


async def _ingest(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    """Into the running assistant when there is one (its control socket on this machine,
    or `--server`), so nobody has to stop it; otherwise into the index directly."""
    # A mistyped or unmounted path refuses the whole run before anything is written: half
    # an ingest that "succeeded" is worse than none (and --prune must never see it).
    missing = [path for path in args.paths if not Path(path).exists()]
    if missing:
        for path in missing:
            print(f"switchboard: no such file or directory: {path}", file=sys.stderr)
        print("switchboard: nothing ingested", file=sys.stderr)
        return 2
    choices = {
        "source_url_prefix": args.source_url_prefix, "visibility": args.visibility,
        "allow_users": args.allow_user, "allow_groups": args.allow_group,
        "allow_channels": args.allow_channel, "prune": args.prune,
    }
    paths = [Path(p) for p in args.paths]
    with _progress_bar() as progress:
        if args.server:
            report, total = await _upload(args.server, paths, choices, progress)
        else:
            async with _running(settings) as client:
                if client is not None:
                    log.info("sending the ingest to the assistant running on %s",
                             settings.data_dir)
                    out = await client.ingest_paths(paths, choices, progress)
                    report, total = _report_of(out), out.passages_indexed
                else:
                    report, total = await _ingest_here(settings, paths, choices, progress)
    _print_report(report, total, console, verbose=args.verbose)
    return 0


async def _ingest_here(
    settings: Settings, paths: list[Path], choices: Mapping[str, Any],
    progress: Callable[[int, int, str], None],
) -> tuple[IngestReport, int]:
    options = request_options(settings, choices)
    async with knowledge_index(settings) as index:
        ingestor = ingestor_for(index, settings)
        report = await ingestor.run(
            paths, options=options, progress=lambda done, all, path: progress(done, all, path.name)
        )
        return report, await ingestor.count()


@contextmanager
def _progress_bar() -> Iterator[Callable[[int, int, str], None]]:
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[file]}"), console=Console(stderr=True),
                  transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("ingesting", total=None, file="")

        def progress(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, file=name)

        yield progress


async def _upload(
    server: str, paths: list[Path], choices: dict[str, object],
    progress: Callable[[int, int, str], None],
) -> tuple[IngestReport, int]:
    """Each PATH sent to the assistant at `server` (an admin's key in
    SWITCHBOARD_API_KEY), one upload each; one summary for them all."""
    reports, total = [], 0
    async with IngestClient.session(api_key=api_key_from_environment()) as session:
        client = IngestClient(session, server)
        for path in paths:
            out = await client.upload(path, choices, progress)
            reports.append(_report_of(out))
            total = out.passages_indexed
    return _sum(reports), total


def _report_of(out: IngestReportOut) -> IngestReport:
    return IngestReport(
        files=out.files, added=out.added, updated=out.updated, unchanged=out.unchanged,
        removed=out.removed, chunks_added=out.passages_written,
        chunks_removed=out.passages_removed,
        skipped=tuple(Skipped(path=Path(s.path), reason=s.reason, kind=s.kind)
                      for s in out.skipped),
    )


def _sum(reports: list[IngestReport]) -> IngestReport:
    counts = {name: sum(getattr(r, name) for r in reports) for name in (
        "files", "added", "updated", "unchanged", "removed", "chunks_added", "chunks_removed")}
    return IngestReport(**counts, skipped=tuple(s for r in reports for s in r.skipped))


class IndexAdmin:
    """The running assistant's knowledge base as the admin routes see it
    (`adapters/web/ingest.py`'s `KnowledgeBase`): this process's `Ingestor`, with this
    server's settings applied to what a request chose."""

    def __init__(self, ingestor: Ingestor, settings: Settings, *, where: str) -> None:
        self._ingestor = ingestor
        self._settings = settings
        self._where = where

    def check(self, choices: IngestBody) -> None:
        make_access(choices.visibility, users=frozenset(choices.allow_users),
                    groups=frozenset(choices.allow_groups),
                    channels=frozenset(choices.allow_channels))

    async def ingest(
        self, paths: list[Path], choices: IngestBody, progress: Callable[[int, int, Path], None]
    ) -> IngestReportOut:
        options = request_options(self._settings, choices.model_dump())
        report = await self._ingestor.run(paths, options=options, progress=progress)
        return report_out(report, await self._ingestor.count())

    async def stats(self, *, sources: bool) -> KnowledgeStats:
        found = await self._ingestor.sources()
        return KnowledgeStats(
            index=self._where, documents=len(found), passages=await self._ingestor.count(),
            **({"sources": sorted(found)} if sources else {}),
        )

    async def delete(self, source: str) -> int:
        return await self._ingestor.delete(source)


def report_out(report: IngestReport, indexed: int) -> IngestReportOut:
    return IngestReportOut(
        files=report.files, added=report.added, updated=report.updated,
        unchanged=report.unchanged, removed=report.removed,
        passages_written=report.chunks_added, passages_removed=report.chunks_removed,
        passages_indexed=indexed,
        skipped=[SkippedFile(path=str(s.path), reason=s.reason, kind=s.category)
                 for s in report.skipped],
    )


def request_options(settings: Settings, choices: Mapping[str, Any]) -> IngestOptions:
    """What one ingest asked for (the CLI's flags, an API request's `IngestBody`), with
    this server's settings. ValueError for contradictory access flags."""
    return ingest_options(
        settings, source_url_prefix=choices.get("source_url_prefix"),
        visibility=choices.get("visibility"),
        allow_users=frozenset(choices.get("allow_users", ())),
        allow_groups=frozenset(choices.get("allow_groups", ())),
        allow_channels=frozenset(choices.get("allow_channels", ())),
        prune=bool(choices.get("prune")),
    )


def _print_report(
    report: IngestReport, total: int, console: Console, *, verbose: bool = False
) -> None:
    console.print(
        f"{report.files} files: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.removed} removed; "
        f"{report.chunks_added} passages written, {report.chunks_removed} removed; "
        f"{total} passages indexed"
    )
    if not report.skipped:
        return
    # One line per reason, most frequent first: a tree of 1,000 images is one line.
    counts = Counter(skipped.category for skipped in report.skipped)
    console.print(f"skipped {len(report.skipped):,} files"
                  + ("" if verbose else " (--verbose lists them)") + ":")
    for category, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        details = _details(skipped for skipped in report.skipped if skipped.category == category)
        console.print(f"  {category}: {count:,}{details}", markup=False)
    if verbose:
        for skipped in report.skipped:
            console.print(f"  {skipped.path}: {skipped.reason}", markup=False)


def _details(skipped: Iterable[Skipped], shown: int = 4) -> str:
    """The commonest short particulars of one reason — " (.png 600, .svg 300, …)" for
    unsupported formats — so the summary says which formats a tree is made of."""
    details = Counter(
        detail
        for s in skipped
        if s.kind and s.reason.startswith(s.kind)
        and 0 < len(detail := s.reason.removeprefix(s.kind).strip(" :")) <= 24
    )
    if not details:
        return ""
    common = [f"{detail} {count:,}" for detail, count in details.most_common(shown)]
    return f" ({', '.join(common)}{', …' if len(details) > shown else ''})"


async def _stats(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    async with _running(settings) as client:
        if client is not None:
            stats = await client.stats(sources=args.sources)
            where, documents, total = stats.index, stats.documents, stats.passages
            sources = stats.sources or []
        else:
            async with knowledge_index(settings) as index:
                sources = sorted(await index.sources())
                total = await index.count()
                where, documents = index.describe(), len(sources)
    console.print(f"{where}: {documents} documents, {total} passages", markup=False)
    if args.sources:
        for source in sorted(sources):
            console.print(f"  {source}", markup=False)
    return 0


async def _delete(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    async with _running(settings) as client:
        if client is not None:
            removed = await client.delete(args.source)
        else:
            async with knowledge_index(settings) as index:
                removed = await index.delete_source(args.source)
    if not removed:
        console.print(f"no document {args.source!r} (see `switchboard kb stats --sources`)",
                      markup=False)
        return 1
    console.print(f"removed {args.source} ({removed} passages)", markup=False)
    return 0


@asynccontextmanager
async def _running(settings: Settings) -> AsyncIterator[IngestClient | None]:
    """A client of the assistant running on this data directory, or None."""
    socket = control_socket(settings.data_dir)
    if not await control_answers(socket):
        yield None
        return
    async with IngestClient.session(socket=socket) as session:
        yield IngestClient(session, LOCAL_URL)


async def _evaluate(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    try:
        data = load_dataset(args.dataset)
    except ValueError as e:
        console.print(f"switchboard: {e}", markup=False)
        return 2
    with tempfile.TemporaryDirectory(prefix="switchboard-eval-") as scratch:
        root = Path(scratch)
        names = _write_corpus(data, root / "corpus")
        async with knowledge_index(settings, root / "index") as index:
            options = ingest_options(settings, source_url_prefix="eval:")
            report = await ingest([root / "corpus"], index, options=options)
            await _optimize(index, settings, report)
            dense = getattr(index, "dense_model", None)
            modes = ["bm25", "dense", "hybrid"] if dense else ["bm25"]
            results = {mode: await _rank(index, data, names, mode) for mode in modes}
    table = Table(title=f"{args.dataset}: {len(data.corpus)} documents "
                        f"({report.chunks_added} passages), {len(data.queries)} queries; "
                        f"dense: {dense or 'none'}")
    for column in ("retrieval", "nDCG@10", "recall@10", "MRR@10"):
        table.add_column(column)
    for mode, scores in results.items():
        table.add_row(mode, f"{scores.ndcg_at_10:.3f}", f"{scores.recall_at_10:.3f}",
                      f"{scores.mrr_at_10:.3f}")
    console.print(table)
    return 0


def _write_corpus(data: Dataset, folder: Path) -> dict[str, str]:
    """One Markdown file per document; file name → document id."""
    folder.mkdir(parents=True)
    names = {}
    for number, (doc_id, (title, text)) in enumerate(sorted(data.corpus.items())):
        name = f"{number:07d}.md"
        heading = f"# {title}\n\n" if title else ""
        (folder / name).write_text(heading + text + "\n", encoding="utf-8")
        names[name] = doc_id
    return names


async def _rank(index: KnowledgeIndex, data: Dataset, names: dict[str, str], mode: str) -> Scores:
    rankings = {}
    for query_id, query in data.queries.items():
        passages = await index.search(  # type: ignore[call-arg]
            query, audience=EVERYONE, limit=30, mode=mode
        )
        rankings[query_id] = [names[p.url.removeprefix("eval:")] for p in passages if p.url]
    return score(rankings, data.qrels)
