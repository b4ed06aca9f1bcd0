from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("drift", "0020_pod_restarted_at")]

    operations = [
        migrations.AddField(
            model_name="cluster",
            name="api_server",
            field=models.CharField(blank=True, max_length=300),
        ),
    ]
