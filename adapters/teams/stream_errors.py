"""Why Teams refused a streaming update. Every refusal is 403 with the same error code;
only the message says whether the person pressed Stop (end the answer there) or streaming
is not possible here or any more (send the answer as one message instead).

Sources:
- Microsoft Teams docs, "Stream messages user experience" (msteams-platform/bots/
  streaming-ux.md), sections "Stop streaming bot response" and "Error codes": 403
  `ContentStreamNotAllowed` with "Content stream was cancelled by user." for a Stop;
  "Content stream is not allowed", "… on an already completed streamed message",
  "Content stream finished due to exceeded streaming time.", "Message size too large"
  for the others.
- microsoft/teams.ts issue 101: the body Teams sent on a real Stop
  (`ContentStreamNotAllowed`, "Content stream was cancelled by user.").
- microsoft/teams.py PR 337 (and teams.ts PR 513, its port) took any 403 for a Stop;
  teams.py PR 453 then told them apart by the message (matching "cancel", as its tests
  spell it "canceled" while the docs and the real body say "cancelled").
"""

from __future__ import annotations

STREAM_REFUSED = "ContentStreamNotAllowed"  # the code of every refused stream update
STOPPED_BY_USER = "Content stream was cancelled by user."  # the docs' spelling, and Teams'
TIMED_OUT = "Content stream finished due to exceeded streaming time."
NOT_ALLOWED = "Content stream is not allowed"
ALREADY_COMPLETED = "Content stream is not allowed on an already completed streamed message"
TOO_LARGE = "Message size too large"


def stopped_by_user(status: int | None, code: str | None, message: str | None) -> bool:
    """The person pressed Stop on the streaming answer. Matched on the message's words,
    not its exact text: both spellings of "cancel(l)ed" are about."""
    if status != 403 or code not in (None, STREAM_REFUSED) or not message:
        return False
    words = message.lower()
    return "cancel" in words and "by user" in words
