"""Login throttling with django-axes: after AXES_FAILURE_LIMIT wrong passwords for one user name from one
address, that pair is locked out for AXES_COOLOFF_TIME. Lockouts are audited (dashboard.signals)."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.contrib.auth.base_user import AbstractBaseUser
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
