"""Audit events told apart by a digest of the whole event, not by the client's Audit-ID; refusals counted per
hour (RefusedAttempt). Events stored before have no digest: each gets one from its own (then unique) auditID."""

import hashlib
from typing import Any

import django.utils.timezone
from django.db import migrations, models


def refuse_shared_tokens(apps: Any, schema_editor: Any) -> None:
    Cluster = apps.get_model("drift", "Cluster")
    seen: dict[str, str] = {}
    for name, digest in Cluster.objects.exclude(audit_token_hash="").values_list("name", "audit_token_hash"):
        if digest in seen:
            raise RuntimeError(
                f"clusters {seen[digest]} and {name} share one audit webhook token: give each its own "
                "(manage.py cluster set-audit-token NAME --generate), then migrate again"
            )
        seen[digest] = name


def digest_stored_events(apps: Any, schema_editor: Any) -> None:
    KubeAuditEvent = apps.get_model("drift", "KubeAuditEvent")
    for pk, audit_id in KubeAuditEvent.objects.values_list("pk", "audit_id").iterator():
        digest = hashlib.sha256(f"stored before 0017: {audit_id}".encode()).hexdigest()
        KubeAuditEvent.objects.filter(pk=pk).update(digest=digest)


class Migration(migrations.Migration):
    dependencies = [
        ("drift", "0018_process_reload"),
    ]

    operations = [
        migrations.RunPython(refuse_shared_tokens, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="cluster",
            constraint=models.UniqueConstraint(
                condition=models.Q(("audit_token_hash", ""), _negated=True),
                fields=("audit_token_hash",),
                name="cluster_audit_token_unique",
            ),
        ),
        migrations.CreateModel(
            name="RefusedAttempt",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("action", models.CharField(max_length=32)),
                ("key", models.CharField(blank=True, max_length=253)),
                ("hour", models.DateTimeField()),
                ("count", models.PositiveBigIntegerField(default=0)),
                ("last_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("last_message", models.CharField(blank=True, max_length=300)),
            ],
            options={
                "ordering": ["-hour", "action", "key"],
            },
        ),
        migrations.RemoveConstraint(
            model_name="kubeauditevent",
            name="kube_audit_unique_id",
        ),
        migrations.AddField(
            model_name="kubeauditevent",
            name="claimed_source_ips_count",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="kubeauditevent",
            name="digest",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(digest_stored_events, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="kubeauditevent",
            index=models.Index(fields=["cluster", "audit_id"], name="drift_kubea_cluster_70634a_idx"),
        ),
        migrations.AddIndex(
            model_name="kubeauditevent",
            index=models.Index(fields=["arrived_at"], name="drift_kubea_arrived_e9337f_idx"),
        ),
        migrations.AddConstraint(
            model_name="kubeauditevent",
            constraint=models.UniqueConstraint(fields=("cluster", "digest"), name="kube_audit_unique_digest"),
        ),
        migrations.AddIndex(
            model_name="refusedattempt",
            index=models.Index(fields=["hour"], name="drift_refus_hour_b0e430_idx"),
        ),
        migrations.AddConstraint(
            model_name="refusedattempt",
            constraint=models.UniqueConstraint(fields=("action", "key", "hour"), name="refused_attempt_unique_hour"),
        ),
    ]
