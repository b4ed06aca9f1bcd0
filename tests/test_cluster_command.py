"""`manage.py cluster add|list|remove`: a cluster is saved only when its API server answers."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from drift.models import AuditEvent, Cluster

pytestmark = pytest.mark.django_db


def add(name, *args):
    out = io.StringIO()
    call_command("cluster", "add", name, *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("{not: [valid yaml", "malformed", id="not-yaml"),
        pytest.param("apiVersion: v1\nkind: Config\nclusters: []\n", "not usable", id="no-contexts"),
        pytest.param("\x00\x01\x02binary", "malformed", id="binary"),
        pytest.param(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {cluster: x, user: u}\n"
            "clusters:\n- name: x\n  cluster: {server: 'https://127.0.0.1:1', certificate-authority-data: '!!notbase64'}\n"
            "users:\n- name: u\n  user: {token: t}\n",
            "not usable",
            id="bad-certificate-data",
        ),
    ],
)
def test_a_malformed_kubeconfig_fails_cleanly_and_saves_nothing(tmp_path, content, expected):
    path = tmp_path / "kubeconfig"
    path.write_text(content)
    with pytest.raises(CommandError) as failure:
        add("broken", "--kubeconfig", str(path))
    message = str(failure.value)
    assert expected in message
    assert "\n" not in message
    assert not Cluster.objects.exists()
    assert not AuditEvent.objects.exists()


def test_a_missing_kubeconfig_is_named(tmp_path):
    with pytest.raises(CommandError, match="kubeconfig not found"):
        add("gone", "--kubeconfig", str(tmp_path / "nope"))
    assert not Cluster.objects.exists()


def test_an_unreachable_api_server_fails_cleanly(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {cluster: x, user: u}\n"
        "clusters:\n- name: x\n  cluster: {server: 'https://127.0.0.1:9', insecure-skip-tls-verify: true}\n"
        "users:\n- name: u\n  user: {token: t}\n"
    )
    with pytest.raises(CommandError, match="unreachable"):
        add("far", "--kubeconfig", str(path))
    assert not Cluster.objects.exists()


def test_an_unknown_context_is_named(kubeconfig):
    with pytest.raises(CommandError, match="not usable"):
        add("local", "--kubeconfig", str(kubeconfig), "--context", "no-such-context")
    assert not Cluster.objects.exists()


@pytest.mark.cluster
def test_it_adds_lists_and_removes_a_reachable_cluster(kubeconfig):
    assert "added cluster local (Kubernetes v1.34" in add("local", "--kubeconfig", str(kubeconfig))
    cluster = Cluster.objects.get(name="local")
    assert cluster.server_version.startswith("v1.34")

    listing = io.StringIO()
    call_command("cluster", "list", stdout=listing)
    assert listing.getvalue().startswith("local\t")

    with pytest.raises(CommandError, match="already registered"):
        add("local", "--kubeconfig", str(kubeconfig))

    call_command("cluster", "remove", "local", stdout=io.StringIO())
    assert not Cluster.objects.exists()
    actions = list(AuditEvent.objects.order_by("at").values_list("action", flat=True))
    assert actions == ["cluster.added", "cluster.removed"]


@pytest.mark.cluster
def test_registering_the_same_api_server_again_warns_naming_the_earlier_registration(kubeconfig):
    add("local", "--kubeconfig", str(kubeconfig))
    server = Cluster.objects.get(name="local").api_server
    assert server.startswith("127.0.0.1:") and server.rsplit(":", 1)[1].isdigit(), server

    out, err = io.StringIO(), io.StringIO()
    call_command("cluster", "add", "local-again", "--kubeconfig", str(kubeconfig), stdout=out, stderr=err)
    assert f"API server {server}" in out.getvalue()
    assert f"warning: local-again is the API server {server} that is already registered as local" in err.getvalue()
    assert Cluster.objects.count() == 2, "a warning, not a refusal: a second name may be meant (another context)"


@pytest.mark.cluster
def test_a_registration_from_before_the_address_was_kept_is_still_recognised(kubeconfig):
    add("old", "--kubeconfig", str(kubeconfig))
    Cluster.objects.filter(name="old").update(api_server="")
    err = io.StringIO()
    call_command("cluster", "add", "new", "--kubeconfig", str(kubeconfig), stdout=io.StringIO(), stderr=err)
    assert "already registered as old" in err.getvalue()


@pytest.mark.cluster
def test_another_api_server_brings_no_warning(kubeconfig, tmp_path):
    add("local", "--kubeconfig", str(kubeconfig))
    Cluster.objects.filter(name="local").update(api_server="10.0.0.1:6443")
    err = io.StringIO()
    call_command("cluster", "add", "second", "--kubeconfig", str(kubeconfig), stdout=io.StringIO(), stderr=err)
    assert err.getvalue() == ""
