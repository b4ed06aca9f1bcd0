"""Error pages that record what they refuse."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from drift import audit
from drift.bounded import bounded
from drift.models import AuditEvent

# What an entry keeps of a path, an origin or a referer the client sent.
PATH_SHOWN = 300


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A POST without a valid CSRF token (a forged form on another site, or a stale page): audited, then 403.
    The token itself is never recorded."""
    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    # Anyone can send these at will: an anonymous one is counted, and listed only while the hour holds few.
    write = audit.record if signed_in else audit.record_refusal
    said = bounded(reason, PATH_SHOWN) or "CSRF check failed"
    write(
        (user.get_username() if user is not None and signed_in else "") or "anonymous",
        AuditEvent.Action.CSRF_FAILED,
        f"{request.method} {bounded(request.path, PATH_SHOWN)} refused: {said}",
        detail={
            "method": request.method,
            "path": bounded(request.path, PATH_SHOWN),
            "reason": bounded(reason, PATH_SHOWN),
            "origin": bounded(request.META.get("HTTP_ORIGIN", ""), PATH_SHOWN),
            "referer": bounded(request.META.get("HTTP_REFERER", ""), PATH_SHOWN),
        },
    )
    message = (
        "The request was refused: its security token (CSRF) was missing or did not match. "
        "Reload the page and try again."
    )
    return render(request, "403.html", {"exception": message}, status=403)
