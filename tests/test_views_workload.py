"""The workload page: per pod, container and source the running version against the current one, the
verdict with its evidence, the rollout button for those who may use it, and the rollout history.
A forged rollout POST from a viewer is refused with 403 and audited; every POST needs its CSRF token."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from drift.models import AuditEvent, Rollout
from tests.facts import Facts, user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]


@pytest.fixture
def facts():
    facts = Facts.for_cluster()
    facts.source("env-config", (90, {"log_level": "INFO"}), (10, {"log_level": "DEBUG"}))
    facts.source("kube-root-ca.crt", (120, {"ca.crt": "-----BEGIN CERTIFICATE-----"}))
    ca = {
        "source_name": "kube-root-ca.crt",
        "mode": "projected",
        "mount_path": "/var/run/secrets/kubernetes.io/serviceaccount",
    }
    for name in ("env-demo-a", "env-demo-b"):
        facts.pod("env-demo", name, [{"source_name": "env-config"}, ca])
    facts.pod("lonely", "lonely", [{"source_name": "env-config"}], kind="Pod")
    facts.run()
    return facts


def page(client, name="env-demo", kind="Deployment", **kwargs):
    return client.get(reverse("workload", args=["local", "demo", kind, name]), **kwargs)


def login(client, role, namespaces=None):
    client.force_login(user(f"someone-{role}", role, namespaces))
    return client


def text(response):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_it_shows_what_each_container_runs_against_the_current_version(client, facts):
    content = text(page(login(client, "viewer")))
    assert "Deployment/env-demo" in content
    assert "2 stale" in content
    row = re.search(r"env-demo-a stale app ConfigMap env-config envFrom (.*?) env-demo-b", content).group(1)
    assert row.startswith(
        "#1 #2 diff stale env read at start — restart needed inferred : envFrom fixed at container start"
    )
    assert "changed at" in row
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row)  # stale since


def test_it_links_to_the_diff_between_the_running_and_current_versions(client, facts):
    html = page(login(client, "viewer")).content.decode()
    # Versions by their one name, #N (resourceVersion on hover), and the diff link by the same numbers.
    assert re.search(r'href="/clusters/local/demo/configmaps/env-config/\?a=1&amp;b=2">diff</a>', html)
    assert '<span class="version" title="resourceVersion 100">#1</span>' in html
    assert "rv 10" not in html


def test_it_folds_the_service_account_volume_away(client, facts):
    html = page(login(client, "viewer")).content.decode()
    main, folded = html.split('<details class="service-account">')
    assert "kube-root-ca.crt" not in main.split('id="pods-title"')[1]
    assert "kube-root-ca.crt (service-account token volume, in every pod)" in folded
    assert "2 fresh" in folded


def test_a_viewer_sees_no_rollout_button(client, facts):
    content = text(page(login(client, "viewer")))
    assert "Roll out" not in content
    assert "Your role may not roll out in namespace demo" in content


def test_an_operator_sees_the_button_only_in_her_namespaces(client, facts):
    assert "Roll out Deployment/env-demo" in text(page(login(client, "operator")))
    other = Client()
    other.force_login(user("otto", "operator", ["local/shop"]))
    assert "Roll out" not in text(page(other))


def test_a_bare_pod_gets_no_button_but_an_explanation(client, facts):
    content = text(page(login(client, "operator"), "lonely", "Pod"))
    assert "Roll out" not in content
    assert "A Pod cannot be rolled out by patching a template" in content


@pytest.mark.parametrize("endpoint", ["rollout-plan", "rollout-start"])
def test_a_forged_rollout_post_from_a_viewer_is_refused_and_audited(client, facts, endpoint):
    login(client, "viewer")
    form = {"workload": facts.cluster.workloads.get(name="env-demo").pk}

    response = client.post(reverse(endpoint), form)

    assert response.status_code == 403
    assert b"may not roll out in namespace demo" in response.content
    [denied] = AuditEvent.objects.filter(action="access.denied")
    assert (denied.actor, denied.namespace, denied.object_name) == ("someone-viewer", "demo", "env-demo")
    assert f"POST {reverse(endpoint)}" in denied.message
    assert not Rollout.objects.exists()


def test_a_forged_bulk_post_for_another_namespace_is_refused(client, facts):
    client.force_login(user("otto", "operator", ["local/shop"]))
    workload_id = facts.cluster.workloads.get(name="env-demo").pk
    response = client.post(reverse("rollout-bulk-start"), {"workload": [workload_id]})
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="access.denied", actor="otto").count() == 1
    assert not Rollout.objects.exists()


def test_every_post_needs_its_csrf_token(facts):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user("olga", "operator"))
    form = {"workload": facts.cluster.workloads.get(name="env-demo").pk}
    for endpoint in ("rollout-plan", "rollout-start", "rollout-bulk-plan", "rollout-bulk-start", "logout"):
        response = client.post(reverse(endpoint), form)
        assert response.status_code == 403, endpoint
        assert b"CSRF" in response.content
    assert not Rollout.objects.exists()


def test_the_page_carries_the_csrf_token_for_htmx(client, facts):
    html = page(login(client, "operator")).content.decode()
    assert re.search(r"hx-headers='\{\"X-CSRFToken\": \"\w+\"\}'", html)


def test_it_shows_the_rollout_history(client, facts):
    Rollout.objects.create(
        cluster=facts.cluster, kind="Deployment", namespace="demo", name="env-demo", requested_by="olga",
        annotation_key="driftwatch.io/config-hash", config_hash="ab" * 32, status="complete", generation=3,
        desired=2, updated=2, ready=2, available=2, message="complete: 2 of 2 updated",
    )  # fmt: skip
    Rollout.objects.create(
        cluster=facts.cluster, kind="Deployment", namespace="demo", name="other", requested_by="olga",
        annotation_key="k", status="refused",
    )  # fmt: skip
    content = text(page(login(client, "viewer")))
    history = content.split("Rollout history")[1]
    assert "olga Complete 2 / 2 abababababab… complete: 2 of 2 updated" in history
    assert "Refused" not in history


def test_htmx_refreshes_the_pods_and_the_history_as_partials(client, facts):
    login(client, "viewer")
    pods = page(client, headers={"HX-Request": "true", "HX-Target": "workload-pods"})
    history = page(client, headers={"HX-Request": "true", "HX-Target": "rollout-history"})
    assert pods.content.decode().lstrip().startswith('<section id="workload-pods"')
    assert 'hx-trigger="every 5s, rollout-finished from:body"' in pods.content.decode()
    assert history.content.decode().lstrip().startswith('<section id="rollout-history"')
    assert "HX-Request" in pods["Vary"]


def test_an_unknown_workload_is_404(client, facts):
    assert page(login(client, "viewer"), "nope").status_code == 404


# --- what the app does with a rewritten config file -----------------------------------------------------------


@pytest.fixture
def volume_facts(facts):
    """web reads web-config as a volume; the ConfigMap changed 20 minutes ago, after its pod started 30 ago."""
    facts.source("web-config", (90, {"app.conf": "a"}), (20, {"app.conf": "b"}))
    facts.pod("web", "web-a", [{"source_name": "web-config", "mode": "volume", "mount_path": "/etc/web"}])
    from drift import verdicts

    verdicts.facts_changed(facts.cluster)
    return facts


def web_rows():
    from drift import verdicts
    from drift.models import Cluster

    return [row for row in verdicts.rows(Cluster.objects.get(name="local")) if row.source.name == "web-config"]


def reload_url(name="web"):
    from drift.models import Workload

    return reverse("workload-reload", args=[Workload.objects.get(name=name).pk])


def test_a_volume_changed_after_its_pod_started_is_new_on_disk_only_and_says_how_to_be_sure(client, volume_facts):
    [row] = web_rows()
    assert row.verdict == "unreloaded"
    content = text(page(login(client, "viewer"), name="web"))
    assert "1 new on disk only" in content
    assert "not known to reload" in content and "restart to be sure" in content
    assert "Save" not in content, "a viewer sees no form"


def test_an_operator_declares_the_app_needs_a_restart_and_it_is_audited_and_judged_at_once(client, volume_facts):
    response = login(client, "operator", ["local/demo"]).post(reload_url(), {"container": "", "reload": "restart"})
    assert response.status_code == 302
    [row] = web_rows()
    assert row.verdict == "stale"
    assert "declared restart by someone-operator on the workload page" in row.reason
    [event] = AuditEvent.objects.filter(action=AuditEvent.Action.RELOAD_SET)
    assert event.actor == "someone-operator" and event.object_name == "web" and event.namespace == "demo"
    assert event.detail == {"container": "", "before": "", "after": "restart"}
    content = text(page(client, name="web"))
    assert "Every container: restart , set by someone-operator" in content

    client.post(reload_url(), {"container": "app", "reload": "hot"})
    [row] = web_rows()
    assert row.verdict == "fresh", "the container's own setting wins over the one for every container"
    client.post(reload_url(), {"container": "app", "reload": "clear"})
    client.post(reload_url(), {"container": "", "reload": "clear"})
    [row] = web_rows()
    assert row.verdict == "unreloaded"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.RELOAD_SET).count() == 4


@pytest.mark.parametrize(
    ("role", "namespaces"), [("viewer", None), ("operator", ["local/other"]), ("operator", ["elsewhere/demo"])]
)
def test_only_an_operator_of_the_workloads_own_namespace_may_set_it(client, volume_facts, role, namespaces):
    response = login(client, role, namespaces).post(reload_url(), {"container": "", "reload": "hot"})
    assert response.status_code == 403
    from drift.models import ReloadSetting

    assert not ReloadSetting.objects.exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ACCESS_DENIED, object_name="web").exists()
    [row] = web_rows()
    assert row.verdict == "unreloaded"


@pytest.mark.parametrize(
    "fields",
    [
        {"container": "../../etc", "reload": "hot"},  # not a container of the workload
        {"container": "x" * 300, "reload": "hot"},
        {"container": "", "reload": "always"},
        {"container": "<script>", "reload": "hot"},
    ],
)
def test_a_hostile_form_is_refused_with_a_message_and_changes_nothing(client, volume_facts, fields):
    from drift.models import ReloadSetting

    response = login(client, "operator").post(reload_url(), fields, follow=True)
    assert response.status_code == 200
    assert "Reload setting" in text(response)
    assert "<script> is not" not in response.content.decode(), "what the client sent is shown escaped"
    assert not ReloadSetting.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.RELOAD_SET).exists()


def test_the_setting_is_changed_by_post_only_and_names_a_workload_by_its_id(client, volume_facts):
    operator = login(client, "operator")
    assert operator.get(reload_url()).status_code == 405
    assert operator.post(reverse("workload-reload", args=[999999]), {"reload": "hot"}).status_code == 404
