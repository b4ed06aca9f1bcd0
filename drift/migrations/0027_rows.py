# Pod.terminating_since, which this change also needed, came with 0025_podwatch.
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("drift", "0026_evict"),
    ]

    operations = [
        migrations.AddField(
            model_name="rollout",
            name="reason",
            field=models.CharField(blank=True, help_text="Why the operator asked for it (optional).", max_length=500),
        ),
    ]
