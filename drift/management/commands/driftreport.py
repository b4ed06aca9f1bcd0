import json
from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from drift import verdicts
from drift.models import Cluster
from drift.verdicts import at as pit
from drift.verdicts.read_at import PointInTime, point_in_time


class Command(BaseCommand):
    help = (
        "Print one JSON object per (pod, container, source reference) with its verdict; with --at, what ran at "
        "that moment, judged then (one object per cluster, its rows, or why it is not known)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="JSON output (the only format)")
        parser.add_argument("--cluster")
        parser.add_argument("--namespace")
        parser.add_argument("--at", help="a moment, ISO 8601 (e.g. 2026-12-01T09:12; without an offset: TIME_ZONE)")

    def handle(self, *args: object, **options: object) -> None:
        if not options["json"] and not options["at"]:
            raise CommandError("give --json (the only format)")
        cluster = None
        if options["cluster"]:
            cluster = Cluster.objects.filter(name=options["cluster"]).first()
            if cluster is None:
                raise CommandError(f"no cluster named {str(options['cluster'])[:80]!r}")
        namespace = str(options["namespace"] or "") or None
        clusters = [cluster] if cluster is not None else list(Cluster.objects.all())
        if options["at"]:
            now = timezone.now()
            try:
                moment = pit.parse_moment(str(options["at"]), now, timezone.get_current_timezone())
            except ValueError as error:
                raise CommandError(str(error)) from None
            answers = [point_in_time(each, moment, namespace, now=now) for each in clusters]
            if options["json"]:
                self.stdout.write(json.dumps([answer.as_json() for answer in answers]))
            else:
                for answer in answers:
                    self._write_text(answer)
            return
        # The stored verdicts, those expired judged again: what the pages show, without judging every row.
        rows = [row for each in clusters for row in verdicts.rows(each, namespace)]
        # One JSON array, one row per line: compact rows go through the json module's C encoder (with indent it
        # falls back to pure Python, and printing 15,000 rows took longer than reading them).
        lines = ",\n".join(json.dumps(row.as_json()) for row in rows)
        self.stdout.write(f"[\n{lines}\n]" if rows else "[]")

    def _write_text(self, answer: PointInTime) -> None:
        """One line per row: what a person reads in a terminal during an incident."""
        self.stdout.write(f"cluster {answer.cluster} as of {answer.at.isoformat()}")
        if not answer.known:
            self.stdout.write(f"  {answer.coverage.reason}")
            return
        for each in answer.rows:
            row = each.row
            ran = f"#{each.running.number} ({each.running.author})" if each.running else "not known"
            current = f"#{each.current.number}" if each.current else "none"
            self.stdout.write(
                f"  {row.namespace}/{row.pod} uid={each.pod_uid} {row.container} {row.source} ({row.mode}): "
                f"ran {ran}, current {current}, {row.verdict}: {row.reason}"
            )
