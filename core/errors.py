"""One small error hierarchy, split by audience.

- What the person sees: `user_message`, a short apology that says what happened; never
  exception text.
- What the model sees: `ToolError.message`, something it can act on.
- What the log sees: the exception itself, once, with correlation ids.
"""

from __future__ import annotations


class SwitchboardError(Exception):
    user_message = "Sorry, something went wrong while I was answering. Please try again."


class ConfigurationError(SwitchboardError):
    """Settings are missing or invalid; raised at start-up with every problem listed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("Invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class ModelError(SwitchboardError):
    """The language model failed: unreachable, refused the request, or answered garbage."""

    user_message = "Sorry, I couldn't reach the language model just now. Please try again in a moment."


class ModelTimeout(ModelError):
    user_message = "Sorry, the language model took too long to answer. Please try again in a moment."


class ModelInterrupted(ModelError):
    """The model failed, or the answer's deadline passed, after part of the answer had
    been shown: the person must not take what they see for the whole answer."""

    def __init__(self, message: str, *, timed_out: bool) -> None:
        super().__init__(message)
        self.user_message = (
            "Sorry, the language model took too long: the answer above is incomplete. "
            "Please try again in a moment."
            if timed_out else
            "Sorry, the language model stopped before finishing: the answer above is "
            "incomplete. Please try again."
        )


class NoAnswer(SwitchboardError):
    """The turn ended with nothing to say: failed (and retryable), never stored as done."""

    def __init__(self, message: str, *, failed_tools: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        if failed_tools:
            self.user_message = (
                f"Sorry, something I needed did not work ({', '.join(failed_tools)}), so I "
                "couldn't finish the answer. Please try again."
            )
        else:
            self.user_message = (
                "Sorry, I couldn't put an answer together this time. Please try again."
            )


class StorageError(SwitchboardError):
    """The database refused or lost a write; the message stays in the inbox to retry."""

    user_message = (
        "Sorry, I couldn't save this conversation just now (the database is unavailable). "
        "Please try again in a moment."
    )


class NotFound(SwitchboardError):
    """A conversation, message or record does not exist (or is not the caller's)."""


class ToolError(SwitchboardError):
    """Raised by a tool to tell the model what went wrong in words it can act on."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class AnswerStopped(Exception):
    """The person stopped the answer on the platform itself (Teams' Stop on a streaming
    answer): a `Replier` raises it from `send`, and the answer ends there, kept as far as
    it was shown and marked stopped. Not a failure: nothing is apologised for or retried."""
