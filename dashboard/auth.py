"""Password logins and their throttle (django-axes underneath). Failures are counted two ways:

- per client address, whatever names it tries: after AXES_FAILURE_LIMIT (DRIFTWATCH_LOGIN_ADDRESS_FAILURE_LIMIT)
  the address is blocked for AXES_COOLOFF_TIME, so one source cannot guess on and on, nor spray names;
- per account name, from any address: after DRIFTWATCH_LOGIN_FAILURE_LIMIT in a row the name pauses for
  DRIFTWATCH_LOGIN_PAUSE_SECONDS after the failure that reached the limit. A pause only delays: attempts it refuses
  are not counted, so a flood from many addresses slows guessing at the break-glass admin down without ever
  keeping the admin out for longer than one pause at a time (a block per name would let anyone lock it out).

The client address is the socket's peer, or with DRIFTWATCH_TRUSTED_PROXIES proxies of our own in front, the
address the outermost of them appended to X-Forwarded-For: never anything a client wrote ahead of it.
Lockouts are audited (dashboard.signals)."""

from __future__ import annotations

import ipaddress
import math
from datetime import timedelta
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.exceptions import AxesBackendPermissionDenied
from axes.helpers import get_client_username
from axes.models import AccessFailureLog, AccessLog
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import User
from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


def client_address(request: HttpRequest) -> str:
    """The address a request came from, as far as our own proxies vouch for it (AXES_CLIENT_IP_CALLABLE)."""
    peer = str(request.META.get("REMOTE_ADDR", ""))
    hops = settings.DRIFTWATCH_TRUSTED_PROXIES
    if not hops:
        return peer
    forwarded = [hop.strip() for hop in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    if len(forwarded) < hops:
        # Fewer hops than proxies: the request went around them, and its header is the client's own words.
        return peer
    try:
        return str(ipaddress.ip_address(forwarded[-hops]))
    except ValueError:
        return peer


def account_pause_left(username: str) -> int:
    """Seconds until `username` may be tried again (0: now): the pause after DRIFTWATCH_LOGIN_FAILURE_LIMIT
    counted failures in a row (since its last successful login) within the last pause's length."""
    limit = settings.DRIFTWATCH_LOGIN_FAILURE_LIMIT
    pause = timedelta(seconds=settings.DRIFTWATCH_LOGIN_PAUSE_SECONDS)
    now = timezone.now()
    since = now - pause
    last_login = AccessLog.objects.filter(username=username).aggregate(at=Max("attempt_time"))["at"]
    if last_login is not None and last_login > since:
        since = last_login
    recent = list(
        AccessFailureLog.objects.filter(username=username, attempt_time__gt=since)
        .order_by("-attempt_time")
        .values_list("attempt_time", flat=True)[:limit]
    )
    if len(recent) < limit:
        return 0
    # The pause ends when the limit-th most recent failure is a pause's length old.
    return max(1, math.ceil((recent[-1] + pause - now).total_seconds()))


class LoginThrottleBackend(AxesStandaloneBackend):
    """Axes' check of the client address, then the account name's pause. `authenticate()` without a request (a
    management command, a shell) has no address to throttle, so it is left to the next backend."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> AbstractBaseUser | None:
        if request is None:
            return None
        super().authenticate(request, username, password, **kwargs)  # raises when the address is blocked
        if username is not None and getattr(settings, "AXES_ENABLED", True):
            left = account_pause_left(username)
            if left:
                # Marked as axes marks its own refusals: not counted as a failure, answered by lockout_response.
                request.axes_locked_out = True  # type: ignore[attr-defined]
                request.login_pause_seconds = left  # type: ignore[attr-defined]
                raise AxesBackendPermissionDenied("this account name's login is paused")
        return None


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """The page for a refused login (AXES_LOCKOUT_CALLABLE): what is locked, and for how long (also Retry-After)."""
    pause = getattr(request, "login_pause_seconds", 0)
    context: dict[str, Any] = {"username": get_client_username(request, credentials) or ""}
    if pause:
        context |= {"paused": True, "failure_limit": settings.DRIFTWATCH_LOGIN_FAILURE_LIMIT, "retry_after": pause}
        retry_after = pause
    else:
        context |= {"failure_limit": settings.AXES_FAILURE_LIMIT, "cooloff": settings.AXES_COOLOFF_TIME}
        retry_after = int(settings.AXES_COOLOFF_TIME.total_seconds())
    response = render(request, "registration/locked_out.html", context, status=429)
    response["Retry-After"] = str(retry_after)
    return response


class PasswordBackend(ModelBackend):
    """Local passwords, kept for break-glass access beside single sign-on. With DRIFTWATCH_PASSWORD_LOGIN=false
    no password is accepted (the admin's login included) and sessions opened with one end."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> User | None:
        if not settings.DRIFTWATCH_PASSWORD_LOGIN:
            return None
        return super().authenticate(request, username, password, **kwargs)

    def get_user(self, user_id: Any) -> User | None:
        if not settings.DRIFTWATCH_PASSWORD_LOGIN:
            return None
        return super().get_user(user_id)
