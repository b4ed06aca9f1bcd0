"""`manage.py watch [--cluster NAME]`: the long-running watcher (drift.snapshot.watch), beside the worker and beat."""

from __future__ import annotations

import logging
import signal
import threading
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from drift.models import Cluster
from drift.snapshot.watch import DEFAULT_STALL_SECONDS, watch_clusters


class Command(BaseCommand):
    help = (
        "Watch the ConfigMaps and Secrets of one cluster (or of every registered cluster, including those added "
        "later) and record each content change within seconds. Runs until SIGTERM or Ctrl-C."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--cluster", default="", help="only this cluster (default: every registered cluster)")
        parser.add_argument(
            "--stall-seconds",
            type=float,
            default=DEFAULT_STALL_SECONDS,
            help="restart a watch that brought no event and no bookmark for this long (default %(default)s)",
        )

    def handle(self, *args: object, **options: Any) -> None:
        name = options["cluster"]
        if name and not Cluster.objects.filter(name=name).exists():
            raise CommandError(f"no cluster named {name!r}")
        if options["stall_seconds"] < 5:
            raise CommandError("--stall-seconds must be at least 5")
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        stop = threading.Event()

        def ask_to_stop(signum: int, frame: object) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, ask_to_stop)
        signal.signal(signal.SIGINT, ask_to_stop)
        self.stdout.write(f"watching {name or 'every registered cluster'}", ending="\n")
        self.stdout.flush()
        watch_clusters(stop, name, stall_seconds=options["stall_seconds"])
