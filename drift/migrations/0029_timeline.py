"""How container runs ended (ContainerInstance), Reloader's mark on a pod, the verdict changes the timeline lists
(VerdictChange: append-only in the database too, a trigger refuses UPDATE; DELETE stays, for the cascades of a
pod or cluster removed), and the indexes the timeline reads by."""

import django.db.models.deletion
from django.db import migrations, models

APPEND_ONLY = """
CREATE FUNCTION drift_verdictchange_refuse_update() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'verdict changes are append-only: UPDATE on drift_verdictchange is refused'
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER drift_verdictchange_append_only
    BEFORE UPDATE ON drift_verdictchange
    FOR EACH ROW EXECUTE FUNCTION drift_verdictchange_refuse_update();
"""

NOT_APPEND_ONLY = """
DROP TRIGGER IF EXISTS drift_verdictchange_append_only ON drift_verdictchange;
DROP FUNCTION IF EXISTS drift_verdictchange_refuse_update();
"""


class Migration(migrations.Migration):
    dependencies = [("drift", "0028_audit_action_labels")]

    operations = [
        migrations.AddField(
            model_name="containerinstance",
            name="termination_reason",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name="containerinstance",
            name="exit_code",
            field=models.IntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="containerinstance",
            name="finished_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="containerinstance",
            name="restart_count",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="containerinstance",
            name="waiting_reason",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.CreateModel(
            name="VerdictChange",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("namespace", models.CharField(max_length=253)),
                ("old_verdict", models.CharField(blank=True, max_length=16)),
                ("new_verdict", models.CharField(blank=True, max_length=16)),
                ("at", models.DateTimeField()),
                (
                    "cluster",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="drift.cluster",
                    ),
                ),
                (
                    "consumption",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="drift.consumption"
                    ),
                ),
                (
                    "pod",
                    models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="drift.pod"),
                ),
                (
                    "workload",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="drift.workload",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["cluster", "namespace", "at"], name="verdictchange_namespace_at"),
                    models.Index(fields=["workload", "at"], name="verdictchange_workload_at"),
                ],
            },
        ),
        migrations.AddIndex(
            model_name="pod",
            index=models.Index(fields=["cluster", "namespace", "started_at"], name="pod_started_in_namespace"),
        ),
        migrations.AddIndex(
            model_name="pod",
            index=models.Index(
                condition=models.Q(deleted_at__isnull=False),
                fields=["cluster", "namespace", "deleted_at"],
                name="pod_ended_in_namespace",
            ),
        ),
        migrations.AddIndex(
            model_name="pod",
            index=models.Index(
                condition=models.Q(restarted_at__isnull=False),
                fields=["cluster", "namespace", "restarted_at"],
                name="pod_restarted_in_namespace",
            ),
        ),
        migrations.AddIndex(
            model_name="containerinstance",
            index=models.Index(
                condition=models.Q(finished_at__isnull=False), fields=["pod", "finished_at"], name="container_finished"
            ),
        ),
        migrations.AddField(
            model_name="pod",
            name="reloaded_by",
            field=models.CharField(blank=True, max_length=256),
        ),
        migrations.RunSQL(APPEND_ONLY, NOT_APPEND_ONLY),
    ]
