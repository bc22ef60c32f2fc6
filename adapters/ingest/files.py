"""Which files an ingest reads, the source key each is indexed under, and which indexed
sources the run owns (may prune).

Source key: with a `source_url_prefix`, the file's URL (prefix + path relative to the root
given) — the same wherever and from whichever checkout the documents are ingested, so a
moved checkout or an upgraded install does not duplicate them. Without one, the file's
resolved absolute path as a `file://` URI — the same from any working directory, and
distinct for two roots that happen to hold the same relative paths."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from adapters.ingest.document import Skipped


@dataclass(frozen=True, kw_only=True, slots=True)
class SourceFile:
    path: Path
    source: str
    url: str | None  # the file's own address, when a prefix gives it one


@dataclass(frozen=True, kw_only=True, slots=True)
class Scope:
    """The indexed sources one root owns: everything under a directory, or one file."""

    prefix: str
    exact: bool

    def owns(self, source: str) -> bool:
        return source == self.prefix if self.exact else source.startswith(self.prefix)


@dataclass(frozen=True, kw_only=True, slots=True)
class Found:
    files: tuple[SourceFile, ...]
    scopes: tuple[Scope, ...]
    missing: tuple[Skipped, ...]


def discover(roots: list[Path], *, url_prefix: str | None) -> Found:
    """Files under `roots` (recursive, sorted, hidden files and directories left out, a
    file named directly always taken). A root that does not exist owns nothing, so a
    mistyped or unmounted path cannot prune the index."""
    files: list[SourceFile] = []
    scopes: list[Scope] = []
    missing: list[Skipped] = []
    base = _base(url_prefix) if url_prefix else None
    for root in roots:
        resolved = root.resolve()
        if resolved.is_file():
            key = _key(resolved.parent, resolved.name, base)
            files.append(SourceFile(path=root, source=key, url=key if base else None))
            scopes.append(Scope(prefix=key, exact=True))
        elif resolved.is_dir():
            for relative in walk(resolved):
                key = _key(resolved, relative, base)
                files.append(
                    SourceFile(path=root / relative, source=key, url=key if base else None)
                )
            scopes.append(Scope(prefix=base or resolved.as_uri() + "/", exact=False))
        else:
            missing.append(Skipped(path=root, reason="not found"))
    return Found(files=tuple(files), scopes=tuple(scopes), missing=tuple(missing))


def walk(root: Path) -> list[str]:
    found = []
    for directory, subdirectories, names in os.walk(root):
        subdirectories[:] = [d for d in subdirectories if not d.startswith(".")]
        for name in names:
            if not name.startswith(".") and (path := Path(directory, name)).is_file():
                found.append(path.relative_to(root).as_posix())
    return sorted(found)


def _base(prefix: str) -> str:
    """"https://wiki/docs" means the folder: a prefix ending in a letter or digit gets
    its "/"; one ending in "/", "=" or "#" is used as given."""
    return prefix + "/" if prefix[-1:].isalnum() else prefix


def _key(root: Path, relative: str, base: str | None) -> str:
    if base is not None:
        return base + quote(relative, safe="/")
    return (root / relative).as_uri()
