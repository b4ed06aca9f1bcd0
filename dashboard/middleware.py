"""Bounds on what a request may carry, checked before any view reads it; how long a single sign-on session lasts."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import BACKEND_SESSION_KEY, logout
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden

from dashboard.sso import renew_session

SSO_BACKEND = "dashboard.sso.DriftwatchOIDCBackend"

# No form field or query parameter of Driftwatch needs more; Django admin's longest text field is 1,024.
MAX_FIELD_CHARS = 4_096


class BoundedInputMiddleware:
    """A query parameter or form field longer than MAX_FIELD_CHARS is refused with 400 and a message that
    says which, instead of reaching a column it does not fit (a 500). Runs after the CSRF check, so a forged
    POST is recorded as one."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view: Callable, args: tuple, kwargs: dict) -> HttpResponse | None:
        for where, values in (("query parameter", request.GET), ("form field", request.POST)):
            for name, items in values.lists():
                if len(name) > MAX_FIELD_CHARS or any(len(item) > MAX_FIELD_CHARS for item in items):
                    shown = name[:64] + ("…" if len(name) > 64 else "")
                    return HttpResponseBadRequest(
                        f"The {where} {shown!r} is longer than {MAX_FIELD_CHARS} characters.\n",
                        content_type="text/plain; charset=utf-8",
                    )
        return None


class SsoSessionMiddleware:
    """A session single sign-on opened lasts no longer than its evidence: when its ID token's time is up
    (dashboard.sso.renew_session) it is renewed with the refresh token, its groups applied again, or it ends here,
    before the login check, which then sends the browser to the login page with the reason."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.session.get(BACKEND_SESSION_KEY) == SSO_BACKEND and request.user.is_authenticated:
            ended = renew_session(request)
            if ended:
                logout(request)
                messages.info(request, f"Single sign-on: {ended}.")
        return self.get_response(request)


# No page of Driftwatch takes an upload from someone not logged in; a login form fits many times over (browsers
# send it url-encoded, some clients, Django's test client among them, as multipart).
ANONYMOUS_MULTIPART_MAX_BYTES = 16 * 1024


class MultipartGuardMiddleware:
    """Refuses a multipart body before anything reads it when it declares no length, more than
    DATA_UPLOAD_MAX_MEMORY_SIZE bytes, or, from anyone not logged in, more than ANONYMOUS_MULTIPART_MAX_BYTES.
    Django parses a multipart body as soon as a middleware touches `request.POST` (the CSRF check does) and, with
    its default handlers, spools a large file to a temporary file: in the chart a 256 Mi emptyDir an anonymous
    client could fill (the settings keep file parts in memory as well). Runs in `__call__`, before any
    middleware's `process_view`; after authentication, which reads the session and not the body."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.content_type != "multipart/form-data":
            return self.get_response(request)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or "")
        except ValueError:
            length = -1
        if not request.user.is_authenticated and not 0 <= length <= ANONYMOUS_MULTIPART_MAX_BYTES:
            return HttpResponseForbidden(
                f"A multipart body of more than {ANONYMOUS_MULTIPART_MAX_BYTES} bytes is accepted only from a "
                "logged-in user.\n",
                content_type="text/plain; charset=utf-8",
            )
        if not 0 <= length <= settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return HttpResponse(
                f"A multipart body must declare its length, of at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.\n",
                status=413,
                content_type="text/plain; charset=utf-8",
            )
        return self.get_response(request)
