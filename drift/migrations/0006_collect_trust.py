"""Collection you can trust: per-cluster ignored ConfigMaps, and the id of the hash key behind every stored
hash (rows written before this migration were hashed with the key derived from SECRET_KEY)."""

from django.apps.registry import Apps
from django.conf import settings
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

import drift.ignoring


def record_the_key_of_existing_hashes(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    from drift.hashing import ValueHasher

    key_id = ValueHasher(settings.SECRET_KEY).key_id
    for model in ("SourceVersion", "Observation"):
        apps.get_model("drift", model).objects.filter(hash_key_id="").update(hash_key_id=key_id)


class Migration(migrations.Migration):
    dependencies = [
        ("drift", "0005_rollout_trust"),
    ]

    operations = [
        migrations.AddField(
            model_name="cluster",
            name="ignored_config_maps",
            field=models.JSONField(
                blank=True,
                default=drift.ignoring.default_ignored_config_maps,
                help_text="ConfigMaps that change on their own (leader election, status): not recorded. Name patterns with *, ? and [...], or NAMESPACE/NAME patterns; a JSON list.",
                validators=[drift.ignoring.validate_patterns],
            ),
        ),
        migrations.AddField(
            model_name="observation",
            name="hash_key_id",
            field=models.CharField(blank=True, max_length=16),
        ),
        migrations.AddField(
            model_name="sourceversion",
            name="hash_key_id",
            field=models.CharField(blank=True, max_length=16),
        ),
        migrations.RunPython(record_the_key_of_existing_hashes, migrations.RunPython.noop),
    ]
