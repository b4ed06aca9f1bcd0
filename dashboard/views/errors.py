"""Error pages that record what they refuse."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from drift import audit
from drift.models import AuditEvent


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A POST without a valid CSRF token (a forged form on another site, or a stale page): audited, then 403.
    The token itself is never recorded."""
    user = getattr(request, "user", None)
    actor = user.get_username() if user is not None and user.is_authenticated else "anonymous"
    audit.record(
        actor or "anonymous",
        AuditEvent.Action.CSRF_FAILED,
        f"{request.method} {request.path} refused: {reason or 'CSRF check failed'}",
        detail={
            "method": request.method,
            "path": request.path,
            "reason": reason,
            "origin": request.META.get("HTTP_ORIGIN", ""),
            "referer": request.META.get("HTTP_REFERER", ""),
        },
    )
    message = (
        "The request was refused: its security token (CSRF) was missing or did not match. "
        "Reload the page and try again."
    )
    return render(request, "403.html", {"exception": message}, status=403)
