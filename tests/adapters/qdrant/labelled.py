"""A small labelled set: passages, and queries each with the one passage that answers it.

Built so that neither retriever is enough: some queries hinge on exact rare terms and
codes (BM25's strength; the fake embedder barely sees them), others share no word with
their answer and only meet it through synonyms (`ConceptEmbedder`'s strength).
"""

from __future__ import annotations

import uuid

from core.knowledge import Access, Chunk

_NS = uuid.UUID("7c1f3a52-2f0e-4d7e-9a55-0b6f0f5c2a10")

PASSAGES: dict[str, tuple[str, str, str]] = {
    "password": ("IT help", "Change your password",
                 "Open the account portal, choose Settings and enter the current and the new "
                 "password twice. The new password needs twelve characters."),
    "vpn": ("IT help", "Connect to the VPN",
            "Install the GlobalProtect client, sign in with your account and pick the nearest "
            "gateway. The tunnel reconnects after sleep."),
    "vpn-password": ("IT help", "Reset your VPN password",
                     "VPN passwords are separate from the account password. Ask the service desk "
                     "to reset it; the new one arrives by SMS."),
    "kerberos": ("IT help", "Kerberos tickets",
                 "On Linux, run kinit to renew an expired Kerberos ticket before mounting the "
                 "file shares."),
    "laptop": ("Equipment", "Laptop repairs",
               "Bring a damaged laptop to the service desk on floor 2. A loan machine is issued "
               "the same day."),
    "phone": ("Equipment", "Mobile phones",
              "Company smartphones are ordered through the equipment portal; the monthly data "
              "plan is 10 GB."),
    "printer-errors": ("Printers", "Error codes",
                       "ERR-4711 means the toner cartridge is not seated. ERR-2040 means a paper "
                       "jam in tray two."),
    "printing": ("Printers", "Printing from your laptop",
                 "Add the printer queue FollowMe and release the job with your badge at any "
                 "printer."),
    "leave": ("HR handbook", "Annual leave",
              "Full-time staff get 28 days of holiday a year. Request them in the HR portal at "
              "least two weeks ahead."),
    "sick": ("HR handbook", "Sick leave",
             "Report an absence to your manager before 10:00 on the first day. From day four a "
             "doctor's note is needed."),
    "expenses": ("Finance", "Expense claims",
                 "Submit receipts in Concur within 30 days; claims above 500 EUR need approval "
                 "from your manager."),
    "travel": ("Finance", "Business travel",
               "Book flights and hotels through Egencia. Economy class for trips under six hours."),
    "payroll": ("Finance", "Payroll",
                "Salaries are paid on the 25th. Your payslip appears in Workday two days before."),
    "phishing": ("Security", "Report phishing",
                 "Forward suspicious mail as an attachment to abuse@example.com and delete it."),
    "wifi": ("Office", "Wireless network",
             "Guests use the network Example-Guest; staff use Example-Corp with their account "
             "certificate."),
    "rooms": ("Office", "Meeting rooms",
              "Book rooms in Outlook; the large conference room needs the reservation code MR-88."),
}

# (query, key of the passage that answers it)
QUERIES: list[tuple[str, str]] = [
    # exact terms and codes: BM25 finds them, the embedder barely sees them
    ("ERR-4711", "printer-errors"),
    ("kinit", "kerberos"),
    ("Concur", "expenses"),
    ("GlobalProtect gateway", "vpn"),
    ("MR-88", "rooms"),
    # synonyms without a shared word: only the embedder finds them
    ("forgot my passphrase", "password"),
    ("notebook is broken", "laptop"),
    ("vacation entitlement", "leave"),
    ("getting a reimbursement", "expenses"),
    ("cellphone", "phone"),
]


def chunk_id(key: str) -> str:
    return str(uuid.uuid5(_NS, key))


def chunks() -> list[Chunk]:
    return [
        Chunk(
            id=chunk_id(key), source=f"docs/{key}.md", position=0, title=title,
            headings=(heading,), text=text, url=f"https://docs.example.com/{key}",
            document_hash=f"hash-{key}", access=Access(),
        )
        for key, (title, heading, text) in PASSAGES.items()
    ]


def reciprocal_rank(ranked_ids: list[str], key: str) -> float:
    wanted = chunk_id(key)
    return next((1 / (i + 1) for i, pid in enumerate(ranked_ids) if pid == wanted), 0.0)
