"""Every login, successful or not, and every lockout by the login throttle lands in the audit history."""

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from drift import audit
from drift.bounded import bounded
from drift.models import AuditEvent


@receiver(user_logged_in)
def audit_login(sender: object, request: HttpRequest, user: AbstractBaseUser, **kwargs: object) -> None:
    sso_detail = getattr(user, "sso_detail", None)
    if sso_detail is not None:
        audit.record(
            user.get_username(),
            AuditEvent.Action.LOGIN,
            f"logged in with single sign-on as {sso_detail['grant']}",
            detail=sso_detail,
        )
        return
    audit.record(user.get_username(), AuditEvent.Action.LOGIN, "logged in")


@receiver(user_login_failed)
def audit_failed_login(sender: object, credentials: dict, request: HttpRequest | None = None, **kwargs: object) -> None:
    if "username" not in credentials:
        return  # a single sign-on callback: dashboard.views.sso audits it with its reason
    username = str(credentials.get("username", ""))
    if get_user_model().objects.filter(username=username).exists():
        audit.record(username, AuditEvent.Action.LOGIN_FAILED, "login failed")
        return
    # A name no account has: anyone can try a new one each time, so these are counted, listed only a few an hour.
    audit.record_refusal(bounded(username, 150), AuditEvent.Action.LOGIN_FAILED, "login failed: no such user")


@receiver(user_locked_out)
def audit_lockout(
    sender: object, request: HttpRequest, username: str | None = None, ip_address: str | None = None, **kwargs: object
) -> None:
    paused = getattr(request, "login_pause_seconds", 0)  # dashboard.auth: the account name paused, not the address
    message = (
        f"login refused: {username} paused for {paused} s after {settings.DRIFTWATCH_LOGIN_FAILURE_LIMIT} "
        "failed logins from any address"
        if paused
        else f"login refused: locked out after {settings.AXES_FAILURE_LIMIT} failed logins "
        f"from {ip_address or 'an unknown address'}"
    )
    audit.record(
        str(username or ""),
        AuditEvent.Action.LOGIN_LOCKED_OUT,
        message,
        detail={"ip_address": ip_address or ""},
    )
