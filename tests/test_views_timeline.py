"""The timeline of a namespace and of a workload: config versions with author and changed keys, rollouts,
restarts, pod starts and ends, container terminations and verdict changes in one list, oldest first, filtered and
paged, each entry linking to point in time at its moment; exported as CSV (safe against formulas) and JSON with
the same filters; a viewer scoped to one namespace of one cluster sees that namespace's entries and nothing else,
whatever the URL says; GET writes nothing; a Secret's values are never shown."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from drift.models import AuditEvent, ContainerInstance, Pod, Rollout, SourceVersion, VerdictChange
from tests.facts import Facts, user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]

SECRET_VALUE = "hunter2-never-shown"


def moment(facts: Facts, minutes: float) -> str:
    return quote(timezone.localtime(facts.at(minutes)).isoformat(timespec="seconds"))


@pytest.fixture
def facts():
    facts = Facts.for_cluster()
    facts.run(minutes_ago=100)
    facts.source("env-config", (90, {"log_level": "INFO"}), (40, {"log_level": "DEBUG", "extra": "1"}))
    SourceVersion.objects.filter(source__name="env-config", first_seen=facts.at(40)).update(
        changed_by="alice", client="kubectl-edit", author_confidence="confirmed"
    )
    facts.source("db-password", (90, {"password": "x"}), (35, {"password": SECRET_VALUE}), kind="Secret")
    facts.old = facts.pod("env-demo", "env-old", [{"source_name": "env-config"}], started_minutes_ago=80)
    facts.new = facts.pod("env-demo", "env-new", [{"source_name": "env-config"}], started_minutes_ago=20)
    Pod.objects.filter(pk=facts.new.pk).update(restarted_at=facts.at(21))
    Pod.objects.filter(pk=facts.old.pk).update(deleted_at=facts.at(19))
    ContainerInstance.objects.filter(pod=facts.new).update(
        termination_reason="Error", exit_code=7, finished_at=facts.at(10), restart_count=2,
        waiting_reason="CrashLoopBackOff",
    )  # fmt: skip
    workload = facts.old.workload
    Rollout.objects.create(
        cluster=facts.cluster, kind="Deployment", namespace="demo", name="env-demo", requested_by="bob",
        requested_at=facts.at(30), status=Rollout.Status.COMPLETE, annotation_key="driftwatch.io/config-hash",
    )  # fmt: skip
    consumption = facts.old.containers.get().consumptions.get()
    VerdictChange.objects.create(
        cluster=facts.cluster, namespace="demo", workload=workload, pod=facts.old, consumption=consumption,
        old_verdict="fresh", new_verdict="stale", at=facts.at(39),
    )  # fmt: skip
    VerdictChange.objects.create(
        cluster=facts.cluster, namespace="demo", workload=workload, pod=facts.old, consumption=consumption,
        old_verdict="stale", new_verdict="", at=facts.at(19),
    )  # fmt: skip
    # Elsewhere: another namespace, another cluster. A scoped viewer must see none of it.
    facts.source("shop-config", (50, {"x": "1"}), (45, {"x": "2"}), namespace="shop")
    facts.pod("cart", "cart-1", [{"source_name": "shop-config"}], namespace="shop", started_minutes_ago=44)
    other = Facts.for_cluster("other")
    other.source("env-config", (50, {"log_level": "INFO"}), (45, {"log_level": "WARN"}))
    other.pod("env-demo", "other-a", [{"source_name": "env-config"}], started_minutes_ago=44)
    return facts


def url(facts: Facts, namespace: str = "demo", cluster: str = "local", **query: str) -> str:
    base = reverse("timeline", args=[cluster, namespace])
    window = f"from={moment(facts, 95)}"
    extra = "&".join(f"{key}={value}" for key, value in query.items())
    return f"{base}?{window}" + (f"&{extra}" if extra else "")


def test_it_lists_every_kind_of_entry_once_oldest_first_with_its_author(client, facts):
    client.force_login(user("viewer", "viewer"))
    response = client.get(url(facts, format="json"))
    assert response.status_code == 200
    entries = json.loads(response.content)["entries"]
    kinds = [entry["kind"] for entry in entries]
    assert kinds == [
        "version", "version", "pod-start",  # env-config #1, db-password #1, env-old
        "version", "verdict", "version",  # alice's edit, env-old goes stale, db-password #2
        "rollout", "restart", "pod-start", "pod-end", "termination",
    ], kinds  # fmt: skip
    edit = entries[3]
    assert (
        edit["summary"] == "ConfigMap env-config #2 changed by alice via kubectl-edit: added extra; changed log_level"
    )
    assert edit["actor"] == "alice"
    assert entries[4]["summary"] == "env-old/app (envFrom of ConfigMap env-config): fresh → stale"
    assert entries[6]["actor"] == "bob" and "asked by bob" in entries[6]["summary"]
    assert "kubectl rollout restart of Deployment env-demo" in entries[7]["summary"]
    assert entries[10]["summary"] == (
        "container app of pod env-new ended: Error (exit code 7), 2 restarts before it; then CrashLoopBackOff"
    )
    assert entries[10]["pod"]["uid"] == facts.new.uid
    assert [entry["at"] for entry in entries] == sorted(entry["at"] for entry in entries)


def test_the_page_links_each_entry_to_point_in_time_at_its_moment_and_to_the_audit_log(client, facts):
    client.force_login(user("viewer", "viewer"))
    response = client.get(url(facts))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="timeline-entries"' in page and "<svg" in page  # the stale-pods chart: env-old was stale
    workload_then = reverse("workload", args=["local", "demo", "Deployment", "env-demo"])
    assert f'href="{workload_then}?at=' in page  # a pod's, a rollout's entry: its workload then
    namespace_then = reverse("namespace", args=["local", "demo"])
    assert f'href="{namespace_then}?at=' in page  # a version's: the namespace then


def test_filters_narrow_by_kind_source_and_workload(client, facts):
    client.force_login(user("viewer", "viewer"))
    only = json.loads(client.get(url(facts, format="json", kind="termination")).content)["entries"]
    assert [entry["kind"] for entry in only] == ["termination"]
    two = client.get(url(facts, format="json") + "&kind=rollout&kind=restart")
    assert [entry["kind"] for entry in json.loads(two.content)["entries"]] == ["rollout", "restart"]
    secret = json.loads(client.get(url(facts, format="json", source="db-password")).content)["entries"]
    assert [entry["kind"] for entry in secret] == ["version", "version"]
    env = json.loads(client.get(url(facts, format="json", source="env-config")).content)["entries"]
    assert {entry["kind"] for entry in env} == {"version", "verdict", "pod-start", "pod-end", "termination"}
    workload = json.loads(client.get(url(facts, format="json", workload="Deployment/env-demo")).content)
    assert workload["workload"] == {"kind": "Deployment", "name": "env-demo"}
    # Its versions are those of what its pods consume: not db-password.
    assert {entry["source"]["name"] for entry in workload["entries"] if entry["kind"] == "version"} == {"env-config"}
    missing = client.get(url(facts, workload="Deployment/nothing"))
    assert missing.status_code == 400 and "no Deployment/nothing" in missing.content.decode()


def test_the_workload_tab_is_the_same_timeline_of_that_workload(client, facts):
    client.force_login(user("viewer", "viewer"))
    tab = reverse("workload-timeline", args=["local", "demo", "Deployment", "env-demo"])
    response = client.get(f"{tab}?from={moment(facts, 95)}&format=json")
    assert response.status_code == 200
    kinds = [entry["kind"] for entry in json.loads(response.content)["entries"]]
    assert "rollout" in kinds and "termination" in kinds
    workload_page = client.get(reverse("workload", args=["local", "demo", "Deployment", "env-demo"]))
    assert tab in workload_page.content.decode()
    assert client.get(reverse("workload-timeline", args=["local", "demo", "Deployment", "nope"])).status_code == 404


def test_a_reloader_restart_is_one_entry_at_its_first_pod(client, facts):
    for name, minutes in (("env-r1", 12), ("env-r2", 11)):
        pod = facts.pod("env-demo", name, [{"source_name": "env-config"}], started_minutes_ago=minutes)
        Pod.objects.filter(pk=pod.pk).update(reloaded_by="ConfigMap env-config @5d8f7c9b4")
    client.force_login(user("viewer", "viewer"))
    entries = json.loads(client.get(url(facts, format="json", kind="restart")).content)["entries"]
    reloads = [entry for entry in entries if entry["actor"] == "Reloader"]
    assert [entry["summary"] for entry in reloads] == [
        "Reloader restarted Deployment env-demo after ConfigMap env-config changed (2 pods seen from it)"
    ]
    assert reloads[0]["at"] == facts.at(12).isoformat()


def test_the_csv_export_has_the_same_entries_and_no_formula(client, facts):
    client.force_login(user("viewer", "viewer"))
    Rollout.objects.filter(requested_by="bob").update(requested_by='=HYPERLINK("http://x")')
    response = client.get(url(facts, format="csv", kind="rollout"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:4] == ["at", "kind", "summary", "actor"]
    [row] = rows[1:]
    assert row[3] == '\'=HYPERLINK("http://x")'
    assert all(not cell.startswith(("=", "+", "-", "@")) for cell in row)


def test_a_secret_s_values_are_never_shown(client, facts):
    client.force_login(user("viewer", "viewer"))
    for fmt in ("", "csv", "json"):
        response = client.get(url(facts, format=fmt) if fmt else url(facts))
        assert response.status_code == 200
        assert SECRET_VALUE not in response.content.decode()
        assert "password" in response.content.decode()  # the key's name is


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("format=xml", "format"),
        ("at=yesterday", "at"),
        ("at=2026-13-45T99:99", "at"),
        (f"at={'9' * 500}", "at"),
        ("from=1999-01-01T00:00", "from"),
        ("kind=everything", "kind"),
        ("source=" + "a" * 300, "source"),
        ("page=101", "page"),
        ("from=2026-01-01T00:00&to=2026-03-01T00:00", "31 days"),
    ],
)
def test_bad_input_is_a_400_with_the_reason(client, facts, query, message):
    client.force_login(user("viewer", "viewer"))
    response = client.get(f"{reverse('timeline', args=['local', 'demo'])}?{query}")
    assert response.status_code == 400
    assert message in response.content.decode()


def test_a_scoped_viewer_sees_its_namespace_only_whatever_the_url_says(client, facts):
    client.force_login(user("scoped", "viewer", ["local/demo"]))
    assert client.get(url(facts)).status_code == 200
    hostile = [
        url(facts, namespace="shop"),  # another namespace
        url(facts, cluster="other"),  # another cluster's name
        url(facts, cluster="other", format="json"),
        url(facts, namespace="shop", at=moment(facts, 45), format="csv"),  # a hostile ?at=
        reverse("workload-timeline", args=["local", "shop", "Deployment", "cart"]),
        reverse("workload-timeline", args=["other", "demo", "Deployment", "env-demo"]),
    ]
    for address in hostile:
        response = client.get(address)
        assert response.status_code == 404, address
        assert "shop-config" not in response.content.decode() and "other-a" not in response.content.decode()
    too_long = reverse("timeline", args=["local", "d" * 300])
    assert client.get(too_long).status_code == 404
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ACCESS_DENIED, actor="scoped").count() == len(hostile)
    # Within its namespace, nothing of the others leaks in.
    mine = json.loads(client.get(url(facts, format="json")).content)["entries"]
    assert mine and all("shop" not in json.dumps(entry) and "other-a" not in json.dumps(entry) for entry in mine)


def test_a_get_writes_nothing(client, facts):
    client.force_login(user("viewer", "viewer"))
    client.get(url(facts))  # the session is written once, at login's first request
    before = (AuditEvent.objects.count(), VerdictChange.objects.count(), Pod.objects.count())
    for fmt in ("", "csv", "json"):
        assert client.get(url(facts, format=fmt) if fmt else url(facts)).status_code == 200
    assert (AuditEvent.objects.count(), VerdictChange.objects.count(), Pod.objects.count()) == before
    assert client.post(url(facts)).status_code == 405


def test_entries_come_a_page_at_a_time(client, facts, monkeypatch):
    monkeypatch.setattr("drift.timeline.PAGE_SIZE", 4)
    client.force_login(user("viewer", "viewer"))
    first = client.get(url(facts)).content.decode()
    assert first.count('class="entry ') == 4 and ">Later</a>" in first
    pages = [client.get(url(facts, page=str(number))).content.decode() for number in (2, 3)]
    assert [page.count('class="entry ') for page in pages] == [4, 3]
    assert ">Later</a>" in pages[0] and ">Later</a>" not in pages[1] and ">Earlier</a>" in pages[1]


def test_the_audit_log_and_the_timeline_link_to_each_other(client, facts):
    client.force_login(user("viewer", "viewer"))
    entry = AuditEvent.objects.create(
        actor="driftwatch", action=AuditEvent.Action.CONFIG_CHANGED, cluster_name="local", namespace="demo",
        object_kind="ConfigMap", object_name="env-config", message="ConfigMap demo/env-config changed",
    )  # fmt: skip
    audit = client.get(reverse("audit")).content.decode()
    timeline = reverse("timeline", args=["local", "demo"])
    assert f'class="on-timeline" href="{timeline}?at=' in audit
    at = quote(timezone.localtime(entry.at).isoformat(timespec="seconds"))
    back = client.get(f"{timeline}?at={at}")
    assert back.status_code == 200
    # The hour around the entry's moment.
    start = timezone.localtime(entry.at.replace(microsecond=0) - timedelta(minutes=30))
    assert f'name="from" step="1" value="{start:%Y-%m-%dT%H:%M:%S}"' in back.content.decode()
    # A version's entry links to the audit log's entries about it, on its day.
    page = client.get(url(facts)).content.decode()
    assert "/audit/?action=config.&amp;cluster=local&amp;namespace=demo&amp;q=env-config" in page


def test_its_queries_do_not_grow_with_the_pods(client, facts):
    client.force_login(user("viewer", "viewer"))
    client.get(url(facts))

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url(facts)).status_code == 200
        return len(captured)

    few = queries()
    for number in range(30):
        crashed = facts.pod("env-demo", f"env-x{number}", [{"source_name": "env-config"}], started_minutes_ago=9)
        ContainerInstance.objects.filter(pod=crashed).update(termination_reason="Error", finished_at=facts.at(8))
    assert queries() == few


def test_point_in_time_links_to_the_timeline_around_its_moment(client, facts):
    client.force_login(user("viewer", "viewer"))
    then = client.get(f"{reverse('namespace', args=['local', 'demo'])}?at={moment(facts, 30)}").content.decode()
    assert f'class="timeline-link" href="{reverse("timeline", args=["local", "demo"])}?at=' in then
    tab = reverse("workload-timeline", args=["local", "demo", "Deployment", "env-demo"])
    workload = reverse("workload", args=["local", "demo", "Deployment", "env-demo"])
    assert f'href="{tab}?at=' in client.get(f"{workload}?at={moment(facts, 30)}").content.decode()
