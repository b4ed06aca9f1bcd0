"""A stored workload summary's pods per verdict also as integer columns (`WorkloadVerdicts.stale_pods` ...), filled
from its `pods` JSON for the rows stored before; and an index for the latest summary of each cluster."""

from django.db import migrations, models

VERDICTS = ("stale", "missing", "unreloaded", "propagating", "unknown", "fresh")

# Every stored row gets the counts its JSON holds (0 where a verdict is absent), so the columns equal `pods` from
# the start, before any writer touches the row again.
FILL = """
UPDATE drift_workloadverdicts SET
    stale_pods = COALESCE((pods ->> 'stale')::integer, 0),
    missing_pods = COALESCE((pods ->> 'missing')::integer, 0),
    unreloaded_pods = COALESCE((pods ->> 'unreloaded')::integer, 0),
    propagating_pods = COALESCE((pods ->> 'propagating')::integer, 0),
    unknown_pods = COALESCE((pods ->> 'unknown')::integer, 0),
    fresh_pods = COALESCE((pods ->> 'fresh')::integer, 0)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("drift", "0031_watchcost"),
    ]

    operations = [
        *(
            migrations.AddField(
                model_name="workloadverdicts",
                name=f"{verdict}_pods",
                field=models.PositiveIntegerField(default=0),
            )
            for verdict in VERDICTS
        ),
        migrations.RunSQL(FILL, reverse_sql=migrations.RunSQL.noop),
        migrations.AddIndex(
            model_name="workloadverdicts",
            index=models.Index(fields=["cluster", "judged_at"], name="drift_workl_cluster_26f359_idx"),
        ),
    ]
