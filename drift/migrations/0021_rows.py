from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("drift", "0020_pod_restarted_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="pod",
            name="terminating_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="rollout",
            name="reason",
            field=models.CharField(blank=True, help_text="Why the operator asked for it (optional).", max_length=500),
        ),
    ]
