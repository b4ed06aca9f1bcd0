"""`manage.py history --cluster C -n NS configmap/NAME [--json]`: every version, oldest first, with who wrote it."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from drift.history import history
from drift.models import Cluster
from drift.vocabulary import SourceKind

KINDS = {"configmap": SourceKind.CONFIG_MAP, "configmaps": SourceKind.CONFIG_MAP, "cm": SourceKind.CONFIG_MAP,
         "secret": SourceKind.SECRET, "secrets": SourceKind.SECRET}  # fmt: skip


class Command(BaseCommand):
    help = "Print every version of a ConfigMap or Secret, oldest first, with when and by whom it changed."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--cluster", required=True)
        parser.add_argument("-n", "--namespace", required=True)
        parser.add_argument("object", help="configmap/NAME or secret/NAME")
        parser.add_argument("--json", action="store_true", help="one JSON array of objects")

    def handle(self, *args: object, **options: Any) -> None:
        kind_name, slash, name = str(options["object"]).partition("/")
        if not slash or kind_name.lower() not in KINDS or not name:
            raise CommandError("name the object as configmap/NAME or secret/NAME")
        cluster = Cluster.objects.filter(name=options["cluster"]).first()
        if cluster is None:
            raise CommandError(f"no cluster named {options['cluster']!r}")
        entries = history(cluster, options["namespace"], KINDS[kind_name.lower()], name)
        if options["json"]:
            self.stdout.write(json.dumps([entry.as_json() for entry in entries], indent=2))
            return
        if not entries:
            raise CommandError(f"no version of {kind_name}/{name} in {options['namespace']} recorded in {cluster.name}")
        for entry in entries:
            keys = "; ".join(f"{what}: {', '.join(names)}" for what, names in entry.changed_keys.items() if names)
            self.stdout.write(
                f"#{entry.number} rv {entry.version.resource_version} changed {entry.changed_at:%Y-%m-%d %H:%M:%S} "
                f"by {entry.author}" + (f" ({keys})" if keys else "")
            )
