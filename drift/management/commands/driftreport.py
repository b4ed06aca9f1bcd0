import json
from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError

from drift import verdicts
from drift.models import Cluster


class Command(BaseCommand):
    help = "Print one JSON object per (pod, container, source reference) with its verdict."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", required=True, help="JSON output (the only format)")
        parser.add_argument("--cluster")
        parser.add_argument("--namespace")

    def handle(self, *args: object, **options: object) -> None:
        cluster = None
        if options["cluster"]:
            cluster = Cluster.objects.filter(name=options["cluster"]).first()
            if cluster is None:
                raise CommandError(f"no cluster named {options['cluster']!r}")
        namespace = str(options["namespace"] or "") or None
        # The stored verdicts, those expired judged again: what the pages show, without judging every row.
        clusters = [cluster] if cluster is not None else list(Cluster.objects.all())
        rows = [row for each in clusters for row in verdicts.rows(each, namespace)]
        # One JSON array, one row per line: compact rows go through the json module's C encoder (with indent it
        # falls back to pure Python, and printing 15,000 rows took longer than reading them).
        lines = ",\n".join(json.dumps(row.as_json()) for row in rows)
        self.stdout.write(f"[\n{lines}\n]" if rows else "[]")
