"""`ConceptEmbedder`: a deterministic stand-in for a dense embedding model, for tests.

Not a real model and no claim about real retrieval quality. It maps words through a
small synonym table onto concept dimensions, so "forgot my passphrase" lands near
"change your password" with no word in common, which is what a dense model adds over
BM25. Other words fall into a few shared hash buckets, codes (a token with a digit, like
ERR-4711) with a fair weight and plain words with a tiny one: the fake, like a real model,
is vague about exact identifiers, and no two different texts tie exactly (engines break
ties their own way). A small constant component keeps every vector non-zero. Vectors are
L2-normalised.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence

CONCEPTS: dict[str, tuple[str, ...]] = {
    "reset": ("reset", "change", "forgot", "forgotten", "recover", "lost", "restore", "renew"),
    "password": ("password", "passwords", "credentials", "passphrase", "login", "pin"),
    "laptop": ("laptop", "laptops", "notebook", "computer", "pc", "macbook", "workstation"),
    "repair": ("repair", "repairs", "broken", "fix", "damaged", "cracked", "faulty"),
    "vpn": ("vpn", "tunnel", "remote"),
    "email": ("email", "mail", "inbox", "outlook", "mailbox"),
    "leave": ("leave", "vacation", "holiday", "holidays", "pto", "absence"),
    "money": ("expense", "expenses", "reimbursement", "receipt", "receipts", "refund", "claim"),
    "printer": ("printer", "printers", "print", "printing", "toner"),
    "network": ("wifi", "wireless", "network", "internet"),
    "error": ("error", "errors", "failure", "crash", "fault", "code", "codes"),
    "travel": ("travel", "trip", "flight", "flights", "hotel", "booking"),
    "pay": ("payroll", "salary", "payslip", "wage", "wages"),
    "security": ("security", "phishing", "suspicious", "scam", "malware"),
    "meeting": ("meeting", "meetings", "room", "rooms", "conference"),
    "start": ("onboarding", "starter", "newcomer", "first", "welcome"),
    "phone": ("phone", "mobile", "smartphone", "cellphone"),
}
HASH_BUCKETS = 4
HASH_WEIGHT = 0.5
WORD_WEIGHT = 0.01
BIAS = 0.1
_WORD = re.compile(r"[a-z0-9][a-z0-9-]*")
_INDEX = {word: i for i, words in enumerate(CONCEPTS.values()) for word in words}


class ConceptEmbedder:
    """A fake `core.ports.Embedder`; `calls` records each batch it was asked for."""

    size = len(CONCEPTS) + HASH_BUCKETS + 1

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    @property
    def name(self) -> str:
        return "fake-concepts"

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return [self.vector(t) for t in texts]

    def vector(self, text: str) -> list[float]:
        values = [0.0] * (self.size - 1) + [BIAS]
        for word in _WORD.findall(text.lower()):
            if word in _INDEX:
                values[_INDEX[word]] += 1.0
            else:
                weight = HASH_WEIGHT if any(c.isdigit() for c in word) else WORD_WEIGHT
                values[len(CONCEPTS) + zlib.crc32(word.encode()) % HASH_BUCKETS] += weight
        norm = math.sqrt(sum(v * v for v in values)) or 1.0
        return [v / norm for v in values]
