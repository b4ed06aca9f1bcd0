import sys
from argparse import ArgumentParser

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from drift.audit import record_user_change
from drift.models import SCOPE_FORM, AuditEvent, Membership, Role, parse_scope


class Command(BaseCommand):
    help = "Create a user with a role; the password is read from standard input (first line)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", choices=[role.value for role in Role], required=True)
        parser.add_argument(
            "--namespace",
            action="append",
            default=[],
            metavar="CLUSTER/NAMESPACE",
            help="where an operator may roll out: CLUSTER/NAMESPACE, CLUSTER/* or */* (repeatable; required for "
            "an operator)",
        )
        parser.add_argument("--superuser", action="store_true", help="also give access to Django admin")
        parser.add_argument("--actor", default="driftwatch", help="who to record in the audit history")

    def handle(self, *args: object, **options: object) -> None:
        username = str(options["username"])
        password = sys.stdin.readline().rstrip("\n")
        if not password:
            raise CommandError("no password on standard input")
        given = options["namespace"]
        scopes = _scopes(str(options["role"]), [str(item) for item in given] if isinstance(given, list) else [])
        create_user(username, password, str(options["role"]), scopes, bool(options["superuser"]), str(options["actor"]))
        self.stdout.write(f"created {options['role']} {username}")


def create_user(username: str, password: str, role: str, scopes: list[str], superuser: bool, actor: str) -> None:
    """The user, its membership and their audit entry (also the demo's admin: `demologin`)."""
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise CommandError(f"user {username!r} already exists")
    user = User(username=username)
    try:
        validate_password(password, user)
    except ValidationError as error:
        raise CommandError("password rejected: " + " ".join(error.messages)) from None
    with transaction.atomic():
        user.set_password(password)
        user.is_staff = user.is_superuser = superuser
        user.save()
        Membership.objects.create(user=user, role=role, namespaces=scopes)
        record_user_change(
            actor,
            username,
            AuditEvent.Action.USER_CREATED,
            f"{username} created as {role}" + (f" for {', '.join(scopes)}" if scopes else ""),
            detail={"role": role, "scopes": scopes, "superuser": superuser},
        )


def _scopes(role: str, given: list[str]) -> list[str]:
    """The operator's scopes, each naming its cluster. No scope never means everywhere: say `*/*`."""
    if role != Role.OPERATOR:
        if given:
            raise CommandError("--namespace is for operators: a viewer reads everything and rolls out nothing")
        return []
    if not given:
        raise CommandError(f"an operator needs --namespace {SCOPE_FORM}; for every cluster say --namespace '*/*'")
    for scope in given:
        try:
            parse_scope(scope)
        except ValueError as error:
            raise CommandError(str(error)) from None
    return sorted(set(given))
