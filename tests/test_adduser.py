import io

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.core.management.base import CommandError

from drift.models import Membership

pytestmark = pytest.mark.django_db


def adduser(monkeypatch, *args, password="correct horse battery"):
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    call_command("adduser", *args, stdout=io.StringIO())


def test_it_creates_an_operator_limited_to_namespaces(monkeypatch):
    adduser(monkeypatch, "olga", "--role", "operator", "--namespace", "demo")
    membership = Membership.objects.get(user__username="olga")
    assert membership.role == "operator"
    assert membership.may_roll_out("demo")
    assert not membership.may_roll_out("kube-system")
    assert authenticate(username="olga", password="correct horse battery") is not None


def test_a_viewer_may_not_roll_out(monkeypatch):
    adduser(monkeypatch, "vera", "--role", "viewer")
    assert not Membership.objects.get(user__username="vera").may_roll_out("demo")


def test_a_weak_password_or_duplicate_is_refused(monkeypatch):
    with pytest.raises(CommandError, match="password rejected"):
        adduser(monkeypatch, "weak", "--role", "viewer", password="password")
    adduser(monkeypatch, "vera", "--role", "viewer")
    with pytest.raises(CommandError, match="already exists"):
        adduser(monkeypatch, "vera", "--role", "viewer")
