"""What did this change do (drift.blast), on stored facts: the pods that took each version up and when, those
that restarted or crashed within N minutes of it, and the rollouts that followed it; in a bounded number of
queries whatever the number of pods."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from drift.blast import blast_radii, blast_radius, trouble_window
from drift.models import ContainerInstance, Observation, Pod, Rollout
from drift.vocabulary import PickUp, Trouble
from tests.facts import Facts, value_hash

pytestmark = pytest.mark.django_db


@pytest.fixture
def incident():
    """app-config #1 (60 min ago), #2 (30), #3 (20, bad). old-a started before #2; new-b took #2 up at its start;
    crash-c started on #3 and its container was started again 5 minutes later; files-d reads a volume since
    before #2 and a probe saw #3's content in it; a Driftwatch rollout after #2, a kubectl restart after #3."""
    facts = Facts.for_cluster()
    facts.source("app-config", (60, {"mode": "one"}), (30, {"mode": "two"}), (20, {"mode": "bad"}))
    facts.old = facts.pod("env-demo", "old-a", [{"source_name": "app-config"}], started_minutes_ago=50)
    facts.new = facts.pod("env-demo", "new-b", [{"source_name": "app-config"}], started_minutes_ago=25)
    facts.crash = facts.pod("env-demo", "crash-c", [{"source_name": "app-config"}], started_minutes_ago=15)
    first = facts.crash.containers.get()
    ContainerInstance.objects.filter(pk=first.pk).update(running=False)
    ContainerInstance.objects.create(
        pod=facts.crash, name="app", container_id="restarted", started_at=facts.at(10), first_seen=facts.at(10)
    )
    facts.files = facts.pod(
        "files-demo", "files-d", [{"source_name": "app-config", "mode": "volume", "mount_path": "/etc/app"}],
        started_minutes_ago=50,
    )  # fmt: skip
    volume = facts.files.containers.get().consumptions.get()
    Observation.objects.create(
        consumption=volume, observed_at=facts.at(29), ok=True, key_hashes={"mode": value_hash("one")}
    )
    Observation.objects.create(
        consumption=volume, observed_at=facts.at(18), ok=True, key_hashes={"mode": value_hash("bad")},
        volume_written_at=facts.at(19),
    )  # fmt: skip
    Rollout.objects.create(
        cluster=facts.cluster, kind="Deployment", namespace="demo", name="env-demo", requested_by="olga",
        requested_at=facts.at(27), status="complete", annotation_key="driftwatch.io/config-hash",
    )  # fmt: skip
    Rollout.objects.create(
        cluster=facts.cluster, kind="Deployment", namespace="demo", name="env-demo", requested_by="olga",
        requested_at=facts.at(26), status="refused", annotation_key="driftwatch.io/config-hash",
    )  # fmt: skip
    Pod.objects.filter(pk=facts.crash.pk).update(restarted_at=facts.at(17))
    return facts


def radius(facts, number, minutes=10):
    return blast_radius(facts.cluster, "demo", "ConfigMap", "app-config", number, timedelta(minutes=minutes))


def test_each_version_names_the_pods_that_took_it_up_and_when(incident):
    first, second, third = (radius(incident, number) for number in (1, 2, 3))

    # #1 was current when old-a and files-d started.
    assert [(pod.pod, pod.at) for pod in first.pods] == [("files-d", incident.at(50)), ("old-a", incident.at(50))]
    assert [(pod.pod_uid, pod.at, pod.containers[0].how) for pod in second.pods] == [
        (incident.new.uid, incident.at(25), PickUp.STARTED_WITH)
    ]
    assert second.version.number == 2 and second.until == incident.at(20)
    # #3: files-d's volume read it at the kubelet's write time; crash-c started with it.
    assert [(pod.pod, pod.at, pod.containers[0].how) for pod in third.pods] == [
        ("files-d", incident.at(19), PickUp.ON_DISK),
        ("crash-c", incident.at(15), PickUp.STARTED_WITH),
    ]
    assert third.until is None


def test_the_bad_version_names_the_pod_that_restarted_within_the_window(incident):
    third = radius(incident, 3)

    assert [pod.pod_uid for pod in third.troubled] == [incident.crash.uid]
    [seen] = third.troubled[0].troubles
    assert (seen.at, seen.what) == (incident.at(10), Trouble.RESTARTED)
    assert radius(incident, 2).troubled == []
    # Five minutes after it took #3 up: outside a two-minute window.
    assert radius(incident, 3, minutes=2).troubled == []


def test_the_rollouts_that_followed_each_version(incident):
    second, third = radius(incident, 2), radius(incident, 3)

    # The refused one sent nothing: only the rollout that did something, between #2 and #3.
    assert [(str(each.workload), each.at, each.by) for each in second.rollouts] == [
        ("Deployment/env-demo", incident.at(27), "olga")
    ]
    assert [(str(each.workload), each.at, each.what) for each in third.rollouts] == [
        ("Deployment/env-demo", incident.at(17), "kubectl rollout restart")
    ]
    assert radius(incident, 1).rollouts == []


def test_an_unknown_number_is_none(incident):
    assert radius(incident, 4) is None
    assert blast_radius(incident.cluster, "other", "ConfigMap", "app-config", 1) is None


def test_the_queries_do_not_grow_with_the_pods(incident):
    with CaptureQueriesContext(connection) as few:
        radius(incident, 3)
    for number in range(30):
        incident.pod("env-demo", f"more-{number}", [{"source_name": "app-config"}], started_minutes_ago=12)
    with CaptureQueriesContext(connection) as many:
        assert len(radius(incident, 3).pods) == 32
    assert len(many.captured_queries) == len(few.captured_queries) <= 8


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, (10, "")),
        ("", (10, "")),
        ("30", (30, "")),
        ("1440", (1440, "")),
        ("0", (10, "within must be a whole number of minutes from 1 to 1440; showing 10")),
        ("1441", (10, "within must be a whole number of minutes from 1 to 1440; showing 10")),
        ("-5", (10, "within must be a whole number of minutes from 1 to 1440; showing 10")),
        ("9" * 400, (10, "within must be a whole number of minutes from 1 to 1440; showing 10")),
        ("²", (10, "within must be a whole number of minutes from 1 to 1440; showing 10")),
    ],
)
def test_the_window_from_the_url_is_bounded(value, expected):
    assert trouble_window(value) == expected


def test_a_crash_is_named_with_how_the_run_ended(incident):
    """crash-c's first run ended with exit code 3 (Error) a minute after it took #3 up, and its next run waits
    in CrashLoopBackOff, as the pod status recorded them (drift.models.ContainerInstance's termination fields)."""
    first, second = ContainerInstance.objects.filter(pod=incident.crash).order_by("started_at")
    ContainerInstance.objects.filter(pk=first.pk).update(
        termination_reason="Error", exit_code=3, finished_at=incident.at(14)
    )
    ContainerInstance.objects.filter(pk=second.pk).update(waiting_reason="CrashLoopBackOff", restart_count=1)

    [troubled] = radius(incident, 3).troubled

    assert [(seen.at, seen.what, seen.reason) for seen in troubled.troubles] == [
        (incident.at(14), Trouble.CRASHED, "Error, exit code 3"),
        (incident.at(10), Trouble.CRASHED, "CrashLoopBackOff"),
        (incident.at(10), Trouble.RESTARTED, "Error, exit code 3"),
    ]


def test_several_versions_at_once_say_what_each_alone_says_in_the_same_queries(incident):
    with CaptureQueriesContext(connection) as one:
        radius(incident, 3)
    with CaptureQueriesContext(connection) as three:
        together = blast_radii(incident.cluster, "demo", "ConfigMap", "app-config", [1, 2, 3, 9], timedelta(minutes=10))
    assert sorted(together) == [1, 2, 3]
    for number in (1, 2, 3):
        alone = radius(incident, number)
        assert together[number].as_json() == alone.as_json()
        assert [pod.troubles for pod in together[number].pods] == [pod.troubles for pod in alone.pods]
    assert len(three.captured_queries) == len(one.captured_queries)


@pytest.mark.parametrize("read_minutes_ago, taken_up", [(95, True), (30, False)])
def test_a_volume_read_counts_only_within_an_hour_of_the_version(read_minutes_ago, taken_up):
    """#2 appeared 100 minutes ago; a read of its content 5 minutes later says the volume took it up, one 70
    minutes later is past what is read (a long-lived version's every probe is not)."""
    facts = Facts.for_cluster()
    facts.source("app-config", (120, {"mode": "one"}), (100, {"mode": "two"}))
    files = facts.pod("files", "files-a", [{"source_name": "app-config", "mode": "volume"}], started_minutes_ago=110)
    Observation.objects.create(
        consumption=files.containers.get().consumptions.get(), observed_at=facts.at(read_minutes_ago), ok=True,
        key_hashes={"mode": value_hash("two")},
    )  # fmt: skip
    found = blast_radius(facts.cluster, "demo", "ConfigMap", "app-config", 2)
    assert [pod.pod for pod in found.pods] == (["files-a"] if taken_up else [])
