"""?at= on the overview, namespace and workload pages: a banner "as of T", the pods that ran then by UID with
the version each ran, links that keep `at`; a bad moment is a 400 with the reason, never a 500; a viewer scoped
to one namespace of one cluster sees that namespace only, whatever the URL says."""

import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.urls import reverse
from django.utils import timezone

from drift.models import AuditEvent
from tests.facts import Facts, user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]


@pytest.fixture
def facts():
    facts = Facts.for_cluster()
    for minutes in range(70, 0, -1):
        facts.run(minutes_ago=minutes - 0.5)
    facts.source("env-config", (60, {"log_level": "INFO"}), (20, {"log_level": "DEBUG"}))
    facts.source("shop-config", (60, {"x": "1"}), namespace="shop")
    facts.old = facts.pod("env-demo", "old-a", [{"source_name": "env-config"}], started_minutes_ago=50)
    facts.new = facts.pod("env-demo", "new-b", [{"source_name": "env-config"}], started_minutes_ago=15)
    facts.shop = facts.pod("cart", "cart-1", [{"source_name": "shop-config"}], namespace="shop", started_minutes_ago=50)
    other = Facts.for_cluster("other")
    for minutes in range(70, 0, -1):
        other.run(minutes_ago=minutes - 0.5)
    other.source("env-config", (60, {"log_level": "INFO"}))
    facts.elsewhere = other.pod("env-demo", "other-a", [{"source_name": "env-config"}], started_minutes_ago=50)
    return facts


def at(facts, minutes):
    return quote(timezone.localtime(facts.at(minutes)).isoformat(timespec="seconds"))


def test_the_overview_at_a_moment_lists_the_pods_that_ran_then(client, facts):
    client.force_login(user("viewer", "viewer"))
    response = client.get(f"/?at={at(facts, 18)}")
    html = response.content.decode()

    assert response.status_code == 200
    assert 'id="as-of"' in html and "As of" in html
    assert facts.old.uid in html and facts.shop.uid in html and facts.elsewhere.uid in html
    assert facts.new.uid not in html  # started 15 minutes ago
    old_row = re.search(rf'data-pod-uid="{facts.old.uid}".*?</tr>', html, re.S).group(0)
    assert ">#1</a>" in old_row and ">#2</a>" in old_row and "stale" in old_row
    # Every link of the page body keeps the moment (except "Back to now").
    body = html.split('id="as-of"', 1)[1]
    links = [link for link in re.findall(r'href="([^"]+)"', body) if not link.startswith("/static")]
    kept = [link for link in links if "at=" in link]
    assert len(links) - len(kept) == 1 and len(kept) > 5


def test_the_workload_and_namespace_pages_take_at(client, facts):
    client.force_login(user("viewer", "viewer"))
    workload = client.get(reverse("workload", args=["local", "demo", "Deployment", "env-demo"]) + f"?at={at(facts, 5)}")
    namespace = client.get(reverse("namespace", args=["local", "shop"]) + f"?at={at(facts, 5)}")

    assert workload.status_code == 200 and namespace.status_code == 200
    assert facts.old.uid in workload.content.decode() and facts.new.uid in workload.content.decode()
    assert facts.shop.uid not in workload.content.decode()
    assert facts.shop.uid in namespace.content.decode() and facts.old.uid not in namespace.content.decode()


def test_before_the_first_snapshot_it_says_not_known(client, facts):
    client.force_login(user("viewer", "viewer"))
    html = client.get(f"/?cluster=local&at={at(facts, 90)}").content.decode()

    assert "not known: Driftwatch did not watch this cluster yet" in html
    assert facts.old.uid not in html


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("garbage", "is not a moment"),
        ("9999-12-31T23:59", "in the future"),
        ("2999-01-01T00:00Z", "in the future"),
        ("2026-12-01T09:12" + "9" * 5000, "at most 40 characters"),
        ("", "Give a moment"),
        ("1970-01-01T00:00Z", "before 2000"),
    ],
)
@pytest.mark.parametrize("where", ["/", "/clusters/local/demo/", "/clusters/local/demo/workloads/Deployment/env-demo/"])
def test_a_bad_moment_is_a_400_with_the_reason(client, facts, value, message, where):
    client.force_login(user("viewer", "viewer"))
    response = client.get(where, {"at": value})

    if len(value) > 4096:
        assert response.status_code == 400  # the input bound refuses it before the page
        return
    assert response.status_code == 400
    assert message in response.content.decode()


def test_a_scoped_viewer_sees_its_namespace_only(client, facts):
    client.force_login(user("scoped", "viewer", ["local/demo"]))
    moment = at(facts, 5)

    overview = client.get(f"/?at={moment}").content.decode()
    assert facts.old.uid in overview
    assert facts.shop.uid not in overview and facts.elsewhere.uid not in overview
    hostile = client.get(f"/?at={moment}&cluster=other&namespace=demo").content.decode()
    assert facts.elsewhere.uid not in hostile
    assert client.get(f"/?at={moment}&namespace=shop").content.decode().count(facts.shop.uid) == 0
    assert client.get(f"/clusters/other/demo/?at={moment}").status_code == 404
    assert client.get(f"/clusters/local/shop/?at={moment}").status_code == 404
    assert client.get(f"/clusters/local/{'a' * 300}/?at={moment}").status_code == 404
    assert client.get(f"/clusters/local/shop/workloads/Deployment/cart/?at={moment}").status_code == 404
    assert client.get(f"/clusters/nowhere/demo/?at={moment}").status_code == 404
    assert client.get(f"/clusters/local/demo/?at={moment}").status_code == 200
    assert (
        AuditEvent.objects.filter(action=AuditEvent.Action.ACCESS_DENIED, actor="scoped").count() == 4
    )  # other/demo, local/shop twice, nowhere/demo


def test_the_namespace_page_without_at_is_the_overview_narrowed_to_it(client, facts):
    client.force_login(user("viewer", "viewer"))
    response = client.get("/clusters/local/shop/")

    assert response.status_code == 302 and response["Location"] == "/?cluster=local&namespace=shop"


def test_a_get_at_a_moment_writes_nothing(client, facts, django_assert_max_num_queries):
    client.force_login(user("viewer", "viewer"))
    for number in range(40):
        facts.pod("many", f"many-{number}", [{"source_name": "env-config"}], started_minutes_ago=40)
    before = AuditEvent.objects.count()

    with django_assert_max_num_queries(30):
        response = client.get(f"/?cluster=local&at={at(facts, 10)}")
    assert response.status_code == 200 and AuditEvent.objects.count() == before
    assert timezone.now() - facts.now < timedelta(minutes=5)


def test_pods_come_a_page_at_a_time_and_the_pager_keeps_at(client, facts, monkeypatch):
    from dashboard.pages import at as page

    monkeypatch.setattr(page, "PODS_PER_PAGE", 1)
    client.force_login(user("viewer", "viewer"))
    first = client.get(f"/?cluster=local&at={at(facts, 5)}").content.decode()
    second = client.get(f"/?cluster=local&at={at(facts, 5)}&page=2").content.decode()

    assert "page 1 of 3" in first and "3 pods ran then" in first
    assert first.count("data-pod-uid=") == 1 and second.count("data-pod-uid=") == 1
    assert re.findall(r'data-pod-uid="([^"]+)"', first) != re.findall(r'data-pod-uid="([^"]+)"', second)
    assert re.search(r'href="/\?cluster=local&amp;at=[^"]+&amp;page=2">Next', first)


def test_it_says_how_many_pods_ran_each_version_of_each_source(client, facts):
    client.force_login(user("viewer", "viewer"))
    html = client.get(f"/?cluster=local&at={at(facts, 5)}").content.decode()

    line = re.sub(r"<[^>]+>|\s+", " ", re.search(r'<li data-source="demo/env-config">.*?</li>', html, re.S).group(0))
    assert re.search(r"current then #2 .*; 1 pod ran #2, 1 pod ran #1", line), line


def test_the_audit_log_links_each_namespaced_entry_to_what_ran_then(client, facts):
    from drift import audit

    audit.record(
        "alice", AuditEvent.Action.CONFIG_CHANGED, "env-config changed", cluster_name="local", namespace="demo"
    )
    audit.record("mallory", AuditEvent.Action.ACCESS_DENIED, "odd", cluster_name="local", namespace="../x" + "a" * 300)
    client.force_login(user("viewer", "viewer"))
    html = client.get(reverse("audit")).content.decode()

    links = re.findall(r'class="ran-then" href="([^"]+)"', html)
    assert len(links) == 1 and links[0].startswith("/clusters/local/demo/?at=")
    assert client.get(links[0].replace("&amp;", "&")).status_code == 200
