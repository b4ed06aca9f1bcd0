"""Our few exceptions: every failure talking to a cluster becomes one of these, with a message meant for the
user, so the rest of Driftwatch never handles an ApiException or a socket error."""

from __future__ import annotations

import json
import re

from kubernetes.client.rest import ApiException


class KubeError(Exception):
    """Anything that went wrong talking to a cluster; the message is meant for the user."""


class KubeConfigError(KubeError):
    """The kubeconfig cannot be read, parsed or does not name a usable context."""


class Unreachable(KubeError):
    """The API server did not answer (connection refused, DNS, TLS, timeout)."""


class Forbidden(KubeError):
    """RBAC said no. `permission` names what is missing, e.g. 'patch deployments.apps in demo'."""

    def __init__(self, message: str, permission: str = "") -> None:
        super().__init__(message)
        self.permission = permission


class NotFound(KubeError):
    pass


class ApiRefused(KubeError):
    """The API server answered with another error (conflict, invalid, server error)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Gone(KubeError):
    """410: a watch's resourceVersion is no longer available (compacted, or the API server restarted); the caller
    relists. `oldest`: the resourceVersion the API server's watch cache still starts from, when it said so (its
    message reads "too old resource version: R (OLDEST)"): a watch from there replays what it still has."""

    def __init__(self, message: str, oldest: str = "") -> None:
        super().__init__(message)
        self.oldest = oldest


def oldest_kept(message: object) -> str:
    """OLDEST from a 410's "too old resource version: R (OLDEST)", or "" when the message does not say."""
    found = re.search(r"too old resource version: \d+ \((\d+)\)", str(message or ""))
    return found.group(1) if found else ""


class Stalled(KubeError):
    """A watch stayed silent (no event, no bookmark) longer than its limit."""


class InvalidName(KubeError, ValueError):
    """A name that Kubernetes itself would refuse: it never reaches a URL."""


class ExecFailed(KubeError):
    """The command ran (or could not be started) inside the container and failed."""


class ExecTimeout(KubeError):
    pass


def translate_api_exception(error: ApiException, what: str) -> KubeError:
    reason = _status_message(error)
    if error.status == 403:
        return Forbidden(f"forbidden: {what} ({reason})", permission=what)
    if error.status == 404:
        return NotFound(f"not found: {what} ({reason})")
    if error.status == 401:
        return KubeConfigError(f"the API server rejected the credentials (401): {reason}")
    if error.status in (0, None):
        return Unreachable(f"API server unreachable: {reason}")
    return ApiRefused(f"{what}: {error.status} {reason}", status=error.status)


def _status_message(error: ApiException) -> str:
    try:
        return json.loads(error.body).get("message") or error.reason or ""
    except (TypeError, ValueError, AttributeError):
        return first_line(error.reason or str(error))


def first_line(value: object) -> str:
    """The first line of an error, bounded: what a message may quote of a library's exception."""
    text = str(value).strip()
    return text.splitlines()[0][:300] if text else type(value).__name__
