"""Time drift.diffs.side_by_side on nginx-style files made of repeated `server { ... }` blocks, the shape that
made difflib quadratic (before: 29 s at 4,000 lines when every block changed). Prints one line per size and
shape; needs no services. A benchmark, not a test: the numbers depend on the machine.

    .venv/bin/python bench/diff.py
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drift.diffs import side_by_side

SIZES = (500, 2_000, 4_000)
REPEATS = 5


def nginx_conf(lines: int, port: int = 80) -> str:
    """Identical server blocks: almost no line occurs only once."""
    body = ["worker_processes 1;", "events { worker_connections 1024; }", "http {"]
    while len(body) < lines - 1:
        body += ["    server {", f"        listen {port};", "        server_name example.com;", "        location / {",
                 "            proxy_pass http://backend;", "            proxy_set_header Host $host;", "        }",
                 "    }", ""]  # fmt: skip
    return "\n".join([*body[: lines - 1], "}"])


def few_edits(lines: int) -> tuple[str, str]:
    """One changed line per 400 and one inserted line per 1,000."""
    old = nginx_conf(lines)
    edited = old.splitlines()
    for index in range(200, len(edited), 400):
        edited[index] += "  # edited"
    for index in range(len(edited) - 500, 0, -1_000):
        edited.insert(index, "        proxy_read_timeout 30s;")
    return old, "\n".join(edited)


def every_block_edited(lines: int) -> tuple[str, str]:
    """The port of every server block changed: what took difflib 29 s."""
    return nginx_conf(lines), nginx_conf(lines, port=8080)


SHAPES: dict[str, Callable[[int], tuple[str, str]]] = {
    "few edits": few_edits,
    "every block edited": every_block_edited,
}


def main() -> None:
    print(f"{'shape':<20} {'lines':>6} {'KiB':>5} {'rows':>6} {'median ms':>10} {'min-max ms':>14}")
    for shape, make in SHAPES.items():
        for size in SIZES:
            old, new = make(size)
            times = []
            rows = []
            for _ in range(REPEATS):
                started = time.perf_counter()
                rows = side_by_side(old, new)
                times.append((time.perf_counter() - started) * 1000)
            spread = f"{min(times):.1f}-{max(times):.1f}"
            kib = len(old.encode()) / 1024
            print(f"{shape:<20} {size:>6} {kib:>5.0f} {len(rows):>6} {statistics.median(times):>10.1f} {spread:>14}")


if __name__ == "__main__":
    main()
