"""`switchboard ingest` of a real document tree into a fresh data directory (issue 14).

Copies the first `--dirs` package folders of a documentation tree (default: this
machine's /usr/share/doc, read through symbolic links) into a scratch folder, so the same
tree can be ingested by two versions, then times `switchboard ingest TREE` as a person
runs it: a fresh DATA_DIR, the embedded defaults (BM25 and the bundled static embeddings),
no bundled documentation. The command's own summary gives the passages; wall time and
peak RSS (the command and its reader process) come from the operating system.

    .venv/bin/python benchmarks/ingest_rate.py                 # first 150 folders
    .venv/bin/python benchmarks/ingest_rate.py --dirs 0        # the whole tree

Targets (issue 14): ≥ 1,000 passages/s with the default retrieval; a 65k-passage tree
in under 2 minutes. Results: benchmarks/README.md, "Ingest rate".
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def copy_tree(source: Path, dirs: int, into: Path) -> Path:
    tree = into / "tree"
    tree.mkdir()
    folders = sorted(p for p in source.iterdir() if p.is_dir())
    for folder in folders[:dirs] if dirs else folders:
        shutil.copytree(folder, tree / folder.name, symlinks=False,
                        ignore_dangling_symlinks=True, dirs_exist_ok=True)
    return tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("/usr/share/doc"))
    parser.add_argument("--dirs", type=int, default=150, help="0: every folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tree = copy_tree(args.source, args.dirs, Path(scratch))
        env = {**os.environ, "DATA_DIR": str(Path(scratch) / "data"),
               "SWITCHBOARD_BUNDLED_DOCS": "false"}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "bots.cli", "ingest", str(tree)],
                              cwd=REPOSITORY, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"ingest failed ({done.returncode}): {done.stderr[-2000:]}")
        summary = next(line for line in done.stdout.splitlines() if " files: " in line)
        written = int(re.search(r"(\d+) passages written", summary).group(1))  # type: ignore[union-attr]
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(summary)
        print(f"{written:,} passages in {seconds:.1f} s: {written / seconds:,.0f} passages/s, "
              f"peak RSS {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
