from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_save


class DriftConfig(AppConfig):
    name = "drift"
    verbose_name = "Drift"

    def ready(self) -> None:
        from drift.rollout.signals import rollout_completed

        rollout_completed.connect(snapshot_after_rollout, dispatch_uid="drift.snapshot_after_rollout")
        post_save.connect(forget_judgement, sender="drift.Cluster", dispatch_uid="drift.forget_judgement")


def snapshot_after_rollout(sender: Any, rollout: Any, **kwargs: Any) -> None:
    """A completed rollout's new pods get judged by a snapshot soon, not at the next interval."""
    from drift.tasks import snapshot_cluster  # tasks import the rollout package; this stays out of it

    snapshot_cluster.delay(rollout.cluster_id)


def forget_judgement(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A cluster's settings (its propagation window) changed: its stored verdicts no longer hold. Pages judge it
    afresh until the next snapshot stores them again."""
    from drift.models import ClusterVerdicts

    ClusterVerdicts.objects.filter(cluster_id=instance.pk).delete()
