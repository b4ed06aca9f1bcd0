"""How to log in to the demo, on every run: `make demo` creates its admin once, with a random password kept in a
file only its owner reads (beside the demo's `.demo-secret-key`), and says it again each time; where that file is
gone or no longer holds the password, it prints the one command that sets a new one."""

import os
import secrets
from argparse import ArgumentParser
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from dashboard.management.commands.adduser import create_user
from drift.audit import record_user_change
from drift.models import AuditEvent, Role


class Command(BaseCommand):
    help = "Create the demo's admin (operator everywhere) or say how to log in as it."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--password-file", required=True, help="where the password is kept (mode 0600)")
        parser.add_argument("--reset", action="store_true", help="set a new password and keep it in the file")
        parser.add_argument("--actor", default="demo", help="who to record in the audit history")

    def handle(self, *args: object, **options: object) -> None:
        username = str(options["username"])
        password_file = Path(str(options["password_file"]))
        actor = str(options["actor"])
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            password = secrets.token_urlsafe(12)
            create_user(username, password, Role.OPERATOR, ["*/*"], superuser=True, actor=actor)
            keep_password(password_file, password)
            self.stdout.write(f"created {username}")
        elif options["reset"]:
            password = secrets.token_urlsafe(12)
            with transaction.atomic():
                user.set_password(password)
                user.save(update_fields=["password"])
                record_user_change(
                    actor, username, AuditEvent.Action.USER_CHANGED, f"{username}'s password set anew by the demo"
                )
            keep_password(password_file, password)
            self.stdout.write(f"set a new password for {username}")
        else:
            password = kept_password(password_file)
            if not password or not user.check_password(password):
                reset = f".venv/bin/python manage.py demologin {username} --password-file {password_file} --reset"
                said = "is not in" if not password else "was changed since it was kept in"
                self.stdout.write(f"the password of {username} {said} {password_file}; set a new one with:\n  {reset}")
                return
        self.stdout.write(f"log in as {username} with password {password} (kept in {password_file}, mode 0600)")


def keep_password(path: Path, password: str) -> None:
    """Written readable by its owner only, also when the file was there before with a looser mode."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, f"{password}\n".encode())
    finally:
        os.close(descriptor)


def kept_password(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}") from None
