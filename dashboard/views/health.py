"""Liveness and readiness, for Kubernetes probes and load balancers.

`/healthz` says the process answers (a liveness probe must not fail because PostgreSQL is down: restarting
the pod would not bring it back). `/readyz` checks PostgreSQL and Redis for real and answers 503 naming
what is down, so a pod that cannot serve is taken out of its Service. Both are answered by
`ProbeMiddleware` before host validation and the HTTPS redirect: the kubelet calls them by the pod's
address over plain HTTP."""

from __future__ import annotations

from collections.abc import Callable

import redis
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

CHECK_TIMEOUT_SECONDS = 2.0


@login_not_required
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


def database_error() -> str:
    """ "" when PostgreSQL answers a query, else the error's type (its message could name a host or user)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:
        # A broken connection must not stick to this thread: the next check reconnects.
        connection.close_if_unusable_or_obsolete()
        return type(error).__name__
    return ""


def redis_error() -> str:
    """ "" when Redis answers PING, else the error's type."""
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=CHECK_TIMEOUT_SECONDS, socket_connect_timeout=CHECK_TIMEOUT_SECONDS
    )
    try:
        client.ping()
    except Exception as error:
        return type(error).__name__
    finally:
        client.close()
    return ""


@login_not_required
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": database_error(), "redis": redis_error()}
    failing = {name: error for name, error in checks.items() if error}
    body = {"ok": not failing, "checks": {name: error or "ok" for name, error in checks.items()}}
    return JsonResponse(body, status=503 if failing else 200)


PROBES: dict[str, Callable[[HttpRequest], JsonResponse]] = {"/healthz": healthz, "/readyz": readyz}


class ProbeMiddleware:
    """Answers GET/HEAD /healthz and /readyz first, before ALLOWED_HOSTS and the HTTPS redirect apply."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        if probe is not None and request.method in {"GET", "HEAD"}:
            return probe(request)
        return self.get_response(request)
