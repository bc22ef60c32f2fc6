"""`switchboard slack manifest`: the Slack app manifest, rendered for one host.

The template is plain text so its comments survive; the URL is checked strictly enough
(no spaces, `#`, `?` or YAML punctuation) that substituting it keeps the YAML valid.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

TEMPLATE = Path(__file__).parents[1] / "manifests" / "slack" / "manifest.yaml"
PLACEHOLDER = "https://your.host"

_LOCAL_HOSTS = ("localhost", "127.0.0.1")
_NETLOC = re.compile(r"[A-Za-z0-9.-]+(?::([0-9]{1,5}))?")
_PATH = re.compile(r"[A-Za-z0-9._~%/-]*")
_SOCKET_MODE_FLAG = re.compile(r"^([ \t]*socket_mode_enabled:) false\b", re.MULTILINE)


def render_manifest(base_url: str | None, *, socket_mode: bool = False) -> str:
    """The manifest with every URL under `base_url`; with `socket_mode`, no request URLs."""
    if base_url is None and not socket_mode:
        raise ValueError("a base URL is required unless Socket Mode is used")
    base = None if base_url is None else normalise_base_url(base_url)
    text = TEMPLATE.read_text(encoding="utf-8")
    if socket_mode:
        text = _socket_mode(text, keep_redirect=base is not None)
    return text if base is None else text.replace(PLACEHOLDER, base)


def normalise_base_url(url: str) -> str:
    """`https://host[:port][/prefix]` without a trailing slash, or ValueError saying why."""
    parts = urlsplit(url.strip())
    local = parts.hostname in _LOCAL_HOSTS
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise ValueError(
            f"base URL must start with https:// (http:// only for localhost), not {url!r}"
        )
    if "?" in url or "#" in url:
        raise ValueError(f"base URL must not have a query or fragment: {url!r}")
    host = _NETLOC.fullmatch(parts.netloc)
    if not host or not parts.hostname or int(host[1] or 0) > 65535:
        raise ValueError(f"base URL needs a plain host name (and optional port): {url!r}")
    if not _PATH.fullmatch(parts.path):
        raise ValueError(
            f"base URL path may hold only letters, digits, '-', '.', '_', '~', '%' and '/': {url!r}"
        )
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def _socket_mode(text: str, *, keep_redirect: bool) -> str:
    """Socket Mode apps must not declare request URLs; without a host, no URL at all."""
    text, flipped = _SOCKET_MODE_FLAG.subn(r"\1 true", text)
    if flipped != 1:
        raise RuntimeError(f"{TEMPLATE} has no `socket_mode_enabled: false` line")
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        if _dropped(line.strip(), keep_redirect=keep_redirect):
            indent = _indent(line)
            while out and out[-1].lstrip().startswith("#") and _indent(out[-1]) == indent:
                out.pop()  # the comment that explained the dropped line
        else:
            out.append(line)
    return "".join(out)


def _dropped(key: str, *, keep_redirect: bool) -> bool:
    if key.startswith(("request_url:", "url:")):
        return True
    if keep_redirect or key.startswith("#"):
        return False
    return key.startswith("redirect_urls:") or PLACEHOLDER in key


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())
