"""One small error hierarchy, split by audience.

- What the person sees: `user_message`, a short apology; never exception text.
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


class StorageError(SwitchboardError):
    """The database refused or lost a write; the message stays in the inbox to retry."""


class NotFound(SwitchboardError):
    """A conversation, message or record does not exist (or is not the caller's)."""


class ToolError(SwitchboardError):
    """Raised by a tool to tell the model what went wrong in words it can act on."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)
