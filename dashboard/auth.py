"""Password logins: throttled with django-axes: after AXES_FAILURE_LIMIT wrong passwords for one user name from one
address, that pair is locked out for AXES_COOLOFF_TIME. Lockouts are audited (dashboard.signals)."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import User
from django.http import HttpRequest


class LoginThrottleBackend(AxesStandaloneBackend):
    """Axes' check for logins through the web. `authenticate()` without a request (a management command, a
    shell) has no address to throttle, so it is left to the next backend instead of being refused."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> AbstractBaseUser | None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)


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
