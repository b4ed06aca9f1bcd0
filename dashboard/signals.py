"""Every login, successful or not, lands in the audit history."""

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from drift.models import AuditEvent


@receiver(user_logged_in)
def audit_login(sender: object, request: HttpRequest, user: object, **kwargs: object) -> None:
    AuditEvent.objects.create(actor=user.get_username(), action=AuditEvent.Action.LOGIN, message="logged in")


@receiver(user_login_failed)
def audit_failed_login(sender: object, credentials: dict, request: HttpRequest | None = None, **kwargs: object) -> None:
    AuditEvent.objects.create(
        actor=str(credentials.get("username", ""))[:150],
        action=AuditEvent.Action.LOGIN_FAILED,
        message="login failed",
    )
