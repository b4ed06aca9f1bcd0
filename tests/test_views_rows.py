"""The overview's rows say why and what to do, offer Roll out where a restart is the cure, and agree with each
other: one line across clusters, the chart's last point and the badges from the same stored verdicts, and each
card's "as of"."""

import re

import pytest
from django.urls import reverse

from drift import verdicts
from tests.facts import Facts, user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]


@pytest.fixture
def facts():
    return Facts.for_cluster()


@pytest.fixture
def lead(facts):
    """env-demo (2 pods) reads env-config through envFrom, subpath-demo one key of special-config through a
    subPath; both started before their ConfigMap changed: stale. volume-demo mounts special-config, changed a
    moment ago: propagating. api (namespace shop) reads a Secret that never changed: fresh."""
    facts.source("env-config", (90, {"log_level": "INFO"}), (10, {"log_level": "DEBUG"}))
    facts.source("special-config", (90, {"special.how": "very"}), (0.2, {"special.how": "more"}))
    facts.source("db", (90, {"password": "s3cr3t"}), kind="Secret", namespace="shop")
    for name in ("env-demo-a", "env-demo-b"):
        facts.pod("env-demo", name, [{"source_name": "env-config"}])
    facts.pod(
        "subpath-demo",
        "subpath-demo-a",
        [{"source_name": "special-config", "mode": "subPath", "keys": ["special.how"], "mount_path": "/etc/x",
          "sub_path": "special.how"}],
    )  # fmt: skip
    facts.pod(
        "volume-demo",
        "volume-demo-a",
        [{"source_name": "special-config", "mode": "volume", "mount_path": "/etc/config"}],
    )
    facts.pod("api", "api-a", [{"source_kind": "Secret", "source_name": "db"}], namespace="shop")
    facts.run(counts={"stale": 0, "fresh": 5})  # the last snapshot's counts, before the watcher saw the changes
    verdicts.facts_changed(facts.cluster)
    return facts


def row_of(content: str, name: str) -> str:
    """The text and markup of the overview row that links to workload `name`."""
    for row in re.findall(r"<tr class=\"[^\"]*\">(.*?)</tr>", content, re.S):
        if re.search(rf"/workloads/\w+/{name}/\">", row):
            return row
    raise AssertionError(f"no row for {name}")


def text(markup: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", markup)).strip()


def test_each_row_says_why_and_what_to_do_per_mode(client, lead):
    client.force_login(user("vera", "viewer"))
    content = client.get(reverse("overview")).content.decode()
    assert "env read at start — restart needed" in text(row_of(content, "env-demo"))
    assert "subPath never refreshed — restart needed" in text(row_of(content, "subpath-demo"))
    assert re.search(r"volume: the kubelet refreshes it by about \d\d:\d\d", text(row_of(content, "volume-demo")))


def test_an_operator_gets_a_roll_out_on_the_rows_a_restart_cures_and_only_where_she_may(client, lead):
    client.force_login(user("olga", "operator", ["local/demo"]))
    content = client.get(reverse("overview")).content.decode()
    for name in ("env-demo", "subpath-demo"):
        row = row_of(content, name)
        assert f'aria-label="Roll out Deployment/{name}"' in row
        assert f'action="{reverse("rollout-plan")}"' in row and 'method="post"' in row
        assert "csrfmiddlewaretoken" in row
    assert "Roll out Deployment/volume-demo" not in content  # propagating: nothing to do yet
    client.force_login(user("vera", "viewer"))
    assert "Roll out Deployment/env-demo" not in client.get(reverse("overview")).content.decode()
    client.force_login(user("sam", "operator", ["local/shop"]))
    assert "Roll out Deployment/env-demo" not in client.get(reverse("overview")).content.decode()


def test_a_line_at_the_top_counts_the_workloads_that_need_a_restart_across_clusters(client, lead):
    Facts.for_cluster("staging").run()
    client.force_login(user("vera", "viewer"))
    content = client.get(reverse("overview")).content.decode()
    assert "2 workloads need a restart in 1 of 2 clusters." in text(content)


def test_the_charts_last_point_is_what_the_badges_count(client, lead):
    client.force_login(user("vera", "viewer"))
    content = client.get(reverse("overview")).content.decode()
    assert '<span class="verdict stale">3 stale</span>' in content
    assert re.search(r"Stale pods in local since [\d-]+ [\d:]+ UTC: 3 now", content)  # not the last run's 0


def test_each_card_says_as_of_when_from_its_stored_verdicts(client, lead):
    client.force_login(user("vera", "viewer"))
    content = client.get(reverse("overview")).content.decode()
    assert re.search(r"as of \d+ s ago", content)


def test_a_pod_being_deleted_is_shown_terminating_and_left_out_of_the_counts(client, facts):
    """After a rollout of two replicas: the two new pods fresh, one old pod still terminating. Not "split, 1
    stale + 2 fresh"."""
    from django.utils import timezone

    from drift.models import Pod

    facts.source("env-config", (90, {"log_level": "INFO"}), (10, {"log_level": "DEBUG"}))
    old = facts.pod("env-demo", "env-demo-old", [{"source_name": "env-config"}], started_minutes_ago=30)
    for name in ("env-demo-new-a", "env-demo-new-b"):
        facts.pod("env-demo", name, [{"source_name": "env-config"}], started_minutes_ago=1)
    Pod.objects.filter(pk=old.pk).update(terminating_since=timezone.now())
    facts.run()
    verdicts.facts_changed(facts.cluster)
    client.force_login(user("vera", "viewer"))
    content = client.get(reverse("overview"), {"verdict": "fresh"}).content.decode()
    row = text(row_of(content, "env-demo"))
    assert "split" not in row
    assert '<span class="verdict stale">' not in content
    page = client.get(reverse("workload", args=["local", "demo", "Deployment", "env-demo"])).content.decode()
    assert "Terminating, not counted: env-demo-old" in text(page)
    assert 'data-pod="env-demo-old"' not in page
    assert page.count('<tbody class="pod"') == 2


def test_a_sources_page_offers_to_roll_out_its_stale_consumers_to_whoever_may(client, lead):
    url = reverse("source", args=["local", "demo", "configmaps", "special-config"])
    client.force_login(user("olga", "operator", ["local/demo"]))
    content = client.get(url).content.decode()
    form = re.search(r'<form id="stale-consumers".*?</form>', content, re.S).group(0)
    assert f'action="{reverse("rollout-bulk-plan")}"' in form and "csrfmiddlewaretoken" in form
    assert "Roll out the stale consumers" in form
    from drift.models import Workload

    ids = {int(value) for value in re.findall(r'name="workload" value="(\d+)"', form)}
    assert ids == {Workload.objects.get(name="subpath-demo").pk}  # volume-demo is propagating: nothing to do yet
    assert "subPath never refreshed — restart needed" in text(content)
    client.force_login(user("vera", "viewer"))
    assert "Roll out the stale consumers" not in client.get(url).content.decode()
    client.force_login(user("sam", "operator", ["local/shop"]))
    assert "Roll out the stale consumers" not in client.get(url).content.decode()


def test_the_workload_pages_rows_say_why(client, lead):
    client.force_login(user("vera", "viewer"))
    page = client.get(reverse("workload", args=["local", "demo", "Deployment", "env-demo"])).content.decode()
    assert text(page).count("env read at start — restart needed") == 2  # one row per pod
