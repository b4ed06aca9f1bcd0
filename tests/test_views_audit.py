"""The audit log page: filters, paging, escaping, and the CSV export of the same filtered entries."""

import csv
import html
import io
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from drift.models import AuditEvent, RefusedAttempt
from tests.facts import user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]


@pytest.fixture
def events(client):
    now = timezone.now()
    rows = [
        (
            now - timedelta(days=3),
            "driftwatch",
            "config.changed",
            "local",
            "demo",
            "ConfigMap",
            "env-config",
            "ConfigMap demo/env-config changed (changed: log_level)",
        ),
        (
            now - timedelta(hours=2),
            "olga",
            "rollout.requested",
            "local",
            "demo",
            "Deployment",
            "env-demo",
            "rollout of Deployment/env-demo -n demo requested",
        ),
        (
            now - timedelta(hours=1),
            "olga",
            "rollout.completed",
            "local",
            "demo",
            "Deployment",
            "env-demo",
            "rollout of Deployment/env-demo -n demo complete",
        ),
        (
            now - timedelta(minutes=30),
            "vera",
            "access.denied",
            "local",
            "demo",
            "Deployment",
            "env-demo",
            "vera (viewer) may not roll out in namespace demo",
        ),
        (now - timedelta(minutes=20), "admin", "cluster.added", "prod", "", "", "", "cluster prod added"),
        (
            now - timedelta(minutes=10),
            "mallory",
            "user.login_failed",
            "",
            "",
            "",
            "",
            '=HYPERLINK("http://evil")<script>x</script>',
        ),
    ]
    for at, actor, action, cluster, namespace, kind, name, message in rows:
        AuditEvent.objects.create(
            at=at, actor=actor, action=action, cluster_name=cluster, namespace=namespace, object_kind=kind,
            object_name=name, message=message,
        )  # fmt: skip
    client.force_login(user("vera", "viewer"))  # itself the newest entry: user.login
    return client


def shown_actions(response):
    return [event.action for event in response.context["page"].object_list]


def test_it_lists_everything_newest_first(events):
    response = events.get(reverse("audit"))
    assert shown_actions(response) == [
        "user.login", "user.login_failed", "cluster.added", "access.denied", "rollout.completed", "rollout.requested", "config.changed",
    ]  # fmt: skip
    assert b"7 entries" in response.content


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"action": "rollout."}, ["rollout.completed", "rollout.requested"]),
        ({"action": "access.denied"}, ["access.denied"]),
        ({"actor": "olga"}, ["rollout.completed", "rollout.requested"]),
        ({"cluster": "prod"}, ["cluster.added"]),
        ({"namespace": "demo", "q": "env-config"}, ["config.changed"]),
        ({"q": "may not roll out"}, ["access.denied"]),
        ({"since": (timezone.now() - timedelta(days=1)).date().isoformat(), "action": "config."}, []),
        ({"until": (timezone.now() - timedelta(days=2)).date().isoformat()}, ["config.changed"]),
        ({"action": "no.such", "since": "garbage"}, None),  # a bad value is ignored, not an error
    ],
)
def test_it_filters(events, query, expected):
    response = events.get(reverse("audit"), query)
    assert response.status_code == 200
    if expected is None:
        assert len(shown_actions(response)) == 7
    else:
        assert shown_actions(response) == expected


def test_messages_are_escaped(events):
    content = events.get(reverse("audit")).content.decode()
    assert "&lt;script&gt;x&lt;/script&gt;" in content
    assert "<script>x</script>" not in content


def test_htmx_gets_the_results_only_and_the_csv_link_keeps_the_filters(events):
    response = events.get(
        reverse("audit"), {"actor": "olga"}, headers={"HX-Request": "true", "HX-Target": "audit-results"}
    )
    content = response.content.decode()
    assert content.lstrip().startswith('<section id="audit-results"')
    assert 'href="/audit.csv?actor=olga"' in content


def test_it_pages_a_long_history(events):
    for index in range(120):
        AuditEvent.objects.create(actor="driftwatch", action="config.changed", message=f"change {index}")
    first = events.get(reverse("audit"))
    second = events.get(reverse("audit"), {"page": 2})
    assert len(first.context["page"].object_list) == 100
    assert len(second.context["page"].object_list) == 27
    assert b'href="?page=2">Older</a>' in first.content


def read_csv(response):
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="driftwatch-audit-')
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_csv_export_holds_the_filtered_entries(events):
    rows = read_csv(events.get(reverse("audit-csv"), {"action": "rollout."}))
    assert rows[0] == ["at", "actor", "action", "cluster", "namespace", "kind", "name", "message"]
    assert [row[1:7] for row in rows[1:]] == [
        ["olga", "rollout.completed", "local", "demo", "Deployment", "env-demo"],
        ["olga", "rollout.requested", "local", "demo", "Deployment", "env-demo"],
    ]


def test_the_csv_export_defuses_spreadsheet_formulas(events):
    rows = read_csv(events.get(reverse("audit-csv"), {"actor": "mallory"}))
    assert rows[1][7] == '\'=HYPERLINK("http://evil")<script>x</script>'


def test_the_csv_export_requires_login(client):
    response = client.get(reverse("audit-csv"))
    assert response.status_code == 302


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"until": "9999-12-31"}, "Until: Give a date between 2000-01-01 and 2999-12-31 (YYYY-MM-DD)."),
        ({"since": "0001-01-01"}, "From: Give a date between 2000-01-01 and 2999-12-31"),
        ({"since": "2026-02-30"}, "From: Give a date between"),
        ({"since": "2026-05-02", "until": "2026-05-01"}, "Until: Until must not be before From."),
        ({"action": "no.such"}, "Action: Select a valid choice."),
        ({"actor": "m" * 151}, "Actor: Ensure this value has at most 150 characters (it has 151)."),
        ({"q": "x" * 201}, "Text: Ensure this value has at most 200 characters (it has 201)."),
        ({"namespace": "n" * 254}, "Namespace: Ensure this value has at most 253 characters"),
    ],
)
def test_a_hostile_filter_is_left_out_and_said_never_a_500(events, query, message):
    response = events.get(reverse("audit"), query)
    assert response.status_code == 200
    content = html.unescape(response.content.decode())
    assert "Some filters were left out:" in content
    assert message in content
    assert len(shown_actions(response)) == 7  # the bad filter filters nothing


def test_the_csv_export_answers_400_with_the_reason_for_a_bad_filter(events):
    response = events.get(reverse("audit-csv"), {"until": "9999-12-31"})
    assert response.status_code == 400
    assert "Until: Give a date between 2000-01-01 and 2999-12-31" in response.content.decode()


def test_an_over_long_query_parameter_is_400_not_500(events):
    response = events.get(reverse("audit"), {"q": "x" * 5_000})
    assert response.status_code == 400
    assert "The query parameter 'q' is longer than 4096 characters." in response.content.decode()


def one_change_as_recorded(resource_version="4711", author="alice@example.com"):
    """What a change of env-config writes today: the snapshot's entry (actor driftwatch, the version it saw), then,
    once the API server's audit events name the person, the attribution's entry for the same version."""
    seen = AuditEvent.objects.create(
        actor="driftwatch", action=AuditEvent.Action.CONFIG_CHANGED, cluster_name="local", namespace="demo",
        object_kind="ConfigMap", object_name="env-config",
        message="ConfigMap demo/env-config changed by kubectl-patch (changed: log_level)",
        detail={"resource_version": resource_version, "client": "kubectl-patch", "changed": ["log_level"]},
    )  # fmt: skip
    named = AuditEvent.objects.create(
        actor=author, action=AuditEvent.Action.CONFIG_AUTHOR, cluster_name="local", namespace="demo",
        object_kind="ConfigMap", object_name="env-config",
        message=f"ConfigMap demo/env-config changed by {author} via kubectl-patch",
        detail={"resource_version": resource_version, "client": "kubectl-patch", "confidence": "confirmed"},
    )  # fmt: skip
    return seen, named


def audit_table_rows(response):
    body = re.search(r"<tbody>(.*?)</tbody>", response.content.decode().split('id="audit-results"')[1], re.S).group(1)
    return [re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", row))).strip() for row in re.findall(
        r"<tr[^>]*>(.*?)</tr>", body, re.S)]  # fmt: skip


def test_a_change_and_who_made_it_are_one_row_with_the_person_first(client):
    client.force_login(user("vera", "viewer"))
    one_change_as_recorded()
    response = client.get(reverse("audit"), {"action": "config."})
    rows = audit_table_rows(response)
    assert len(rows) == 1, rows
    assert rows[0].split(" ")[2] == "alice@example.com", "when, then the person"
    assert "configuration changed" in rows[0]
    assert "seen by driftwatch" in rows[0], "who recorded it stays said"
    assert "changed by alice@example.com via kubectl-patch" in rows[0], "the attribution's own words stay shown"
    assert b"1 entry" in response.content


def test_the_record_keeps_both_entries_and_the_csv_exports_both(client):
    client.force_login(user("vera", "viewer"))
    one_change_as_recorded()
    rows = read_csv(client.get(reverse("audit-csv"), {"action": "config."}))
    assert [row[1:3] for row in rows[1:]] == [
        ["alice@example.com", "config.changed_by"],
        ["driftwatch", "config.changed"],
    ]


def test_the_person_finds_their_changes_by_the_actor_filter(client):
    client.force_login(user("vera", "viewer"))
    one_change_as_recorded()
    assert shown_actions(client.get(reverse("audit"), {"actor": "alice@example.com"})) == ["config.changed"]


def test_an_attribution_of_a_version_without_a_change_entry_stays_its_own_row(client):
    client.force_login(user("vera", "viewer"))
    one_change_as_recorded()
    AuditEvent.objects.create(
        actor="bob", action=AuditEvent.Action.CONFIG_AUTHOR, cluster_name="local", namespace="demo",
        object_kind="ConfigMap", object_name="env-config", message="first version by bob",
        detail={"resource_version": "1"},
    )  # fmt: skip
    assert shown_actions(client.get(reverse("audit"), {"action": "config."})) == ["config.changed_by", "config.changed"]


def test_actions_read_as_words_and_objects_link_to_their_pages(events):
    AuditEvent.objects.create(
        actor="olga", action=AuditEvent.Action.ROLLOUT_COMPLETED, cluster_name="local", namespace="demo",
        object_kind="Deployment", object_name="env-demo", message="done", detail={"rollout": 42},
    )  # fmt: skip
    content = events.get(reverse("audit")).content.decode()
    assert "<code>rollout.completed</code>" not in content
    assert "rollout completed" in content
    assert f'href="{reverse("source", args=["local", "demo", "configmaps", "env-config"])}"' in content
    assert f'href="{reverse("workload", args=["local", "demo", "Deployment", "env-demo"])}"' in content
    assert f'href="{reverse("rollout", args=[42])}"' in content
    options = re.findall(r'<option value="rollout.completed"[^>]*>([^<]*)</option>', content)
    assert options == ["rollout completed"], "the filter names actions as the table does"


def test_counted_refusals_name_their_action_in_words_too(client):
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    RefusedAttempt.objects.create(action=AuditEvent.Action.CSRF_FAILED, hour=hour, count=300, last_message="x")
    client.force_login(user("vera", "viewer"))
    content = html.unescape(client.get(reverse("audit")).content.decode())
    section = content.split('id="counted-refusals"')[1].split("</section>")[0]
    assert "request refused (CSRF)" in section and ">access.csrf_failed<" not in section
