"""One resume point per watched resource: the positions `WatchPosition` kept for a restarted watcher move into the
cluster's lease row (`ClusterLease.resume_from`, which a takeover already resumed from), the newer of the two
where both hold one; then the table goes."""

from typing import Any

from django.db import migrations

# The label of each source kind's cluster-wide watch, the key of its resume point (drift.snapshot.watch).
LABELS = {"ConfigMap": "configmaps", "Secret": "secrets"}


def _newer(first: str, second: str) -> str:
    if first.isdigit() and second.isdigit():
        return first if int(first) >= int(second) else second
    return first or second


def positions_into_leases(apps: Any, schema_editor: Any) -> None:
    WatchPosition = apps.get_model("drift", "WatchPosition")
    ClusterLease = apps.get_model("drift", "ClusterLease")
    for position in WatchPosition.objects.all():
        label = LABELS.get(position.kind)
        if label is None or not position.resource_version:
            continue
        lease, _ = ClusterLease.objects.get_or_create(cluster_id=position.cluster_id)
        kept = dict(lease.resume_from or {})
        kept[label] = _newer(str(kept.get(label, "")), position.resource_version)
        lease.resume_from = kept
        lease.save(update_fields=["resume_from"])


def leases_into_positions(apps: Any, schema_editor: Any) -> None:
    WatchPosition = apps.get_model("drift", "WatchPosition")
    ClusterLease = apps.get_model("drift", "ClusterLease")
    for lease in ClusterLease.objects.all():
        for kind, label in LABELS.items():
            resource_version = (lease.resume_from or {}).get(label)
            if resource_version:
                WatchPosition.objects.update_or_create(
                    cluster_id=lease.cluster_id, kind=kind, defaults={"resource_version": resource_version}
                )


class Migration(migrations.Migration):
    dependencies = [
        ("drift", "0030_cronjob"),
    ]

    operations = [
        migrations.RunPython(positions_into_leases, leases_into_positions),
        migrations.DeleteModel(name="WatchPosition"),
    ]
