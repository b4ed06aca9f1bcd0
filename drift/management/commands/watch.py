"""`manage.py watch [--cluster NAME]`: the long-running watcher (drift.snapshot.watch), beside the worker and beat."""

from __future__ import annotations

import logging
import signal
import threading
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from drift.models import Cluster
from drift.snapshot.leases import DEFAULT_LEASE_SECONDS
from drift.snapshot.watch import DEFAULT_STALL_SECONDS, watch_clusters


class Command(BaseCommand):
    help = (
        "Watch the ConfigMaps and Secrets of one cluster (or of every registered cluster, including those added "
        "later) and record each content change within seconds. Any number of these processes share the clusters "
        "through leases (drift.snapshot.leases): each watches its share, and takes over the clusters of one that "
        "stops renewing. Runs until SIGTERM or Ctrl-C, then gives its leases back."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--cluster", default="", help="only this cluster (default: every registered cluster)")
        parser.add_argument(
            "--stall-seconds",
            type=float,
            default=DEFAULT_STALL_SECONDS,
            help="restart a watch that brought no event and no bookmark for this long (default %(default)s; keep it "
            "above the API server's one bookmark a minute, or every quiet watch is restarted after it)",
        )

        parser.add_argument(
            "--lease-seconds",
            type=float,
            default=DEFAULT_LEASE_SECONDS,
            help="a cluster's lease lasts this long unless renewed (every third of it); another process takes it "
            "over after that (default %(default)s)",
        )

    def handle(self, *args: object, **options: Any) -> None:
        name = options["cluster"]
        if name and not Cluster.objects.filter(name=name).exists():
            raise CommandError(f"no cluster named {name!r}")
        if options["stall_seconds"] < 5:
            raise CommandError("--stall-seconds must be at least 5")
        if not 3 <= options["lease_seconds"] <= 600:
            raise CommandError("--lease-seconds must be between 3 and 600")
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        stop = threading.Event()

        def ask_to_stop(signum: int, frame: object) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, ask_to_stop)
        signal.signal(signal.SIGINT, ask_to_stop)
        self.stdout.write(f"watching {name or 'every registered cluster'}", ending="\n")
        self.stdout.flush()
        watch_clusters(stop, name, stall_seconds=options["stall_seconds"], lease_seconds=options["lease_seconds"])
