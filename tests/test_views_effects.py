"""The "what did this change do?" page of a version (dashboard.views.sources.effects): the pod that crashed on
the bad version named with the reason, the pods that took each version up, the window from the URL (bounded),
a link from every version on the source page, and a viewer scoped to another namespace refused and audited."""

import pytest
from django.urls import reverse

from drift.models import AuditEvent, ContainerInstance, Observation, Source
from tests.facts import Facts, user, value_hash

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]


@pytest.fixture
def facts():
    facts = Facts.for_cluster()
    facts.source("app-config", (60, {"mode": "one"}), (20, {"mode": "bad"}))
    facts.old = facts.pod("env-demo", "old-a", [{"source_name": "app-config"}], started_minutes_ago=50)
    facts.crash = facts.pod("env-demo", "crash-c", [{"source_name": "app-config"}], started_minutes_ago=15)
    ContainerInstance.objects.create(
        pod=facts.crash, name="app", container_id="second", started_at=facts.at(14), first_seen=facts.at(14)
    )
    return facts


def effects(number):
    return reverse("source-effects", args=["local", "demo", "configmaps", "app-config", number])


def test_the_bad_version_names_the_pod_that_restarted(client, facts):
    client.force_login(user("vera", "viewer"))
    response = client.get(effects(2))
    assert response.status_code == 200
    page = response.content.decode()
    troubled = page.split('id="troubled"')[1].split("</section>")[0]
    assert f'data-pod-uid="{facts.crash.uid}"' in troubled and "restarted" in troubled
    assert facts.old.uid not in page  # it started on #1 and never took #2 up
    picked = page.split('id="picked-up"')[1].split("</section>")[0]
    assert "started with it" in picked and "what ran just after" in picked and "?at=" in picked


def test_the_first_version_names_the_pod_that_started_with_it_and_no_trouble(client, facts):
    client.force_login(user("vera", "viewer"))
    page = client.get(effects(1)).content.decode()
    assert f'data-pod-uid="{facts.old.uid}"' in page
    assert 'id="no-trouble"' in page


def test_the_window_comes_from_the_url_and_a_bad_one_is_said(client, facts):
    client.force_login(user("vera", "viewer"))
    narrow = client.get(effects(2), {"within": "0"})
    assert narrow.status_code == 400
    assert "within must be a whole number of minutes from 1 to 1440" in narrow.content.decode()
    # The restart came a minute after crash-c took #2 up: inside 1 minute too, and the form keeps the value.
    one = client.get(effects(2), {"within": "1"}).content.decode()
    assert 'value="1"' in one and facts.crash.uid in one.split('id="troubled"')[1].split("</section>")[0]


def test_every_version_on_the_source_page_links_to_what_it_did(client, facts):
    client.force_login(user("vera", "viewer"))
    page = client.get(reverse("source", args=["local", "demo", "configmaps", "app-config"])).content.decode()
    assert f'href="{effects(1)}"' in page and f'href="{effects(2)}"' in page


def test_a_viewer_scoped_elsewhere_is_refused_and_audited(client, facts):
    client.force_login(user("scoped", "viewer", ["local/other"]))
    assert client.get(effects(2)).status_code == 404
    for cluster, namespace in (("elsewhere", "demo"), ("local", "x" * 300)):  # another cluster; an over-long name
        url = reverse("source-effects", args=[cluster, namespace, "configmaps", "app-config", 2])
        assert client.get(url).status_code == 404
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ACCESS_DENIED, actor="scoped").count() == 2
    client.force_login(user("allowed", "viewer", ["local/demo"]))
    assert client.get(effects(2)).status_code == 200


def test_an_unknown_version_is_404(client, facts):
    client.force_login(user("vera", "viewer"))
    assert client.get(effects(3)).status_code == 404


def edit_cells(page):
    """(pod, effect) per consumer row of the source page."""
    consumers = page.split('id="source-consumers"')[1].split("</section>")[0]
    found = []
    for row in consumers.split("<tr>")[2:]:
        pod = row.split("/pods/")[1].split("/")[0]
        effect = row.split('data-effect="')[1].split('"')[0]
        found.append((pod, effect, row.split('class="edit-effect">')[1].split("</td>")[0]))
    return found


def test_before_an_edit_the_source_page_says_what_it_would_do_to_each_consumer(client):
    client.force_login(user("vera", "viewer"))
    facts = Facts.for_cluster()
    facts.source("app-config", (60, {"mode": "one"}))
    facts.pod("env-demo", "env-a", [{"source_name": "app-config"}])
    facts.pod("sub-demo", "sub-b", [{"source_name": "app-config", "mode": "subPath", "mount_path": "/etc/a"}])
    facts.pod("files-demo", "files-c", [{"source_name": "app-config", "mode": "volume", "mount_path": "/etc/c"}])
    watcher = facts.pod("hot-demo", "hot-d", [{"source_name": "app-config", "mode": "volume", "mount_path": "/etc/d"}])
    Observation.objects.create(
        consumption=watcher.containers.get().consumptions.get(), observed_at=facts.at(1), ok=True,
        key_hashes={"mode": value_hash("one")}, watching=True,
    )  # fmt: skip
    url = reverse("source", args=["local", "demo", "configmaps", "app-config"])

    cells = edit_cells(client.get(url).content.decode())

    assert [(pod, effect) for pod, effect, _ in cells] == [
        ("env-a", "needs a restart"),
        ("files-c", "needs a restart"),
        ("hot-d", "refreshes by itself"),
        ("sub-b", "needs a restart"),
    ]
    said = dict((pod, text) for pod, _, text in cells)
    assert "env is read when the container starts" in said["env-a"] and "never refreshed" in said["sub-b"]
    assert "the file refreshes within the kubelet&#x27;s window" in said["files-c"]  # no delay measured yet
    assert "a process of it watches the volume" in said["hot-d"]

    Source.objects.filter(name="app-config").update(immutable=True)
    cells = edit_cells(client.get(url).content.decode())
    assert {effect for _, effect, _ in cells} == {"never"}
    assert "immutable" in cells[0][2]


def test_each_recent_version_on_the_source_page_sums_up_what_it_did(client, facts):
    client.force_login(user("vera", "viewer"))
    page = client.get(reverse("source", args=["local", "demo", "configmaps", "app-config"])).content.decode()
    entries = page.split('<ol class="timeline"')[1].split("</ol>")[0].split("<li")[1:]
    newest, oldest = entries  # newest first
    assert "1 pod took it up, " in newest and "1 crashed or restarted</strong>" in newest
    assert "1 pod took it up:" in oldest and "crashed" not in oldest
    # A viewer scoped elsewhere reads the page as before, without the sums.
    client.force_login(user("scoped", "viewer", ["local/other"]))
    page = client.get(reverse("source", args=["local", "demo", "configmaps", "app-config"])).content.decode()
    assert "took it up" not in page and "What did #" not in page
