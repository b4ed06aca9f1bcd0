from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("drift", "0016_observation_last_read")]

    operations = [
        migrations.AddField(
            model_name="ssoidentity",
            name="access_withdrawn_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
