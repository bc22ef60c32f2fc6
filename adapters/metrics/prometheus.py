"""`Telemetry` as Prometheus metrics, in a registry of its own per app (never the
process-global one: tests, and two apps in one process, must not share counters).

Every metric carries the process's `role` (all, web, worker): the web role counts what it
receives and refuses, the worker what it answers. The inbox gauges are read from the
database when scraped (`observe_backlog`), so they are as fresh as the scrape, and the
same in every process: there is one inbox.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from core.inbox import Backlog
from core.ports import MessageOutcome, ModelOutcome

CONTENT_TYPE = CONTENT_TYPE_LATEST
# The person's side: the first sign is meant to come within 300 ms, the first text within
# a few seconds; a queue behind a slow model shows as the top buckets filling.
PERSON_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60, 120)
MODEL_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120)
RETRIEVAL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5)


class PrometheusTelemetry:
    def __init__(self, *, role: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._role = role
        r = self.registry
        self._received = Counter(
            "switchboard_messages_received", "Deliveries of messages offered to the inbox.",
            ["role", "channel"], registry=r)
        self._messages = Counter(
            "switchboard_messages", "Messages by how they ended.",
            ["role", "channel", "outcome"], registry=r)
        self._duplicates = Counter(
            "switchboard_duplicates_refused",
            "Deliveries of a message already recorded, by the status it was found in.",
            ["role", "channel", "status"], registry=r)
        self._apologies = Counter(
            "switchboard_apologies", "Apologies sent instead of an answer, by reason.",
            ["role", "channel", "reason"], registry=r)
        self._depth = Gauge(
            "switchboard_inbox_depth", "Unfinished inbox items by status (when scraped).",
            ["role", "status"], registry=r)
        self._oldest = Gauge(
            "switchboard_inbox_oldest_pending_age_seconds",
            "Age of the oldest item waiting for a worker (0: none waits).",
            ["role"], registry=r)
        self._first_sign = Histogram(
            "switchboard_first_sign_seconds",
            "From a message's sending to the first sign of its answer.",
            ["role", "channel"], buckets=PERSON_BUCKETS, registry=r)
        self._first_token = Histogram(
            "switchboard_first_token_seconds",
            "From a message's sending to the first text of its answer.",
            ["role", "channel"], buckets=PERSON_BUCKETS, registry=r)
        self._model = Histogram(
            "switchboard_model_seconds", "One streamed model response, start to end.",
            ["role", "model", "outcome"], buckets=MODEL_BUCKETS, registry=r)
        self._model_first = Histogram(
            "switchboard_model_first_token_seconds",
            "From a model request to its first text.",
            ["role", "model"], buckets=MODEL_BUCKETS, registry=r)
        self._tokens = Counter(
            "switchboard_model_tokens", "Tokens the model reported, in (prompt) and out.",
            ["role", "model", "direction"], registry=r)
        self._tools = Counter(
            "switchboard_tool_calls", "Tool calls by tool and outcome (ok, failed).",
            ["role", "tool", "outcome"], registry=r)
        self._retrieval = Histogram(
            "switchboard_retrieval_seconds", "One knowledge search, by outcome (ok, error).",
            ["role", "outcome"], buckets=RETRIEVAL_BUCKETS, registry=r)

    # ----- Telemetry -----

    def received(self, channel: str) -> None:
        self._received.labels(self._role, channel).inc()

    def message(self, channel: str, outcome: MessageOutcome, *, detail: str = "") -> None:
        self._messages.labels(self._role, channel, outcome).inc()
        if outcome == "duplicate":
            self._duplicates.labels(self._role, channel, detail or "unknown").inc()
        elif outcome == "apologised":
            self._apologies.labels(self._role, channel, detail or "error").inc()

    def first_sign(self, channel: str, seconds: float) -> None:
        self._first_sign.labels(self._role, channel).observe(seconds)

    def first_token(self, channel: str, seconds: float) -> None:
        self._first_token.labels(self._role, channel).observe(seconds)

    def model_call(
        self, model: str, *, outcome: ModelOutcome, seconds: float, first_token: float | None,
    ) -> None:
        self._model.labels(self._role, model, outcome).observe(seconds)
        if first_token is not None:
            self._model_first.labels(self._role, model).observe(first_token)

    def model_tokens(self, model: str, *, prompt: int, completion: int) -> None:
        self._tokens.labels(self._role, model, "in").inc(prompt)
        self._tokens.labels(self._role, model, "out").inc(completion)

    def tool_call(self, tool: str, *, ok: bool) -> None:
        self._tools.labels(self._role, tool, "ok" if ok else "failed").inc()

    def retrieval(self, *, seconds: float, ok: bool) -> None:
        self._retrieval.labels(self._role, "ok" if ok else "error").observe(seconds)

    # ----- scraping -----

    def observe_backlog(self, backlog: Backlog | None) -> None:
        """The inbox as read for this scrape; None (it could not be read) leaves the
        gauges out rather than showing stale numbers."""
        self._depth.clear()
        self._oldest.clear()
        if backlog is None:
            return
        for status, count in backlog.by_status.items():
            self._depth.labels(self._role, status).set(count)
        oldest = backlog.oldest_pending
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        self._oldest.labels(self._role).set(max(0.0, age))

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format (`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
