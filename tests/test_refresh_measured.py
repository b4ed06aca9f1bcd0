"""Measured refresh delays read back from recorded observations, the window they narrow for the verdicts, the
overview line that shows them, and the backoff with which a failed probe is planned again (Postgres only)."""

from datetime import timedelta

import pytest
from django.urls import reverse

from drift.models import Consumption, Observation
from drift.snapshot.listing import Listing
from drift.snapshot.probing import plan_probes
from drift.verdicts import drift_rows, measured
from tests.facts import Facts, user, value_hash

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]

DELAYS = (20, 31, 38, 40, 45, 44)  # seconds after the change at minute 10: one per pod


def volume(name: str) -> dict:
    return {"source_name": name, "mode": "volume", "mount_path": "/etc/config"}


@pytest.fixture
def facts():
    facts = Facts.for_cluster()
    facts.cluster.propagation_window_seconds = 600
    facts.cluster.save()
    return facts


@pytest.fixture
def refreshed(facts):
    """Six pods of `app` saw cfg-a (changed 10 minutes ago) refreshed 20-45 s after the change, each read by
    three cycles; one pod started after the change (its volume was set up, not refreshed)."""
    facts.source("cfg-a", (90, {"level": "INFO"}), (10, {"level": "DEBUG"}))
    changed = facts.at(10)
    for index, delay in enumerate(DELAYS):
        pod = facts.pod("app", f"app-{index}", [volume("cfg-a")], started_minutes_ago=30)
        consumption = Consumption.objects.get(container__pod=pod)
        for cycle in range(3):
            Observation.objects.create(
                consumption=consumption, observed_at=facts.at(9 - cycle), ok=True,
                key_hashes={"level": value_hash("DEBUG")}, volume_written_at=changed + timedelta(seconds=delay),
            )  # fmt: skip
    late = facts.pod("app", "app-new", [volume("cfg-a")], started_minutes_ago=5)
    Observation.objects.create(
        consumption=Consumption.objects.get(container__pod=late), observed_at=facts.at(4), ok=True,
        key_hashes={"level": value_hash("DEBUG")}, volume_written_at=facts.at(5),
    )  # fmt: skip
    return facts


def test_refresh_delays_count_each_pods_refresh_once_and_skip_set_ups(refreshed):
    delays = measured.refresh_delays(refreshed.cluster, refreshed.now)
    assert sorted(delays.seconds) == sorted(float(d) for d in DELAYS)
    assert delays.summary() == "volumes refreshed 20-45 s after a change (median 39 s, 6 seen)"


def test_refresh_delays_are_bounded_to_the_lookback(refreshed):
    later = refreshed.now + measured.LOOKBACK + timedelta(minutes=1)
    assert measured.refresh_delays(refreshed.cluster, later).count == 0


def test_a_volume_behind_longer_than_the_observed_delays_is_stale_not_propagating(refreshed):
    """cfg-b changed 100 s ago and a pod's volume still holds the old content: with the configured 600 s window
    it would be propagating; this cluster's kubelets refreshed within 45 s (window 45 x 1.5 + 30 = 97.5 s)."""
    facts = refreshed
    facts.source("cfg-b", (90, {"level": "INFO"}), (100 / 60, {"level": "DEBUG"}))
    pod = facts.pod("slow", "slow-a", [volume("cfg-b")], started_minutes_ago=30)
    Observation.objects.create(
        consumption=Consumption.objects.get(container__pod=pod), observed_at=facts.at(0.1), ok=True,
        key_hashes={"level": value_hash("INFO")}, volume_written_at=facts.at(80),
    )  # fmt: skip
    assert measured.propagation_window(facts.cluster, facts.now) == timedelta(seconds=97.5)
    [row] = [row for row in drift_rows(cluster=facts.cluster, now=facts.now) if row.pod == "slow-a"]
    assert (row.verdict, row.evidence) == ("stale", "observed")
    assert "beyond the 1m37s propagation window" in row.reason

    # Until five refreshes were seen, the configured window holds: propagating.
    Observation.objects.filter(consumption__container__pod__name__in=["app-0", "app-1"]).delete()
    [row] = [row for row in drift_rows(cluster=facts.cluster, now=facts.now) if row.pod == "slow-a"]
    assert (row.verdict, row.evidence) == ("propagating", "observed")


def test_the_overview_shows_the_measured_delays(refreshed, client):
    refreshed.run()
    client.force_login(user("vera", "viewer"))
    page = client.get(reverse("overview")).content.decode()
    assert "volumes refreshed 20-45 s after a change (median 39 s, 6 seen)" in page
    assert "a volume still behind 98 s after a change is stale" in page


def test_a_cluster_with_no_refresh_seen_says_nothing_of_it(facts, client):
    facts.run()
    client.force_login(user("vera", "viewer"))
    assert "volumes refreshed" not in client.get(reverse("overview")).content.decode()


def planned(facts) -> set[str]:
    tasks, _ = plan_probes(facts.cluster, Listing(), facts.now)
    return {task.pod for task in tasks}


@pytest.mark.parametrize(
    ("reasons_oldest_first", "seconds_ago", "retried"),
    [
        (["exec timed out after 10s"], 30, True),  # one failure: retried on the next cycle
        (["exec timed out after 10s"], 10, False),
        (["exec timed out after 10s"] * 2, 30, False),  # two in a row: wait two cycles
        (["exec timed out after 10s"] * 2, 60, True),
        (["exec timed out after 10s"] * 3, 90, False),
        (["exec timed out after 10s"] * 3, 120, True),
        ([None, "exec interrupted (ConnectionResetError)"], 30, True),  # a success breaks the streak
        (["exec timed out after 10s", None, "exec timed out after 10s"], 30, True),
        (["exec forbidden (create pods/exec in demo)"], 3600, False),  # permanent: never again for this run
        (["no shell in the container: exec could not start the probe's command"], 3600, False),
        ([None], 3600, False),  # read once: env is fixed for the container's life
    ],
)
def test_a_failed_env_probe_is_planned_again_with_backoff(facts, reasons_oldest_first, seconds_ago, retried):
    facts.source("env-config", (90, {"level": "INFO"}))
    pod = facts.pod("env-demo", "env-a", [{"source_name": "env-config"}])
    consumption = Consumption.objects.get(container__pod=pod)
    for age, reason in enumerate(reversed(reasons_oldest_first)):
        Observation.objects.create(
            consumption=consumption, observed_at=facts.now - timedelta(seconds=seconds_ago + 300 * age),
            ok=reason is None, reason=reason or "", key_hashes={"level": value_hash("INFO")} if reason is None else {},
        )  # fmt: skip
    assert planned(facts) == ({"env-a"} if retried else set())


def test_a_failed_volume_probe_is_planned_again_but_not_on_a_simulated_node(facts):
    facts.source("cfg", (90, {"level": "INFO"}))
    real = facts.pod("app", "real-a", [volume("cfg")])
    simulated = facts.pod("app", "kwok-a", [volume("cfg")])
    for pod, reason in ((real, "exec timed out after 10s"), (simulated, "no files on simulated node")):
        Observation.objects.create(
            consumption=Consumption.objects.get(container__pod=pod), observed_at=facts.now - timedelta(minutes=1),
            ok=False, reason=reason,
        )  # fmt: skip
    assert planned(facts) == {"real-a"}


@pytest.mark.parametrize(
    ("last_read", "probed"),
    [
        (None, True),  # never read
        (("before", True, "INFO"), True),  # read before the change: read again
        (("after", True, "INFO"), True),  # read after it, still the old content: the kubelet may be behind
        (("after", True, "DEBUG"), False),  # read after it, the new content: settled
        (("after", False, "file probes disabled for this cluster"), False),  # a lasting failure after it: settled
        (("before", False, "file probes disabled for this cluster"), True),  # one from before the change
        (("after", False, "exec timed out after 10s"), True),  # a passing failure, due for its retry
    ],
)
def test_right_after_a_change_a_volume_is_probed_only_while_its_last_read_leaves_it_open(facts, last_read, probed):
    """Probe planning narrows the volumes of recently changed sources in SQL (drift.snapshot.probing): what it
    leaves out must be what _volume_needs_probe would leave out."""
    facts.source("cfg", (90, {"level": "INFO"}), (1, {"level": "DEBUG"}))  # changed a minute ago
    pod = facts.pod("app", "app-a", [volume("cfg")], started_minutes_ago=30)
    if last_read is not None:
        when, ok, value = last_read
        observed_at = facts.at(2 if when == "before" else 0.5)
        Observation.objects.create(
            consumption=Consumption.objects.get(container__pod=pod), observed_at=observed_at, ok=ok,
            reason="" if ok else value, key_hashes={"level": value_hash(value)} if ok else {},
        )  # fmt: skip
    assert planned(facts) == ({"app-a"} if probed else set())
