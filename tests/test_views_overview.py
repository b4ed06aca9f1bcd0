"""The overview: pods per verdict per workload, filters and search, the self-refreshing body, the chart of
stale pods over time, and empty states that say what to do."""

import html
import re

import pytest
from django.urls import reverse

from dashboard.pages.overview import PAGE_SIZE
from tests.facts import Facts, user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]


@pytest.fixture
def viewer(client):
    # A viewer reads everything and may not roll out: most pages are tested as one.
    client.force_login(user("vera", "viewer"))
    return client


@pytest.fixture
def facts():
    return Facts.for_cluster()


@pytest.fixture
def demo(facts):
    """env-demo (2 pods) started before env-config changed: stale. nginx started after its config: fresh.
    api in namespace shop reads a Secret that did not change: fresh."""
    facts.source("env-config", (90, {"log_level": "INFO"}), (10, {"log_level": "DEBUG"}))
    facts.source("nginx-config", (90, {"nginx.conf": "worker_processes 1;"}))
    facts.source("db", (90, {"password": "s3cr3t"}), kind="Secret", namespace="shop")
    for name in ("env-demo-a", "env-demo-b"):
        facts.pod("env-demo", name, [{"source_name": "env-config"}])
    facts.pod(
        "nginx",
        "nginx-a",
        [
            {
                "source_name": "nginx-config",
                "mode": "subPath",
                "keys": ["nginx.conf"],
                "mount_path": "/etc/nginx/nginx.conf",
                "sub_path": "nginx.conf",
            }
        ],
    )
    facts.pod("api", "api-a", [{"source_kind": "Secret", "source_name": "db"}], namespace="shop")
    facts.run(counts={"stale": 2, "fresh": 2})
    return facts


def workload_rows(response):
    """{workload name: row text} from the overview table."""
    html = response.content.decode()
    rows = re.findall(r"<tr class=\"[^\"]*\">(.*?)</tr>", html, re.S)
    found = {}
    for row in rows:
        name = re.search(r"/workloads/\w+/([\w-]+)/\">", row)
        if name:
            found[name.group(1)] = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
    return found


def test_it_requires_login(client):
    response = client.get(reverse("overview"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_it_says_how_to_add_a_cluster_when_there_is_none(viewer):
    response = viewer.get(reverse("overview"))
    assert b"No cluster yet" in response.content
    assert b"python manage.py cluster add NAME --kubeconfig PATH" in response.content


def test_it_says_the_first_snapshot_is_pending(viewer, facts):
    response = viewer.get(reverse("overview"))
    assert b"First snapshot pending for cluster local" in response.content
    assert b"python manage.py snapshot --cluster local" in response.content


def test_it_shows_a_failing_snapshot_with_its_error_escaped(viewer, demo):
    demo.run(
        status="failed", minutes_ago=0.1, error="API server https://10.0.0.1 unreachable: <script>alert(1)</script>"
    )
    content = viewer.get(reverse("overview")).content.decode()
    assert "Snapshots of local are failing" in content
    assert "unreachable: &lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert "<script>alert(1)" not in content
    # What was known before the failure stays visible.
    assert "env-demo" in workload_rows(viewer.get(reverse("overview")))


def test_it_counts_pods_per_worst_verdict_for_each_workload(viewer, demo):
    response = viewer.get(reverse("overview"))
    rows = workload_rows(response)
    # columns: workload, kind, stale, new on disk only, propagating, fresh, unknown, missing, stale sources
    assert rows["env-demo"].startswith("env-demo Deployment 2 0 0 0 0 0 ConfigMap env-config stale for 10 min")
    # Fresh workloads are counted and one click away, not listed.
    assert set(rows) == {"env-demo"}
    content = response.content.decode()
    assert "2 fresh workloads not listed" in content
    assert 'href="/?cluster=local&amp;verdict=fresh">show fresh workloads</a>' in content
    fresh = workload_rows(viewer.get(reverse("overview"), {"cluster": "local", "verdict": "fresh"}))
    assert fresh["nginx"].startswith("nginx Deployment 0 0 0 1 0 0")
    assert fresh["api"].startswith("api Deployment 0 0 0 1 0 0")


def test_it_counts_workloads_and_pods_per_namespace(viewer, demo):
    content = viewer.get(reverse("overview")).content.decode()
    counts = {
        name: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cells)).strip()
        for name, cells in re.findall(r'<tr class="ns-counts"><th scope="row"><a [^>]+>([\w-]+)</a></th>(.*?)</tr>',
                                      content, re.S)
    }  # fmt: skip
    # namespace: need attention, fresh workloads, stale, new on disk only, propagating, unknown, missing pods
    assert counts == {"demo": "1 1 2 0 0 0 0", "shop": "0 1 0 0 0 0 0"}


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ({"namespace": "shop"}, set()),  # its one workload is fresh: counted, not listed
        ({"namespace": "shop", "verdict": "fresh"}, {"api"}),
        ({"verdict": "stale"}, {"env-demo"}),
        ({"verdict": "fresh"}, {"nginx", "api"}),
        ({"source": "nginx-config"}, {"nginx"}),
        ({"source": "db"}, {"api"}),
        ({"q": "env-demo-b"}, {"env-demo"}),
        ({"q": "NGINX"}, {"nginx"}),
        ({"cluster": "local", "verdict": "stale", "namespace": "demo"}, {"env-demo"}),
    ],
)
def test_it_filters_by_cluster_namespace_verdict_source_and_search(viewer, demo, query, shown):
    assert set(workload_rows(viewer.get(reverse("overview"), query))) == shown


def test_a_search_for_one_pod_counts_only_that_pod(viewer, demo):
    rows = workload_rows(viewer.get(reverse("overview"), {"q": "env-demo-b"}))
    assert rows["env-demo"].startswith("env-demo Deployment 1 0 0")


def test_it_says_when_no_workload_matches_the_filters(viewer, demo):
    content = viewer.get(reverse("overview"), {"q": "no-such-thing"}).content.decode()
    assert "No workload in local matches these filters" in content
    assert "Clear filters" in content


def test_split_workloads_stand_out(viewer, facts):
    facts.source("env-config", (90, {"log_level": "INFO"}), (10, {"log_level": "DEBUG"}))
    facts.pod("web", "web-old", [{"source_name": "env-config"}], started_minutes_ago=30)
    facts.pod("web", "web-new", [{"source_name": "env-config"}], started_minutes_ago=5)
    facts.pod("steady", "steady-a", [{"source_name": "env-config"}], started_minutes_ago=5)
    facts.run()
    response = viewer.get(reverse("overview"))
    assert "split" in workload_rows(response)["web"]  # all its pods fresh or stale: listed because split
    assert "steady" not in workload_rows(response)
    assert "split" not in workload_rows(viewer.get(reverse("overview"), {"verdict": "fresh"}))["steady"]
    assert set(workload_rows(viewer.get(reverse("overview"), {"verdict": "split"}))) == {"web"}


def test_htmx_gets_only_the_body_which_polls_with_the_same_filters(viewer, demo):
    query = {"namespace": "demo", "q": "env"}
    full = viewer.get(reverse("overview"), query)
    part = viewer.get(reverse("overview"), query, headers={"HX-Request": "true", "HX-Target": "overview-body"})
    assert full["Vary"] and "HX-Request" in full["Vary"]
    assert "HX-Request" in part["Vary"]
    assert b"<html" in full.content
    assert b"<html" not in part.content
    body = part.content.decode()
    assert body.lstrip().startswith('<div id="overview-body"')
    assert 'hx-get="/?namespace=demo&amp;q=env"' in body
    assert 'hx-trigger="every 10s' in body
    assert set(workload_rows(part)) == {"env-demo"}


def test_it_draws_stale_pods_over_time(viewer, facts):
    for minutes_ago, stale in ((300, 0), (200, 4), (100, 2), (1, 1)):
        facts.run(minutes_ago=minutes_ago, counts={"stale": stale, "fresh": 5})
    facts.run(status="failed", minutes_ago=50, error="timeout")  # a failed run has no counts: no point
    content = viewer.get(reverse("overview")).content.decode()
    assert "<svg" in content
    # The last point is what the stored verdicts count now (no pod here: 0), as the badges do, not the last run's 1.
    assert re.search(r"Stale pods in local since [\d-]+ [\d:]+ UTC: 0 now, at most 4", content)
    points = re.search(r'<polyline points="([^"]+)"', content).group(1).split()
    assert len(points) == 4
    heights = [float(point.split(",")[1]) for point in points]
    assert heights[1] == min(heights)  # 4 stale is the highest point (smallest y)
    assert heights[0] == heights[-1] == max(heights)  # 0 stale sits on the axis
    xs = [float(point.split(",")[0]) for point in points]
    assert xs[0] < 34 + 10 and xs[-1] > 592 - 10  # the chart spans the history there is, inside its axes
    # Axes: counts on y (0 and the peak), times on x at round local minutes or hours, and what each axis is.
    ticks = re.findall(r'<text x="([\d.]+)" y="[\d.]+" class="tick time">(\d\d:\d\d)</text>', content)
    assert 3 <= len(ticks) <= 6, ticks
    assert [float(x) for x, _ in ticks] == sorted(float(x) for x, _ in ticks)
    assert all(label.endswith(("00", "30")) for _, label in ticks)  # 5 hours of history: hourly or half-hourly
    counts = re.findall(r'class="tick count"[^>]*>(\d+)</text>', content)
    assert counts == ["0", "2", "4"]
    assert "time (UTC)</text>" in content and "stale pods</text>" in content


def test_an_operator_can_select_workloads_for_a_bulk_rollout_and_a_viewer_cannot(client, demo):
    client.force_login(user("olga", "operator", ["local/demo"]))
    content = client.get(reverse("overview")).content.decode()
    assert "Roll out selected" in content
    assert 'aria-label="Select Deployment/env-demo"' in content
    assert 'aria-label="Select Deployment/api"' not in content  # namespace shop is not hers
    client.force_login(user("vera", "viewer"))
    content = client.get(reverse("overview")).content.decode()
    assert "Roll out selected" not in content
    assert 'name="workload"' not in content


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"verdict": "rotten"}, "Verdict: Select a valid choice. rotten is not one of the available choices."),
        ({"cluster": "../etc"}, "Cluster: Enter a valid “slug”"),
        ({"q": "x" * 201}, "Search: Ensure this value has at most 200 characters (it has 201)."),
        ({"source": "s" * 254}, "ConfigMap or Secret: Ensure this value has at most 253 characters"),
    ],
)
def test_a_hostile_filter_is_left_out_and_said(viewer, demo, query, message):
    response = viewer.get(reverse("overview"), query)
    assert response.status_code == 200
    content = html.unescape(response.content.decode())
    assert message in content
    assert set(workload_rows(response)) == {"env-demo"}  # the bad filter filters nothing: the default view


def test_an_over_long_query_parameter_is_400(viewer, demo):
    response = viewer.get(reverse("overview"), {"namespace": "n" * 5_000})
    assert response.status_code == 400


@pytest.mark.parametrize(("heard_seconds_ago", "down"), [(None, True), (600, True), (20, False)])
def test_it_says_when_a_clusters_watcher_is_down(viewer, demo, facts, heard_seconds_ago, down):
    from datetime import timedelta

    from django.utils import timezone

    from drift.models import Cluster

    heard = None if heard_seconds_ago is None else timezone.now() - timedelta(seconds=heard_seconds_ago)
    Cluster.objects.filter(pk=facts.cluster.pk).update(watch_heartbeat_at=heard)
    page = viewer.get("/").content.decode()
    assert ("Watcher down" in page) == down


@pytest.mark.parametrize(
    ("expires_in", "said"),
    [
        (10, "Watched by node-a pid 41 (process 0f0e0d0c)"),
        (-1, "No watcher process holds this cluster's lease (last held by node-a pid 41"),
        (None, "No watcher process holds this cluster's lease."),
    ],
)
def test_it_says_which_watcher_process_holds_the_cluster(viewer, demo, facts, expires_in, said):
    import uuid
    from datetime import timedelta

    from django.utils import timezone

    from drift.models import ClusterLease

    if expires_in is not None:
        now = timezone.now()
        ClusterLease.objects.create(
            cluster=facts.cluster, holder_id=uuid.UUID("0f0e0d0c-0000-4000-8000-000000000000"),
            holder_host="node-a", holder_pid=41, acquired_at=now - timedelta(minutes=5), renewed_at=now,
            expires_at=now + timedelta(seconds=expires_in),
        )  # fmt: skip
    page = html.unescape(viewer.get("/").content.decode())
    assert said in page


def many_stale_workloads(facts, count, pods=2):
    facts.source("env-config", (90, {"log_level": "INFO"}), (10, {"log_level": "DEBUG"}))
    for index in range(count):
        for pod in range(pods):
            facts.pod(f"app-{index:03}-{count}", f"app-{index:03}-{count}-{pod}", [{"source_name": "env-config"}])


def stamp_of(response):
    match = re.search(r'id="overview-body" hx-get="[^"]*stamp=([^"&]+)"', response.content.decode())
    return match and html.unescape(match.group(1))


HTMX = {"HX-Request": "true", "HX-Target": "overview-body"}


def test_polling_answers_nothing_new_until_a_verdict_or_a_snapshot_changes(viewer, demo):
    from drift import verdicts

    verdicts.facts_changed(demo.cluster)
    first = viewer.get(reverse("overview"), {"namespace": "demo"})
    stamp = stamp_of(first)
    assert stamp
    again = viewer.get(reverse("overview"), {"namespace": "demo", "stamp": stamp}, headers=HTMX)
    assert again.status_code == 204 and again.content == b""
    # A full page load (no htmx) always answers in full.
    assert viewer.get(reverse("overview"), {"namespace": "demo", "stamp": stamp}).status_code == 200

    demo.run(minutes_ago=0)  # a snapshot finished: its time and the chart are news
    changed = viewer.get(reverse("overview"), {"namespace": "demo", "stamp": stamp}, headers=HTMX)
    assert changed.status_code == 200
    assert stamp_of(changed) != stamp
    assert "env-demo" in workload_rows(changed)


def test_a_long_list_is_paged(viewer, facts):
    many_stale_workloads(facts, PAGE_SIZE + 10, pods=1)
    facts.run()
    first = viewer.get(reverse("overview"))
    assert len(workload_rows(first)) == PAGE_SIZE
    assert 'rel="next" href="/?page=2"' in first.content.decode()
    second = viewer.get(reverse("overview"), {"page": 2})
    assert len(workload_rows(second)) == 10
    assert set(workload_rows(first)).isdisjoint(workload_rows(second))
    assert 'rel="prev" href="/?page=1"' in second.content.decode()
    assert workload_rows(viewer.get(reverse("overview"), {"page": "999999999"})) == workload_rows(first)  # not a page
    assert workload_rows(viewer.get(reverse("overview"), {"page": "99"})) == workload_rows(second)  # past the last


@pytest.mark.parametrize("is_operator", [False, True])
def test_its_queries_do_not_grow_with_pods(client, facts, is_operator):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from drift import verdicts

    client.force_login(user("olga", "operator") if is_operator else user("vera", "viewer"))
    counts = []
    for count in (2, 40):
        many_stale_workloads(facts, count - len(counts) * 2, pods=3)
        facts.run(minutes_ago=0)
        verdicts.facts_changed(facts.cluster)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(reverse("overview"))
        assert len(workload_rows(response)) == min(count, PAGE_SIZE)
        counts.append(len(queries))
    assert counts[0] == counts[1]
    # 17: one of them reads the restart-tool badges of the page's workloads (Reloader, Wave, Helm checksum), one
    # the moment each card's stored verdicts are as of.
    assert counts[1] <= 17, "\n".join(q["sql"][:150] for q in queries.captured_queries)


def test_source_names_come_on_first_focus_not_with_every_page(viewer, demo, facts):
    """The source filter's suggestions are not in the page (a cluster may have thousands); the field asks for
    them once, for the chosen cluster; names are escaped."""
    facts.source('x"><script>alert(1)</script>', (5, {"k": "v"}))
    page = viewer.get(reverse("overview")).content.decode()
    assert '<datalist id="source-names"></datalist>' in page
    assert f'hx-get="{reverse("source-names")}" hx-trigger="focus once"' in page
    names = viewer.get(reverse("source-names"), {"cluster": "local"}).content.decode()
    assert '<option value="env-config">' in names and '<option value="db">' in names
    assert "<script>" not in names and "&lt;script&gt;" in names
    assert viewer.get(reverse("source-names"), {"cluster": "elsewhere"}).content.decode().strip() == ""
    assert viewer.post(reverse("source-names")).status_code == 405


def test_a_workload_whose_owner_enlisted_a_restart_tool_carries_its_badge(viewer, demo):
    from drift import verdicts
    from drift.models import Cluster, ContainerInstance

    ContainerInstance.objects.filter(pod__workload__name="env-demo").update(
        reload_hints={"restart_tool": "Reloader (reloader.stakater.com/auto)"}
    )
    verdicts.facts_changed(Cluster.objects.get(name="local"))
    response = viewer.get(reverse("overview"))
    assert re.search(r'env-demo</a>\s*<span class="badge restart-tool"[^>]*>Reloader</span>', response.content.decode())
    fresh = viewer.get(reverse("overview"), {"verdict": "fresh"}).content.decode()
    assert re.search(r"nginx</a>", fresh) and not re.search(r"nginx</a>\s*<span class=\"badge restart-tool", fresh)


def test_each_card_names_its_api_server_so_two_registrations_of_one_can_be_told_apart(viewer, demo):
    demo.cluster.api_server = "127.0.0.1:6443"
    demo.cluster.save()
    content = viewer.get(reverse("overview")).content.decode()
    card = re.search(r'<header class="cluster-head">(.*?)</header>', content, re.S).group(1)
    assert "local" in card and "127.0.0.1:6443" in card
