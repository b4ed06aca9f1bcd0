"""Registering clusters: a cluster is saved only after its credentials load and its API server answers."""

from __future__ import annotations

import hashlib
import secrets
import threading
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from drift import audit, kube
from drift.models import AuditEvent, Cluster


class ClusterRegistrationError(Exception):
    pass


def credentials_for(cluster: Cluster) -> kube.ClusterCredentials:
    return kube.ClusterCredentials(cluster.kubeconfig_path, cluster.context, cluster.in_cluster)


# One limiter per cluster (and rate) in a process: the watcher's threads, its probes and a worker's snapshot
# threads share the cluster's request rate, and a 429's Retry-After holds all of them.
_limiters: dict[tuple[int, int], kube.RateLimiter] = {}
_traffic: dict[int, kube.Traffic] = {}
_limiters_lock = threading.Lock()


def cluster_limiter(cluster: Cluster) -> kube.RateLimiter:
    key = (cluster.pk, cluster.api_requests_per_second)
    with _limiters_lock:
        if key not in _limiters:
            _limiters[key] = kube.RateLimiter(cluster.api_requests_per_second)
        return _limiters[key]


def cluster_traffic(cluster: Cluster) -> kube.Traffic:
    """What this process asked of the cluster's API server so far (requests, bytes read)."""
    with _limiters_lock:
        return _traffic.setdefault(cluster.pk, kube.Traffic())


def connect(cluster: Cluster, timeout_seconds: float = kube.DEFAULT_TIMEOUT_SECONDS) -> kube.KubeClient:
    return kube.KubeClient(
        credentials_for(cluster),
        timeout_seconds=timeout_seconds,
        limiter=cluster_limiter(cluster) if cluster.pk else kube.RateLimiter(cluster.api_requests_per_second),
        traffic=cluster_traffic(cluster) if cluster.pk else None,
    )


def register_cluster(
    name: str,
    kubeconfig_path: str = "",
    context: str = "",
    in_cluster: bool = False,
    actor: str = "driftwatch",
    audit_token: str = "",
    read_only: bool = False,
    namespaces: list[str] | None = None,
) -> tuple[Cluster, str]:
    """Check the credentials against the live API server, then save the cluster and audit it.
    Returns the cluster and the server's version. Raises ClusterRegistrationError with one line."""
    if Cluster.objects.filter(name=name).exists():
        raise ClusterRegistrationError(f"a cluster named {name!r} is already registered")
    if not in_cluster:
        if not kubeconfig_path:
            raise ClusterRegistrationError("give --kubeconfig PATH, or --in-cluster inside Kubernetes")
        kubeconfig_path = str(Path(kubeconfig_path).expanduser().resolve())
    candidate = Cluster(
        name=name,
        kubeconfig_path=kubeconfig_path,
        context=context,
        in_cluster=in_cluster,
        read_only=read_only,
        namespaces=namespaces or [],
    )
    candidate.audit_token_hash = checked_audit_token_hash(audit_token, name) if audit_token else ""
    candidate.last_contact_at = timezone.now()
    try:
        candidate.full_clean()
    except Exception as error:  # ValidationError: a bad name
        raise ClusterRegistrationError(f"invalid cluster: {'; '.join(_messages(error))}") from None
    try:
        with connect(candidate, timeout_seconds=10) as client:
            version = client.server_version()
            candidate.api_server = client.api_server
    except kube.KubeError as error:
        raise ClusterRegistrationError(str(error)) from None
    candidate.server_version = version
    with transaction.atomic():
        candidate.save()
        audit.record(
            actor,
            AuditEvent.Action.CLUSTER_ADDED,
            f"cluster {name} added ({candidate.credentials_label()}, Kubernetes {version})",
            cluster_name=name,
        )
    return candidate, version


def audit_token_hash(token: str) -> str:
    """What Cluster.audit_token_hash holds: the API server's webhook token itself is never stored."""
    return hashlib.sha256(token.encode()).hexdigest()


# What an audit webhook token must have: anyone who has it can write "who changed it" for the cluster.
TOKEN_MIN_LENGTH = 32
TOKEN_MIN_DISTINCT = 12


def generate_audit_token() -> str:
    """A new token: 32 random bytes, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def check_audit_token(token: str) -> None:
    """Refuse a weak token with what a good one looks like. A rough test, not an entropy measure: long enough,
    one word, and not a few characters repeated (a generated token has about 30 distinct characters)."""
    if any(character.isspace() for character in token):
        raise ClusterRegistrationError("the audit token must be one word (no whitespace)")
    if len(token) < TOKEN_MIN_LENGTH or len(set(token)) < TOKEN_MIN_DISTINCT:
        raise ClusterRegistrationError(
            f"the audit token is weak: give at least {TOKEN_MIN_LENGTH} characters with at least {TOKEN_MIN_DISTINCT} "
            "different ones, or let Driftwatch generate one (--generate)"
        )


def checked_audit_token_hash(token: str, cluster_name: str) -> str:
    """The hash to store for a cluster's token, after the strength check and the check that no other cluster
    has it (the database refuses a shared one too: its unique constraint)."""
    check_audit_token(token)
    digest = audit_token_hash(token)
    if Cluster.objects.filter(audit_token_hash=digest).exclude(name=cluster_name).exists():
        raise ClusterRegistrationError("that audit token is another cluster's: give each cluster its own")
    return digest


def read_token_file(path: str) -> str:
    try:
        token = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ClusterRegistrationError(f"cannot read the token file {path}: {type(error).__name__}") from None
    try:
        check_audit_token(token)
    except ClusterRegistrationError as error:
        raise ClusterRegistrationError(f"the token in {path}: {error}") from None
    return token


def set_audit_token(name: str, token: str, actor: str = "driftwatch") -> None:
    """Accept audit events for a registered cluster with this bearer token (an empty token: accept none)."""
    digest = checked_audit_token_hash(token, name) if token else ""
    with transaction.atomic():
        updated = Cluster.objects.filter(name=name).update(audit_token_hash=digest)
        if not updated:
            raise ClusterRegistrationError(f"no cluster named {name!r}")
        audit.record(
            actor,
            AuditEvent.Action.CLUSTER_CHANGED,
            f"cluster {name}: audit webhook token {'set' if token else 'removed'}",
            cluster_name=name,
        )


def remove_cluster(name: str, actor: str = "driftwatch") -> None:
    with transaction.atomic():
        deleted, _ = Cluster.objects.filter(name=name).delete()
        if not deleted:
            raise ClusterRegistrationError(f"no cluster named {name!r}")
        audit.record(actor, AuditEvent.Action.CLUSTER_REMOVED, f"cluster {name} removed", cluster_name=name)


def _messages(error: Exception) -> list[str]:
    if hasattr(error, "message_dict"):
        return [f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items()]
    return [str(error)]


def check_cluster(cluster: Cluster) -> str:
    """Ask the API server for its version and remember when it last answered."""
    with connect(cluster, timeout_seconds=10) as client:
        version = client.server_version()
        api_server = client.api_server
    Cluster.objects.filter(pk=cluster.pk).update(
        server_version=version, api_server=api_server, last_contact_at=timezone.now()
    )
    return version


def api_server_of(cluster: Cluster) -> str:
    """The host:port the cluster's credentials name (read from them, no request), or '' where they do not load."""
    if cluster.api_server:
        return cluster.api_server
    try:
        with connect(cluster) as client:
            return client.api_server
    except kube.KubeError:
        return ""


def same_api_server(cluster: Cluster) -> list[Cluster]:
    """The other registrations of this cluster's API server (registrations older than the field are read from
    their credentials)."""
    others = Cluster.objects.exclude(pk=cluster.pk).order_by("created_at", "pk")
    return [other for other in others if cluster.api_server and api_server_of(other) == cluster.api_server]
