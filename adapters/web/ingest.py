"""The knowledge base's admin routes: ingest paths the server can read, or uploaded files,
into the running assistant's index while it answers, with progress as server-sent events;
what the index holds, and removing one document.

Served where the index is owned (the `all` and `worker` roles, the latter only on its
control socket, `bots/control.py`); elsewhere they answer 503 and say where to ingest.
Every write goes through the index owner's `KnowledgeBase`, so two ingests at once take
turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import unquote

from aiohttp import BodyPartReader, web
from aiohttp_sse import sse_response
from pydantic import ValidationError

from adapters.web.body import read_body, read_query
from adapters.web.errors import json_error
from adapters.web.models import (
    INGEST_EVENTS,
    DocumentQuery,
    DocumentRemoved,
    IngestBody,
    IngestReportOut,
    IngestUploadForm,
    IngestUploadOptions,
    KnowledgeQuery,
    KnowledgeStats,
)
from adapters.web.openapi import ApiRoutes, respond
from adapters.web.replier import SseReplier
from core.json_input import problems
from core.messages import Sender

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 0.1  # at most ten progress events a second, and the last one
NOT_HERE = (
    "this process does not hold the knowledge index: ingest through the process that "
    "answers (`switchboard ingest` finds it on its machine)"
)

api = ApiRoutes(tag="knowledge")


Progress = Callable[[int, int, Path], None]
"""Called after each file with (files done, files in all, the file)."""


class KnowledgeBase(Protocol):
    """The index as its owner runs it (`bots/knowledge.py`): every write one at a time."""

    def check(self, choices: IngestBody) -> None:
        """ValueError when the choices contradict each other (before anything changes)."""
        ...

    async def ingest(
        self, paths: list[Path], choices: IngestBody, progress: Progress
    ) -> IngestReportOut: ...

    async def stats(self, *, sources: bool) -> KnowledgeStats: ...

    async def delete(self, source: str) -> int:
        """Passages removed; 0 for no such document."""
        ...


@dataclass(frozen=True, kw_only=True)
class KnowledgeAdmin:
    """`base` is None where this process does not own the index (the web role);
    `authorize` lets only administrators through; uploads are kept under `uploads`, one
    folder each."""

    base: KnowledgeBase | None
    authorize: Callable[[web.Request], Awaitable[Sender]]
    uploads: Path
    max_upload_bytes: int


KNOWLEDGE_ADMIN = web.AppKey("knowledge_admin", KnowledgeAdmin)


@api.post("/ingest", body=IngestBody, events=INGEST_EVENTS, errors=[403, 503])
async def ingest_paths(request: web.Request) -> web.StreamResponse:
    """Ingest files and folders the server can read (administrators only).

    Incremental, as `switchboard ingest`: unchanged documents are skipped, changed ones
    replaced, and with `prune` documents whose files are gone are removed. Events:
    `progress` while files are read, then one `report` (or `error`). A new document is
    searchable as soon as the report arrives. Errors before the stream starts are JSON.
    """
    admin = request.app[KNOWLEDGE_ADMIN]
    await admin.authorize(request)
    body = await read_body(request, IngestBody)
    base = _base(admin)
    relative = [p for p in body.paths if not Path(p).is_absolute()]
    if relative:
        raise json_error(400, "paths must be absolute", problems=relative)
    missing = [p for p in body.paths if not Path(p).exists()]
    if missing:
        raise json_error(400, "no such file or directory on the server", problems=missing)
    _check(base, body)
    return await _stream(request, base, [Path(p) for p in body.paths], body)


@api.post("/ingest/upload", form=IngestUploadForm, events=INGEST_EVENTS, errors=[403, 503])
async def ingest_upload(request: web.Request) -> web.StreamResponse:
    """Upload documents and ingest them (administrators only).

    The files are kept on the server in one folder (`options.folder`), so they stay
    cited and a later upload to the same folder is incremental; with `prune` the upload
    replaces the folder's files and documents no longer in it are removed. Events as for
    `POST /ingest`.
    """
    admin = request.app[KNOWLEDGE_ADMIN]
    await admin.authorize(request)
    base = _base(admin)
    if not request.content_type.startswith("multipart/"):
        raise json_error(400, "send the files as multipart/form-data")
    staging = admin.uploads / f".staging-{uuid.uuid4().hex}"
    try:
        try:
            upload = await _receive(request, staging, admin.max_upload_bytes)
        except ValueError:  # aiohttp's word for a body that is not the multipart it says
            raise json_error(400, "the multipart body is malformed or cut short") from None
        _check(base, upload)  # refused before the folder changes
        folder = admin.uploads / upload.folder
        await asyncio.to_thread(_keep, staging / upload.folder, folder, replace=upload.prune)
    finally:
        await asyncio.to_thread(shutil.rmtree, staging, True)
    return await _stream(request, base, [folder], upload)


@api.get("/knowledge", query=KnowledgeQuery, response=KnowledgeStats, errors=[403, 503])
async def knowledge_stats(request: web.Request) -> web.Response:
    """What the knowledge base holds (administrators only: source keys name every
    document, restricted ones too)."""
    admin = request.app[KNOWLEDGE_ADMIN]
    await admin.authorize(request)
    query = read_query(request, KnowledgeQuery)
    return respond(await _base(admin).stats(sources=query.sources))


@api.delete("/knowledge/documents", query=DocumentQuery, response=DocumentRemoved,
            errors=[403, 404, 503])
async def remove_document(request: web.Request) -> web.Response:
    """Remove one document from the knowledge base (administrators only). Its file, if
    still in a folder that is ingested again, comes back."""
    admin = request.app[KNOWLEDGE_ADMIN]
    await admin.authorize(request)
    query = read_query(request, DocumentQuery)
    removed = await _base(admin).delete(query.source)
    if not removed:
        raise json_error(404, f"no document {query.source!r} in the knowledge base")
    return respond(DocumentRemoved(source=query.source, passages_removed=removed))


def _base(admin: KnowledgeAdmin) -> KnowledgeBase:
    if admin.base is None:
        raise json_error(503, NOT_HERE)
    return admin.base


def _check(base: KnowledgeBase, choices: IngestBody) -> None:
    try:
        base.check(choices)
    except ValueError as e:  # contradictory access flags
        raise json_error(400, str(e)) from None


async def _receive(request: web.Request, staging: Path, limit: int) -> IngestUploadOptions:
    """Write the uploaded files under `staging/<folder>`; the options part, if any, must
    come first (it names the folder)."""
    reader = await request.multipart()
    options, received, files = IngestUploadOptions(), 0, 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise json_error(400, "nested multipart bodies are not accepted")
        if part.name == "options" and files == 0:
            options = _upload_options(await part.read(decode=True))
            continue
        if part.name != "file" or not part.filename:
            raise json_error(400, "each document is a `file` part with a filename")
        target = staging / options.folder / _relative(part.filename)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            while chunk := await part.read_chunk():
                received += len(chunk)
                if received > limit:
                    raise _too_large(limit, received)
                out.write(chunk)  # local disk, a chunk at a time
        files += 1
    if not files:
        raise json_error(400, "no files were uploaded")
    return options


def _upload_options(raw: bytes) -> IngestUploadOptions:
    try:
        return IngestUploadOptions.model_validate_json(raw)
    except ValidationError as e:
        raise json_error(400, "invalid options", problems=problems(e)) from None


def _relative(filename: str) -> PurePosixPath:
    """A document's path under its folder, as the client named it: relative, no `..`,
    nothing hidden (ingest skips hidden files). Percent-escapes are decoded: aiohttp's
    client escapes `/` and anything outside ASCII, browsers `"` and line breaks."""
    path = PurePosixPath(unquote(filename).replace("\\", "/"))
    parts = [p for p in path.parts if p not in ("", ".")]
    if path.is_absolute() or not parts or any(p == ".." or p.startswith(".") for p in parts):
        raise json_error(400, f"not a relative document path: {filename!r}")
    if any("\x00" in p or len(p) > 255 for p in parts):
        raise json_error(400, "a document path part is invalid or too long")
    return PurePosixPath(*parts)


def _too_large(limit: int, received: int) -> web.HTTPException:
    body = json.dumps({"error": f"the upload is larger than {limit:,} bytes "
                                "(SWITCHBOARD_MAX_UPLOAD_BYTES)"})
    return web.HTTPRequestEntityTooLarge(
        max_size=limit, actual_size=received, text=body, content_type="application/json"
    )


def _keep(received: Path, folder: Path, *, replace: bool) -> None:
    """Move the upload into its folder: in place of it (`replace`), or beside the files
    already there."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    if replace or not folder.exists():
        old = folder.with_name(f".old-{uuid.uuid4().hex}")
        if folder.exists():
            folder.rename(old)
        received.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
        return
    for path in sorted(received.rglob("*")):
        if path.is_file():
            target = folder / path.relative_to(received)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)


async def _stream(
    request: web.Request, base: KnowledgeBase, paths: list[Path], choices: IngestBody
) -> web.StreamResponse:
    """Run the ingest and stream its progress. A client that leaves does not stop it:
    the run finishes and is complete in the index either way."""
    latest: dict[str, Any] = {}
    moved = asyncio.Event()

    def progress(done: int, total: int, path: Path) -> None:
        latest.update(done=done, total=total, file=path.name)
        moved.set()

    async with sse_response(request, allow_all_methods=True) as response:
        events = SseReplier(response, extra={})
        run = asyncio.ensure_future(base.ingest(paths, choices, progress))
        try:
            while not run.done():
                waiting = asyncio.ensure_future(moved.wait())
                await asyncio.wait({run, waiting}, return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
                if moved.is_set():
                    moved.clear()
                    await events.emit("progress", dict(latest))
                    if not run.done():
                        await asyncio.sleep(PROGRESS_SECONDS)
            report = run.result()
        except Exception:
            reference = uuid.uuid4().hex[:8]
            log.exception("ingest failed, reference %s", reference)
            await events.emit("error", {"error": "The ingest failed on the server.",
                                        "reference": reference})
        else:
            await events.emit("report", report.model_dump(mode="json"))
        finally:
            if not run.done():  # the server stops: the run is cut, and safe to run again
                run.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await run
        response.stop_streaming()
    return response
