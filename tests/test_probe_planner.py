"""What the watcher's probe planner plans after an event: a pod's new containers, a source's consumers, or (a
relist) the whole cluster. A ConfigMap edit used to plan the whole cluster: every running consumption's last read
was looked up again, for every edit, in every registration."""

from __future__ import annotations

import threading

import pytest

from drift.snapshot.podwatch import ClusterState, ProbePlanner
from tests.facts import Facts

pytestmark = pytest.mark.django_db


def test_an_edit_plans_the_pods_that_consume_the_source_and_nothing_else():
    facts = Facts.for_cluster()
    volume = {"source_name": "app", "mode": "volume", "mount_path": "/etc/app"}
    reader = facts.pod("web", "web-1", [volume])
    env_reader = facts.pod("api", "api-1", [{"source_name": "app"}])
    facts.pod("other", "other-1", [{"source_name": "unrelated"}])
    facts.pod("shop", "shop-1", [volume], namespace="shop")  # the same name in another namespace
    planner = ProbePlanner(facts.cluster.pk, threading.Event(), ClusterState())

    planner.wake_for_source("demo", "ConfigMap", "app")
    assert planner.take_pending(whole=False) == {reader.pk, env_reader.pk}
    assert planner.take_pending(whole=False) == set(), "nothing left once taken"

    planner.wake_for_source("demo", "Secret", "app")  # no Secret of that name is read
    assert planner.take_pending(whole=False) == set()


def test_a_relist_or_a_recheck_still_plans_the_whole_cluster():
    facts = Facts.for_cluster()
    new_pod = facts.pod("web", "web-1", [{"source_name": "app"}])
    planner = ProbePlanner(facts.cluster.pk, threading.Event(), ClusterState())

    planner.wake(new_pod.pk)
    planner.wake_for_source("demo", "ConfigMap", "app")
    assert planner.take_pending(whole=False) == {new_pod.pk}

    planner.wake(new_pod.pk)
    planner.wake()  # a relist
    assert planner.take_pending(whole=False) is None
    planner.wake_for_source("demo", "ConfigMap", "app")
    assert planner.take_pending(whole=True) is None, "a recheck that came due"
    assert planner.take_pending(whole=False) == set()
