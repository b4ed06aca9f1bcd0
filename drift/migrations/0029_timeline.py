from django.db import migrations, models


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
    ]
