"""`switchboard ingest` and `kb stats|delete` as clients of a running assistant: the admin routes of
`adapters/web/ingest.py`, over the control socket on this machine or HTTP with an API
key, their server-sent events turned back into progress and a report."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from adapters.ingest.files import walk
from adapters.web.models import (
    DocumentRemoved,
    IngestReportOut,
    IngestUploadOptions,
    KnowledgeStats,
)

Progress = Callable[[int, int, str], None]
CONNECT_SECONDS = 10.0
READ_SECONDS = 600.0  # between two events: one large PDF, or a wait behind another ingest
_PAGE = 1 << 16


class IngestRefused(Exception):
    """The server said no (not an admin, a bad path…): its message, for the person."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class IngestClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base = base_url.rstrip("/") + "/api/v1"

    @classmethod
    def session(cls, *, socket: Path | None = None, api_key: str | None = None
                ) -> aiohttp.ClientSession:
        """A session for the control `socket`, or for HTTP with `api_key`."""
        connector = aiohttp.UnixConnector(path=str(socket)) if socket is not None else None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = aiohttp.ClientTimeout(sock_connect=CONNECT_SECONDS, sock_read=READ_SECONDS)
        return aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout)

    async def ingest_paths(
        self, paths: Sequence[Path], options: dict[str, Any], progress: Progress
    ) -> IngestReportOut:
        """Paths the server reads itself (the same machine)."""
        body = {**options, "paths": [str(p.absolute()) for p in paths]}
        async with self._session.post(f"{self._base}/ingest", json=body) as response:
            return await _events(response, progress)

    async def upload(
        self, root: Path, options: dict[str, Any], progress: Progress
    ) -> IngestReportOut:
        """A file or folder sent to the server, kept there in a folder of its name."""
        folder = IngestUploadOptions(folder=_folder_name(root), **options)
        boundary = uuid.uuid4().hex
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        body = _multipart(boundary, folder.model_dump_json(exclude={"paths"}), root)
        async with self._session.post(f"{self._base}/ingest/upload", data=body,
                                      headers=headers) as response:
            return await _events(response, progress)


    async def stats(self, *, sources: bool) -> KnowledgeStats:
        query = {"sources": "true" if sources else "false"}
        async with self._session.get(f"{self._base}/knowledge", params=query) as response:
            if response.status != 200:
                raise IngestRefused(response.status, await _error_text(response))
            return KnowledgeStats.model_validate(await response.json())

    async def delete(self, source: str) -> int:
        """Passages removed; 0 when there was no such document."""
        async with self._session.delete(f"{self._base}/knowledge/documents",
                                        params={"source": source}) as response:
            if response.status == 404:
                return 0
            if response.status != 200:
                raise IngestRefused(response.status, await _error_text(response))
            return DocumentRemoved.model_validate(await response.json()).passages_removed


def _folder_name(root: Path) -> str:
    name = root.resolve().name if root.is_dir() else "files"
    cleaned = "".join(c if c.isalnum() or c in "_.- " else "_" for c in name).lstrip("._ -")
    return cleaned[:128] or "upload"


async def _multipart(boundary: str, options: str, root: Path) -> AsyncIterator[bytes]:
    """The form, one file open at a time (a tree of thousands would exceed the open-file
    limit if every file were opened up front)."""
    yield _part_head(boundary, "options", None, "application/json") + options.encode() + b"\r\n"
    files = [(root, root.name)] if root.is_file() else [
        (root / relative, relative) for relative in walk(root.resolve())
    ]
    for path, name in files:
        yield _part_head(boundary, "file", name, "application/octet-stream")
        with path.open("rb") as file:
            while page := file.read(_PAGE):
                yield page
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def _part_head(boundary: str, name: str, filename: str | None, content_type: str) -> bytes:
    """The filename percent-escaped (the server decodes it), so the header is ASCII."""
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{quote(filename, safe="/ ")}"'
    return (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode()


async def _events(response: aiohttp.ClientResponse, progress: Progress) -> IngestReportOut:
    if response.status != 200:
        raise IngestRefused(response.status, await _error_text(response))
    async for name, data in _sse(response):
        match name:
            case "progress":
                progress(data["done"], data["total"], data["file"])
            case "report":
                return IngestReportOut.model_validate(data)
            case "error":
                reference = f" (reference {data['reference']})" if data.get("reference") else ""
                raise IngestRefused(500, data.get("error", "the ingest failed") + reference)
    raise IngestRefused(502, "the server ended the ingest without a report")


async def _error_text(response: aiohttp.ClientResponse) -> str:
    try:
        body = await response.json(content_type=None)
        problems = body.get("problems") or []
        return "; ".join([body["error"], *map(str, problems)])
    except (ValueError, KeyError, TypeError, AttributeError, aiohttp.ClientError):
        return f"HTTP {response.status}"


async def _sse(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Server-sent events as (name, JSON data); comments and keep-alives skipped."""
    name, data = "message", list[str]()
    async for raw in response.content:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", list[str]()
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


def api_key_from_environment() -> str | None:
    return os.environ.get("SWITCHBOARD_API_KEY") or None
