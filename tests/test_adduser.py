import io
import re

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.core.management.base import CommandError

from drift.models import AuditEvent, Membership

pytestmark = pytest.mark.django_db


def adduser(monkeypatch, *args, password="correct horse battery"):
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    call_command("adduser", *args, stdout=io.StringIO())


def test_it_creates_an_operator_limited_to_namespaces(monkeypatch):
    adduser(monkeypatch, "olga", "--role", "operator", "--namespace", "local/demo", "--namespace", "staging/*")
    membership = Membership.objects.get(user__username="olga")
    assert membership.role == "operator"
    assert membership.may_roll_out("local", "demo")
    assert not membership.may_roll_out("local", "kube-system")
    assert not membership.may_roll_out("prod", "demo"), "a scope names its cluster"
    assert membership.may_roll_out("staging", "anything")
    assert authenticate(username="olga", password="correct horse battery") is not None


def test_the_new_user_is_recorded_with_who_ran_the_command_and_never_the_password(monkeypatch):
    adduser(monkeypatch, "olga", "--role", "operator", "--namespace", "local/demo", "--actor", "root@host")
    event = AuditEvent.objects.get(action=AuditEvent.Action.USER_CREATED, object_name="olga")
    assert event.actor == "root@host"
    assert event.detail["scopes"] == ["local/demo"]
    assert "correct horse" not in str(event.message) + str(event.detail)


def test_a_viewer_may_not_roll_out(monkeypatch):
    adduser(monkeypatch, "vera", "--role", "viewer")
    assert not Membership.objects.get(user__username="vera").may_roll_out("local", "demo")


def test_a_weak_password_or_duplicate_is_refused(monkeypatch):
    with pytest.raises(CommandError, match="password rejected"):
        adduser(monkeypatch, "weak", "--role", "viewer", password="password")
    adduser(monkeypatch, "vera", "--role", "viewer")
    with pytest.raises(CommandError, match="already exists"):
        adduser(monkeypatch, "vera", "--role", "viewer")


@pytest.mark.parametrize(
    ("scopes", "words"),
    [
        (["demo"], "must name the cluster: CLUSTER/NAMESPACE"),
        ([], "an operator needs --namespace CLUSTER/NAMESPACE"),
        (["local/../victim"], "not a Kubernetes namespace name"),
        (["local/Demo"], "not a Kubernetes namespace name"),
        (["lo cal/demo"], "is not a cluster name"),
    ],
)
def test_a_scope_that_does_not_name_the_cluster_is_refused(monkeypatch, scopes, words):
    args = [arg for scope in scopes for arg in ("--namespace", scope)]
    with pytest.raises(CommandError, match=re.escape(words)):
        adduser(monkeypatch, "olga", "--role", "operator", *args)
    assert not Membership.objects.exists()


def test_every_cluster_is_said_explicitly(monkeypatch):
    adduser(monkeypatch, "root", "--role", "operator", "--namespace", "*/*")
    membership = Membership.objects.get(user__username="root")
    assert membership.may_roll_out("prod", "kube-system")


@pytest.mark.parametrize(
    ("scopes", "cluster", "namespace", "allowed"),
    [
        (["local/demo"], "local", "demo", True),
        (["local/demo"], "prod", "demo", False),
        (["local/demo"], "local", "other", False),
        (["local/*"], "local", "other", True),
        (["local/*"], "prod", "other", False),
        (["*/demo"], "prod", "demo", True),
        (["*/*"], "prod", "kube-system", True),
        ([], "local", "demo", False),
        (["demo"], "local", "demo", False),
        (["local/demo", "prod/web"], "prod", "web", True),
    ],
)
def test_operator_scopes(scopes, cluster, namespace, allowed):
    membership = Membership(role="operator", namespaces=scopes)
    assert membership.may_roll_out(cluster, namespace) is allowed
    assert not Membership(role="viewer", namespaces=scopes).may_roll_out(cluster, namespace)


def test_the_migration_keeps_what_each_membership_allowed(django_db_blocker):
    """Old memberships, as 0001-0004 stored them, converted by 0005_rollout_trust (run on a real database)."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("drift", "0004_cluster_file_probes")], [("drift", "0005_rollout_trust")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    User = old_apps.get_model("auth", "User")
    OldMembership = old_apps.get_model("drift", "Membership")
    rows = {"all": ("operator", []), "some": ("operator", ["demo", "shop"]), "reader": ("viewer", [])}
    for name, (role, namespaces) in rows.items():
        OldMembership.objects.create(user=User.objects.create(username=name), role=role, namespaces=namespaces)
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    converted = dict(Membership.objects.values_list("user__username", "namespaces"))
    assert converted == {"all": ["*/*"], "some": ["*/demo", "*/shop"], "reader": []}
