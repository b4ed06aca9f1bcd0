from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError

from drift.models import Cluster, SnapshotRun
from drift.snapshot import snapshot


class Command(BaseCommand):
    help = "Run one snapshot cycle synchronously and print a one-line summary per cluster."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--cluster", help="only this cluster (default: every registered cluster)")

    def handle(self, *args: object, **options: object) -> None:
        clusters = Cluster.objects.all()
        if options["cluster"]:
            clusters = clusters.filter(name=options["cluster"])
            if not clusters.exists():
                raise CommandError(f"no cluster named {options['cluster']!r}")
        if not clusters.exists():
            raise CommandError("no cluster registered: add one with `manage.py cluster add`")
        failures = []
        for cluster in clusters:
            run = snapshot(cluster)
            seconds = ((run.finished_at or run.started_at) - run.started_at).total_seconds()
            if run.status == SnapshotRun.Status.FAILED:
                failures.append(f"{cluster.name}: {run.error}")
                self.stderr.write(f"{cluster.name}: failed after {seconds:.1f}s: {run.error}")
                continue
            counts = ", ".join(f"{count} {verdict}" for verdict, count in run.verdict_counts.items() if count)
            forbidden = (
                f"; forbidden namespaces: {', '.join(run.forbidden_namespaces)}" if run.forbidden_namespaces else ""
            )
            self.stdout.write(
                f"{cluster.name}: {run.status} in {seconds:.1f}s; {run.api_calls} API calls, "
                f"{run.exec_probes} exec probes, {run.rows_written} rows written; "
                f"pods: {counts or 'none'}{forbidden}"
            )
        if failures:
            raise CommandError("; ".join(failures))
