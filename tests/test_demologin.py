"""A second `make demo` says how to log in: `manage.py demologin` keeps the admin's password in a file only its
owner reads, says it again on every run, and prints the one command that sets a new one when it cannot."""

import io
import stat

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from drift.models import AuditEvent, Membership

pytestmark = pytest.mark.django_db


def demologin(password_file, *args):
    out = io.StringIO()
    call_command("demologin", "admin", "--password-file", str(password_file), *args, stdout=out)
    return out.getvalue()


def test_the_first_run_creates_the_admin_and_keeps_its_password_for_its_owner_only(tmp_path):
    password_file = tmp_path / ".demo-admin-password"
    said = demologin(password_file)
    password = password_file.read_text().strip()
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert f"log in as admin with password {password}" in said
    assert authenticate(username="admin", password=password) is not None
    assert Membership.objects.get(user__username="admin").may_roll_out("local", "demo")
    assert AuditEvent.objects.get(action=AuditEvent.Action.USER_CREATED).actor == "demo"
    assert password not in str(list(AuditEvent.objects.values()))


def test_a_second_run_says_the_same_password_again(tmp_path):
    password_file = tmp_path / ".demo-admin-password"
    demologin(password_file)
    password = password_file.read_text().strip()
    assert f"log in as admin with password {password}" in demologin(password_file)
    assert get_user_model().objects.count() == 1


@pytest.mark.parametrize("case", ["file gone", "password changed"])
def test_where_the_file_cannot_say_it_the_one_command_that_sets_a_new_one_is_printed_and_works(tmp_path, case):
    password_file = tmp_path / ".demo-admin-password"
    demologin(password_file)
    if case == "file gone":
        password_file.unlink()
    else:
        user = get_user_model().objects.get(username="admin")
        user.set_password("changed elsewhere 1234")
        user.save()
    said = demologin(password_file)
    assert "log in as" not in said
    assert f"manage.py demologin admin --password-file {password_file} --reset" in said

    said = demologin(password_file, "--reset")
    password = password_file.read_text().strip()
    assert f"log in as admin with password {password}" in said
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert authenticate(username="admin", password=password) is not None
    assert AuditEvent.objects.filter(action=AuditEvent.Action.USER_CHANGED, object_name="admin").count() == 1


def test_a_kept_file_with_a_loose_mode_is_tightened_when_written(tmp_path):
    password_file = tmp_path / ".demo-admin-password"
    password_file.write_text("old\n")
    password_file.chmod(0o644)
    demologin(password_file)
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
