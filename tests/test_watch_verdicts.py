"""The watcher keeps the stored verdicts current: a version it records re-judges the workloads that read the
source at once, so the overview, /metrics and notifications need not wait for the next snapshot."""

from __future__ import annotations

import pytest

from drift import verdicts
from tests.kube_helpers import wait_until
from tests.test_metrics import env_demo  # noqa: F401 (fixture)
from tests.test_snapshot_seed import cluster, snapshot  # noqa: F401 (fixture)
from tests.test_watch import watching

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


def test_a_version_the_watcher_records_turns_the_stored_verdicts_stale_before_the_next_snapshot(cluster, env_demo):  # noqa: F811
    def env_demo_pods(verdict: str) -> int:
        [summary] = [
            each
            for each in verdicts.workload_summaries(cluster, namespace=env_demo.namespace)
            if each.name == "env-demo"
        ]
        return summary.pods[verdict]

    snapshot()
    replicas = len(env_demo.ready_pods("env-demo"))
    assert env_demo_pods("fresh") == replicas
    with watching(cluster) as watcher:
        wait_until(lambda: watcher.counts.get("watches"), timeout=60, what="the watch")
        env_demo.edit_config_map("env-config", {"log_level": "DEBUG"})
        # No snapshot runs here: only the watcher's version can make the stored verdicts say so.
        wait_until(lambda: env_demo_pods("stale") == replicas, timeout=30, interval=0.1, what="stale pods")
