"""The load of `make chaos` (bench/chaos.py): bench/locustfile.py's users, unchanged, plus a line per request in
the file DRIFTWATCH_CHAOS_REQUEST_LOG names (wall-clock time, status, failed or not, request kind), so that the
harness can count the failures and the 500s inside each fault's window."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from locust import events

sys.path.insert(0, str(Path(__file__).resolve().parent))

from locustfile import Watcher  # the users of bench/load.py

__all__ = ["Watcher"]

_log = open(os.environ["DRIFTWATCH_CHAOS_REQUEST_LOG"], "a", buffering=1)  # noqa: SIM115 -- for the run's life


@events.request.add_listener
def _record(name: str, response: Any, exception: BaseException | None, **kwargs: Any) -> None:
    status = getattr(response, "status_code", 0) or 0
    _log.write(f"{time.time():.3f} {status} {1 if exception else 0} {name}\n")
