"""The restore pages: "Restore version #N" on a ConfigMap's page for operators allowed on its namespace, the
preview with the diff against the live content and the dry run, the confirmation refused (409, with the reason)
when the ConfigMap changed after the preview; viewers and operators of other namespaces get 403 and an
access.denied entry; a Secret's page says it cannot be restored."""

import re

import pytest
from django.urls import reverse

from drift.history import history
from drift.models import AuditEvent, Cluster
from drift.snapshot import snapshot
from drift.vocabulary import SourceKind
from tests.facts import Facts, user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]


def restore_url(cluster, namespace, name, version):
    return reverse("source-restore", args=[cluster, namespace, name, version.pk])


@pytest.fixture
def stored():
    facts = Facts.for_cluster()
    facts.run()
    facts.config = facts.source("env-config", (90, {"log_level": "INFO"}), (10, {"log_level": "DEBUG"}))
    facts.secret = facts.source("db", (90, {"password": "a"}), (10, {"password": "b"}), kind="Secret")
    return facts


def test_only_operators_on_its_namespace_see_and_may_use_restore(client, stored):
    first = stored.config.versions.order_by("first_seen").first()
    page = reverse("source", args=["local", "demo", "configmaps", "env-config"])

    client.force_login(user("viewer", "viewer"))
    assert "Restore version" not in client.get(page).content.decode()
    assert client.get(restore_url("local", "demo", "env-config", first)).status_code == 403
    client.force_login(user("elsewhere", "operator", ["local/shop"]))
    assert client.post(restore_url("local", "demo", "env-config", first), {"resource_version": "1"}).status_code == 403
    client.force_login(user("op", "operator", ["local/demo"]))
    assert "Restore version #1" in client.get(page).content.decode()
    assert "Restore version #2" not in client.get(page).content.decode()  # the current one
    denied = AuditEvent.objects.filter(action=AuditEvent.Action.ACCESS_DENIED).values_list("actor", flat=True)
    assert sorted(denied) == ["elsewhere", "viewer"]


def test_a_secret_cannot_be_restored_and_its_page_says_so(client, stored):
    client.force_login(user("op", "operator"))
    secret_version = stored.secret.versions.first()

    html = client.get(reverse("source", args=["local", "demo", "secrets", "db"])).content.decode()
    assert "Secrets cannot be restored" in html and "Restore version" not in html
    assert client.get(restore_url("local", "demo", "db", secret_version)).status_code == 404


@pytest.mark.cluster
def test_preview_then_refused_then_restored_through_the_pages(client, kubeconfig, kube, namespace):
    cluster = Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig), namespaces=[namespace])
    kube.config_map("app-config", {"level": "INFO"})
    snapshot(cluster)
    kube.edit_config_map("app-config", {"level": "DEBUG"})
    snapshot(cluster)
    first = history(cluster, namespace, SourceKind.CONFIG_MAP, "app-config")[0].version
    client.force_login(user("op", "operator", [f"local/{namespace}"]))
    url = restore_url("local", namespace, "app-config", first)

    shown = client.get(url).content.decode()
    assert "Server-side dry run: accepted" in shown and "DEBUG" in shown and "INFO" in shown
    previewed = re.search(r'name="resource_version" value="(\d+)"', shown).group(1)
    kube.edit_config_map("app-config", {"level": "WARN"})
    refused = client.post(url, {"resource_version": previewed})
    assert refused.status_code == 409 and "changed after the preview" in refused.content.decode()
    assert kube.core.read_namespaced_config_map("app-config", namespace).data == {"level": "WARN"}

    again = re.search(r'name="resource_version" value="(\d+)"', client.get(url).content.decode()).group(1)
    done = client.post(url, {"resource_version": again})
    assert done.status_code == 302
    assert kube.core.read_namespaced_config_map("app-config", namespace).data == {"level": "INFO"}
    actions = AuditEvent.objects.filter(actor="op", action__startswith="config.restore").order_by("id")
    assert [event.action for event in actions][-2:] == ["config.restore_requested", "config.restored"]
    assert AuditEvent.objects.filter(actor="op", action=AuditEvent.Action.RESTORED).count() == 1
