"""ConfigMaps that change on their own (leader election, status) are ignored by a per-cluster list of name
patterns: no version, no audit entry, no consumption of them, each cycle."""

import pytest
from django.core.exceptions import ValidationError

from drift.clusters import register_cluster
from drift.ignoring import is_ignored, validate_patterns
from drift.models import AuditEvent, Cluster, Consumption, SnapshotRun, Source, SourceVersion
from drift.snapshot import snapshot
from tests.kube_helpers import deployment


@pytest.mark.parametrize(
    ("namespace", "name", "ignored"),
    [
        ("kube-system", "cluster-autoscaler-status", True),
        ("ingress", "ingress-controller-leader", True),
        ("apps", "my-operator-leader-election", True),
        ("kube-system", "kube-scheduler", True),
        ("apps", "kube-scheduler", False),  # only kube-system's, by a NAMESPACE/NAME pattern
        ("kube-system", "kube-root-ca.crt", False),
        ("demo", "env-config", False),
        ("demo", "leader-election-settings", False),
    ],
)
def test_the_default_patterns(namespace, name, ignored):
    assert is_ignored(Cluster().ignored_config_maps, namespace, name) is ignored


@pytest.mark.parametrize(
    "value",
    [
        "*-leader-election",  # not a list
        ["UPPER"],
        ["a/b/c"],
        ["with space"],
        [""],
        [42],
        ["x" * 300],
        ["p"] * 101,
    ],
    ids=["not-a-list", "upper-case", "two-slashes", "space", "empty", "number", "too-long", "too-many"],
)
def test_bad_patterns_are_refused_with_a_message(value):
    with pytest.raises(ValidationError):
        validate_patterns(value)


@pytest.mark.django_db
def test_the_list_is_validated_when_a_cluster_is_saved_from_a_form():
    cluster = Cluster(name="local", kubeconfig_path="/nonexistent", ignored_config_maps=["ok-*", "Bad Pattern"])
    with pytest.raises(ValidationError, match="not a name pattern"):
        cluster.full_clean()
    cluster.ignored_config_maps = ["ok-*", "kube-system/*-lock"]
    cluster.full_clean()


@pytest.mark.cluster
@pytest.mark.django_db
def test_an_ignored_config_map_writes_nothing_however_often_it_changes(kubeconfig, kube):
    kube.config_map("app-leader-election", {"holder": "pod-a"})
    kube.config_map("settings", {"mode": "a"})
    container = {
        "name": "app",
        "image": "nginx:1.27",
        "envFrom": [{"configMapRef": {"name": "settings"}}, {"configMapRef": {"name": "app-leader-election"}}],
    }
    kube.create_deployment(deployment("app", [container]))
    kube.wait_deployment_ready("app")
    cluster, _ = register_cluster("local", kubeconfig_path=str(kubeconfig))
    assert snapshot(cluster).status == SnapshotRun.Status.SUCCEEDED
    for holder in ("pod-b", "pod-c"):
        kube.edit_config_map("app-leader-election", {"holder": holder})
        assert snapshot(cluster).status == SnapshotRun.Status.SUCCEEDED

    assert not Source.objects.filter(name="app-leader-election").exists()
    assert not AuditEvent.objects.filter(object_name="app-leader-election").exists()
    consumed = set(
        Consumption.objects.filter(container__pod__namespace=kube.namespace).values_list("source_name", flat=True)
    )
    assert consumed == {"settings", "kube-root-ca.crt"}, "the service account token volume stays"
    assert SourceVersion.objects.filter(source__name="settings", source__namespace=kube.namespace).count() == 1

    # Taken off the list, it is recorded like any other from the next cycle on.
    Cluster.objects.filter(pk=cluster.pk).update(ignored_config_maps=[])
    cluster.refresh_from_db()
    snapshot(cluster)
    assert (
        SourceVersion.objects.filter(source__name="app-leader-election", source__namespace=kube.namespace).count() == 1
    )


@pytest.mark.django_db
def test_the_list_is_editable_in_admin_and_a_bad_pattern_is_refused_there(rf, admin_user):
    from django.contrib import admin
    from django.forms.models import model_to_dict

    cluster = Cluster.objects.create(name="local", kubeconfig_path="/nonexistent")
    request = rf.get("/admin/")
    request.user = admin_user
    form_class = admin.site._registry[Cluster].get_form(request, cluster)
    assert "ignored_config_maps" in form_class.base_fields
    data = {k: v for k, v in model_to_dict(cluster).items() if v is not None and k != "created_at"}
    data |= {"created_at_0": f"{cluster.created_at:%Y-%m-%d}", "created_at_1": f"{cluster.created_at:%H:%M:%S}"}
    refused = form_class(data={**data, "ignored_config_maps": '["ok-*", "Not A Pattern"]'}, instance=cluster)
    assert not refused.is_valid()
    assert "not a name pattern" in str(refused.errors["ignored_config_maps"])
    accepted = form_class(data={**data, "ignored_config_maps": '["ok-*", "kube-system/*-lock"]'}, instance=cluster)
    assert accepted.is_valid(), accepted.errors
    accepted.save()
    cluster.refresh_from_db()
    assert cluster.ignored_config_maps == ["ok-*", "kube-system/*-lock"]
