from typing import Any

from django.apps import AppConfig


class DriftConfig(AppConfig):
    name = "drift"
    verbose_name = "Drift"

    def ready(self) -> None:
        from drift.rollout.signals import rollout_completed

        rollout_completed.connect(snapshot_after_rollout, dispatch_uid="drift.snapshot_after_rollout")


def snapshot_after_rollout(sender: Any, rollout: Any, **kwargs: Any) -> None:
    """A completed rollout's new pods get judged by a snapshot soon, not at the next interval."""
    from drift.tasks import snapshot_cluster  # tasks import the rollout package; this stays out of it

    snapshot_cluster.delay(rollout.cluster_id)
