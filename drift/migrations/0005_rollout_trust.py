"""Rollouts recorded before the patch (status `patching`), stuck and cancelled rollouts, a per-cluster rollout
deadline, and operator scopes that name the cluster.

Existing memberships are converted so that nobody gains or loses a right: a bare namespace `demo` allowed
`demo` in every cluster, so it becomes `*/demo`; an operator's empty list allowed everything, so it becomes
`*/*` (said explicitly; from now on an empty list allows nothing). Viewers keep no scope."""

from typing import Any

import django.core.validators
from django.db import migrations, models


def scopes_naming_the_cluster(apps: Any, schema_editor: Any) -> None:
    Membership = apps.get_model("drift", "Membership")
    for membership in Membership.objects.all():
        old = [str(item) for item in membership.namespaces or []]
        if membership.role == "operator" and not old:
            new = ["*/*"]
        else:
            new = [item if "/" in item else f"*/{item}" for item in old]
        if new != membership.namespaces:
            membership.namespaces = new
            membership.save(update_fields=["namespaces"])


def bare_namespaces_again(apps: Any, schema_editor: Any) -> None:
    Membership = apps.get_model("drift", "Membership")
    for membership in Membership.objects.all():
        old = list(membership.namespaces or [])
        new = [] if old == ["*/*"] else [item.removeprefix("*/") for item in old]
        if new != old:
            membership.namespaces = new
            membership.save(update_fields=["namespaces"])


class Migration(migrations.Migration):
    # Named by the coordinator's plan; it follows the latest migration of this branch.
    dependencies = [("drift", "0004_cluster_file_probes")]

    operations = [
        migrations.AddField(
            model_name="cluster",
            name="rollout_deadline_seconds",
            field=models.PositiveIntegerField(
                default=1800,
                help_text="A rollout still in progress this long after its patch is marked stuck and stops blocking "
                "its batch (StatefulSets and DaemonSets have no progress deadline of their own). At most one week.",
                validators=[
                    django.core.validators.MinValueValidator(1),
                    django.core.validators.MaxValueValidator(604800),
                ],
            ),
        ),
        migrations.AddConstraint(
            model_name="cluster",
            constraint=models.CheckConstraint(
                condition=models.Q(rollout_deadline_seconds__gte=1, rollout_deadline_seconds__lte=604800),
                name="cluster_rollout_deadline_range",
            ),
        ),
        migrations.AddField(
            model_name="rollout",
            name="patched_at",
            field=models.DateTimeField(blank=True, help_text="When the patch was sent.", null=True),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(
                choices=[
                    ("config.changed", "Config Changed"),
                    ("config.created", "Config Created"),
                    ("config.deleted", "Config Deleted"),
                    ("rollout.requested", "Rollout Requested"),
                    ("rollout.completed", "Rollout Completed"),
                    ("rollout.failed", "Rollout Failed"),
                    ("rollout.refused", "Rollout Refused"),
                    ("rollout.noop", "Rollout Noop"),
                    ("rollout.dry_run", "Rollout Dry Run"),
                    ("rollout.cancelled", "Rollout Cancelled"),
                    ("cluster.added", "Cluster Added"),
                    ("cluster.removed", "Cluster Removed"),
                    ("snapshot.failed", "Snapshot Failed"),
                    ("user.login", "Login"),
                    ("user.login_failed", "Login Failed"),
                    ("access.denied", "Access Denied"),
                ],
                db_index=True,
                max_length=32,
            ),
        ),
        migrations.AlterField(
            model_name="membership",
            name="namespaces",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Operator scopes, each CLUSTER/NAMESPACE, CLUSTER/* or */* (e.g. local/demo). Empty: nowhere.",
            ),
        ),
        migrations.AlterField(
            model_name="rollout",
            name="status",
            field=models.CharField(
                choices=[
                    ("in_progress", "in progress"),
                    ("complete", "Complete"),
                    ("failed", "Failed"),
                    ("paused", "Paused"),
                    ("noop", "no change needed"),
                    ("refused", "Refused"),
                    ("dry_run", "dry run"),
                    ("queued", "Queued"),
                    ("patching", "Patching"),
                    ("stuck", "Stuck"),
                    ("cancelled", "Cancelled"),
                ],
                max_length=16,
            ),
        ),
        migrations.RunPython(scopes_naming_the_cluster, bare_namespaces_again),
    ]
