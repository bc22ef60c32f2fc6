"""What the chat API reads and answers, as pydantic models: they check requests, shape
responses, and are the API document's schemas (`adapters/web/openapi.py`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

# Responses are built by the server, so any field it adds must be declared here first:
# otherwise building the response fails in the tests instead of going undocumented.
OUT = ConfigDict(extra="forbid")


def _flag(value: object) -> object:
    # Only these four spellings, as before the models: pydantic alone would also take
    # "yes", "on", "t"...
    if isinstance(value, str):
        if value.lower() not in ("true", "1", "false", "0"):
            raise ValueError("must be true or false")
        return value.lower() in ("true", "1")
    return value


Flag = Annotated[bool, BeforeValidator(_flag)]


class ErrorBody(BaseModel):
    """Every error the API answers. `problems` lists each field a request got wrong;
    `reference` ties a failure to the server's log; `retryable` says sending the same
    request again may work. Some errors carry the ids of the message they are about."""

    model_config = ConfigDict(extra="allow")

    error: str
    problems: list[str] | None = None
    reference: str | None = None
    retryable: bool | None = None
    retry_after: int | None = Field(None, description="Seconds until a rate limit (429) "
                                    "lets the next message through, as in `Retry-After`.")


class Info(BaseModel):
    model_config = OUT

    name: str = Field(description="The assistant's name.")
    api_key_required: bool
    adds_documents: bool = Field(
        False, description="This server takes documents (`POST /ingest/upload`) from "
        "administrators: the page offers to add some.",
    )


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    message: str = Field(min_length=1, max_length=32_000)
    conversation_id: str | None = Field(
        None, min_length=1, max_length=64, pattern=r"^[\w.:-]+$",
        description="Continue this conversation; without it a new one starts.",
    )
    message_id: str | None = Field(
        None, min_length=1, max_length=128, pattern=r"^[\w.:-]+$",
        description="The client's id for this message: a retried request with the same id "
                    "gets the same answer and is never answered twice.",
    )
    time_zone: str | None = Field(None, max_length=64, description="An IANA zone, e.g. Europe/Oslo.")


class Citation(BaseModel):
    model_config = OUT

    index: int = Field(description="The `[n]` the answer cites it by.")
    title: str
    url: str | None = None
    snippet: str | None = None
    source: str | None = Field(
        None, description="The document's key in the index: GET /api/v1/sources?source=…"
    )


class Answer(BaseModel):
    model_config = OUT

    reply: str = Field(description="The answer in CommonMark.")
    html: str = Field(description="The answer rendered to HTML.")
    citations: list[Citation]
    turn_id: int | None
    stopped: bool = Field(False, description="The answer was stopped while it was written: "
                          "`reply` is what was written until then, marked so.")


class ChatAnswer(Answer):
    conversation_id: str
    message_id: str


class TurnOut(BaseModel):
    model_config = OUT

    id: int
    role: Literal["user", "assistant"]
    content: str
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    html: str | None = Field(None, description="Assistant turns: the content as HTML.")
    citations: list[Citation] | None = Field(None, description="Assistant turns only.")
    rating: Literal["up", "down"] | None = Field(
        None, description="Assistant turns: the caller's own rating, if they gave one."
    )


class ConversationOut(BaseModel):
    model_config = OUT

    id: str
    title: str = Field(description="From the first question (its first line, or the "
                       "model's summary of it).")
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    updated_at: str = Field(json_schema_extra={"format": "date-time"})
    turns: list[TurnOut]


# The events of /api/v1/chat/stream, by name.


class StreamStart(BaseModel):
    model_config = OUT

    conversation_id: str
    message_id: str


class StreamStatus(BaseModel):
    text: str = Field(description="A short working indicator, e.g. 'Thinking…'.")


class StreamDelta(BaseModel):
    text: str = Field(description="The next piece of the answer (CommonMark).")


class StreamTool(BaseModel):
    call_id: str
    tool: str
    title: str
    state: Literal["running", "done", "failed"]


class StreamError(ErrorBody):
    """The answer failed: an apology for the person."""


class StreamRestart(BaseModel):
    """Another worker took the message over and answers from the start: drop what was shown."""


class StreamTitle(BaseModel):
    title: str = Field(description="The conversation's new title, from its first question.")


STREAM_EVENTS: dict[str, type[BaseModel]] = {
    "start": StreamStart, "status": StreamStatus, "delta": StreamDelta, "tool": StreamTool,
    "title": StreamTitle, "done": ChatAnswer, "error": StreamError, "restart": StreamRestart,
}


class IngestBody(BaseModel):
    """What to ingest: paths the server can read (absolute), and how to index them, as
    `switchboard ingest` takes them."""

    model_config = ConfigDict(extra="forbid")

    paths: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(
        min_length=1, max_length=10_000,
        description="Absolute paths of files or folders (read recursively) on the server.",
    )
    source_url_prefix: str | None = Field(
        None, min_length=1, max_length=2048,
        description="Link each file as this URL + its path under the folder given.",
    )
    visibility: Literal["public", "restricted"] | None = Field(
        None, description="For documents whose front matter does not say; default: "
        "restricted when an allow list is given, else public.",
    )
    allow_users: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        [], max_length=1000)
    allow_groups: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        [], max_length=1000)
    allow_channels: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        [], max_length=1000)
    prune: bool = Field(False, description="Remove indexed documents under the paths "
                        "whose files no longer exist.")


class IngestUploadOptions(IngestBody):
    """The `options` part of an upload: as `IngestBody`, with the folder the files are
    kept in instead of paths."""

    paths: list[str] = Field([], max_length=0, description="Not used for uploads.")
    folder: str = Field(
        "upload", min_length=1, max_length=128, pattern=r"^[\w][\w .-]*$",
        description="The folder under the server's `DATA_DIR/uploads` the files are kept "
        "in; with `prune`, the upload replaces the folder's files.",
    )


class IngestUploadForm(BaseModel):
    """A `multipart/form-data` upload: an optional `options` part first, then one `file`
    part per document, its filename the document's path under the folder."""

    options: str | None = Field(None, description="`IngestUploadOptions` as JSON.")
    file: list[bytes] = Field(description="The documents.")


class IngestProgress(BaseModel):
    model_config = OUT

    done: int = Field(description="Files read so far.")
    total: int = Field(description="Files found in all.")
    file: str = Field(description="The name of the last file read.")


class SkippedFile(BaseModel):
    model_config = OUT

    path: str
    reason: str
    kind: str = Field(description="The short reason the summary counts by.")


class IngestReportOut(BaseModel):
    """What one ingest did, as `switchboard ingest` prints it."""

    model_config = OUT

    files: int
    added: int
    updated: int
    unchanged: int
    removed: int
    passages_written: int
    passages_removed: int
    passages_indexed: int = Field(description="Passages in the whole index afterwards.")
    skipped: list[SkippedFile]


INGEST_EVENTS: dict[str, type[BaseModel]] = {
    "progress": IngestProgress, "report": IngestReportOut, "error": ErrorBody,
}


class KnowledgeQuery(BaseModel):
    sources: Flag = Field(False, description="Also list every document's source key.")


class KnowledgeStats(BaseModel):
    model_config = OUT

    index: str = Field(description="Where the index is: the embedded shard or a server.")
    documents: int
    passages: int
    sources: list[str] | None = None


class DocumentQuery(BaseModel):
    # 2,048 characters, each escaped to three, stay within aiohttp's 8,190-byte request line.
    source: str = Field(min_length=1, max_length=2048,
                        description="The document's source key, as `sources` lists it.")


class DocumentRemoved(BaseModel):
    model_config = OUT

    source: str
    passages_removed: int
