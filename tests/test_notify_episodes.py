"""Notifications on the real stack: the seed's env-demo goes stale; the worker's snapshots judge the rule and a
webhook receiver on 127.0.0.1 gets one notice once the workload has been stale for the rule's minutes, none on the
next cycles, and a new one after a rollout made it fresh and an edit made it stale again. The notice is signed,
and its link opens the rollout confirmation for an operator, 403 for a viewer."""

import hashlib
import hmac
import json
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from drift.models import Channel, Notice, NotificationRule, SnapshotRun
from drift.notify.deliver import SIGNATURE_HEADER
from drift.notify.evaluate import evaluate_cluster
from drift.tasks import send_notice, snapshot_cluster
from drift.verdicts import workload_summaries
from tests.facts import user
from tests.kube_helpers import wait_until
from tests.receiver import receiver
from tests.test_metrics import env_demo  # noqa: F401 (fixture)
from tests.test_snapshot_seed import cluster, snapshot  # noqa: F401 (fixture)

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


def worker_cycle(cluster_pk: int) -> None:
    """One snapshot by the worker, as beat would ask; it then judges the notification rules."""
    before = SnapshotRun.objects.filter(cluster_id=cluster_pk).exclude(status="running").count()
    snapshot_cluster.delay(cluster_pk)
    wait_until(lambda: SnapshotRun.objects.filter(cluster_id=cluster_pk).exclude(status="running").count() > before,
               timeout=120, what="the worker's snapshot")  # fmt: skip


def test_one_notice_per_stale_episode(cluster, env_demo, celery_worker_process, settings, plain_http):  # noqa: F811
    namespace = env_demo.namespace
    with receiver() as hook:
        channel = Channel.objects.create(name="team", kind="json", url=hook.url, signing_key="k" * 32)
        NotificationRule.objects.create(name="stale-1m", channel=channel, for_minutes=1, namespace=namespace)
        snapshot()
        env_demo.edit_config_map("env-config", {"log_level": "DEBUG"})
        snapshot()
        [summary] = [each for each in workload_summaries(cluster, namespace=namespace) if each.name == "env-demo"]
        assert summary.stale_pod_count == 2
        due = summary.stale_since + timedelta(minutes=1)

        # Snapshots every few seconds, as beat would run them, until the notice arrives.
        deadline = time.monotonic() + 240
        while not hook.requests and time.monotonic() < deadline:
            worker_cycle(cluster.pk)
            hook.wait_for(1, timeout=3)
        [first] = hook.wait_for(1, timeout=30)
        delay = first.at - due.timestamp()
        print(f"notice arrived {delay:.1f} s after the workload had been stale for the rule's 1 minute")
        assert delay >= 0, "sent before the workload had been stale for the rule's duration"

        worker_cycle(cluster.pk)
        worker_cycle(cluster.pk)
        time.sleep(3)
        assert len(hook.requests) == 1, "no duplicate on the next cycles"

        expected = "sha256=" + hmac.new(b"k" * 32, first.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(first.headers[SIGNATURE_HEADER], expected)
        payload = json.loads(first.body)
        assert payload["workload"] == {"kind": "Deployment", "name": "env-demo"}
        assert payload["stale_pods"] == 2 and "env-config" in payload["reason"]
        link = urlsplit(payload["link"]).path

        operator, viewer = Client(), Client()
        operator.force_login(user("olga", "operator", [f"local/{namespace}"]))
        viewer.force_login(user("vera", "viewer"))
        page = operator.get(link)
        assert page.status_code == 200
        assert b"Confirm rollout" in page.content and b"env-demo" in page.content
        assert viewer.get(link).status_code == 403

        env_demo.patch_template_annotation("env-demo", "driftwatch.io/config-hash", "after-edit")
        wait_until(lambda: len(env_demo.replica_sets("env-demo")) == 2, what="env-demo rolled")
        env_demo.wait_deployment_ready("env-demo")
        wait_until(lambda: len(env_demo.pods("env-demo")) == len(env_demo.ready_pods("env-demo")), what="settled")
        for pod in env_demo.ready_pods("env-demo"):
            env_demo.wait_exec_ready(pod.metadata.name)
        snapshot()
        assert evaluate_cluster(cluster) == []
        assert Notice.objects.get().closed_at is not None, "fresh again: the episode ended"

        env_demo.edit_config_map("env-config", {"log_level": "TRACE"})
        snapshot()
        later = timezone.now() + timedelta(minutes=1, seconds=5)
        [second_notice] = evaluate_cluster(cluster, now=later)
        send_notice.delay(second_notice)
        hook.wait_for(2)
        assert len(hook.requests) == 2, "a new episode notifies again"
        assert Notice.objects.count() == 2
