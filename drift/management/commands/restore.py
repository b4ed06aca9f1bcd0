from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from drift import kube
from drift.history import history
from drift.management.commands.rollout import _cluster
from drift.restore import RestoreRefused, preview, restore
from drift.vocabulary import SourceKind


class Command(BaseCommand):
    help = (
        "Put a ConfigMap back to a stored version (as `manage.py history` numbers them): the diff against the live "
        "content and a server-side dry run, then an update that the API server refuses if the ConfigMap changed "
        "meanwhile. Audited under --actor. Secrets cannot be restored (their values are never stored)."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # --version is the version to restore (as the issue spells the command), not Django's own version flag.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("object", metavar="configmap/NAME")
        parser.add_argument("-n", "--namespace", required=True)
        parser.add_argument("--cluster", help="registered cluster name (default: the only one registered)")
        parser.add_argument("--version", type=int, required=True, help="the version number, as `history` shows it")
        parser.add_argument("--actor", required=True, help="who asks; recorded in the audit history")
        parser.add_argument("--dry-run", action="store_true", help="preview and ask the API server for a dry run only")
        parser.add_argument(
            "--resource-version",
            help="refuse unless the ConfigMap is still at this resourceVersion (the one you looked at)",
        )
        parser.add_argument(
            "--roll-out", action="store_true", help="then roll out the workloads that read it only at start"
        )

    def handle(self, *args: object, **options: object) -> None:
        kind, _, name = str(options["object"]).partition("/")
        if kind.lower() in ("secret", "secrets"):
            raise CommandError("Secrets cannot be restored: Driftwatch never stores their values, only hashes.")
        if kind.lower() not in ("configmap", "configmaps", "cm") or not name:
            raise CommandError(f"give the object as configmap/NAME (got {str(options['object'])[:80]!r})")
        namespace = str(options["namespace"])
        try:
            kube.validate_namespace(namespace)
            kube.validate_name(name)
        except kube.InvalidName as error:
            raise CommandError(str(error)) from None
        actor = str(options["actor"]).strip()
        if not actor:
            raise CommandError("--actor must name who asks for the restore")
        cluster = _cluster(options["cluster"])
        entries = history(cluster, namespace, SourceKind.CONFIG_MAP, name)
        number = int(str(options["version"]))
        if not 1 <= number <= len(entries):
            raise CommandError(
                f"ConfigMap {namespace}/{name} has {len(entries)} stored versions; there is no #{number}"
                if entries
                else f"no stored ConfigMap {namespace}/{name} in cluster {cluster.name}"
            )
        version = entries[number - 1].version
        try:
            shown = preview(version)
            for diff in shown.diffs:
                if diff.status != "unchanged":
                    self.stdout.write(f"{diff.status}: {diff.key}")
            if not shown.changes:
                self.stdout.write("the live content already equals this version")
            expected = str(options["resource_version"] or shown.live_resource_version)
            done = restore(
                version, actor, expected, dry_run=bool(options["dry_run"]), roll_out=bool(options["roll_out"])
            )
        except RestoreRefused as error:
            raise CommandError(f"restore refused: {error}") from None
        if done.dry_run:
            self.stdout.write(f"dry run: the API server accepts restoring ConfigMap {namespace}/{name} to #{number}")
            return
        self.stdout.write(
            f"ConfigMap {namespace}/{name} restored to #{number} (resourceVersion {done.resource_version})"
        )
        for rollout in done.rollouts:
            self.stdout.write(f"rollout {rollout.kind}/{rollout.name}: {rollout.get_status_display().lower()}")
