"""Who may do what. Everyone logged in reads everything; rolling out takes an operator membership whose scope
covers the workload's cluster and namespace (`CLUSTER/NAMESPACE`, `CLUSTER/*`, `*/*`). The check is made on
the row the action will act on, looked up by primary key, never on names the client sent. A refused attempt
is audited before the 403 (or 404), because a forged POST is worth knowing about."""

from __future__ import annotations

from typing import Any, NoReturn

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

from drift import audit, kube
from drift.models import AuditEvent, Membership, Role, parse_scope

# The request's path, as an audit message quotes it, is cut to this (the door cuts every column to its size).
_MAX_FIELD = 253


def membership_of(user: AbstractBaseUser | AnonymousUser) -> Membership | None:
    if not user.is_authenticated:
        return None
    # The reverse one-to-one raises RelatedObjectDoesNotExist, an AttributeError, when there is none.
    return getattr(user, "membership", None)


def role_of(user: AbstractBaseUser | AnonymousUser) -> str:
    """A user without a membership (e.g. made with createsuperuser) is a viewer."""
    membership = membership_of(user)
    return membership.role if membership else Role.VIEWER


def cluster_name(cluster: Any) -> str:
    return str(getattr(cluster, "name", cluster))


def may_roll_out(user: AbstractBaseUser | AnonymousUser, cluster: str, namespace: str) -> bool:
    membership = membership_of(user)
    return membership is not None and membership.may_roll_out(cluster, namespace)


def _deny(request: HttpRequest, cluster: str, namespace: str, kind: str, name: str, reason: str) -> None:
    username = request.user.get_username()
    role = role_of(request.user)
    audit.record(
        username,
        AuditEvent.Action.ACCESS_DENIED,
        f"{username} ({role}) {reason}: {request.method} {request.path[:_MAX_FIELD]} refused",
        cluster_name=cluster,
        namespace=namespace,
        object_kind=kind,
        object_name=name,
        detail={"method": request.method, "path": request.path[:_MAX_FIELD], "role": role},
    )


def require_rollout_permission(request: HttpRequest, obj: Any) -> None:
    """Raise PermissionDenied (403) unless the user may roll out `obj` (a Workload or Rollout row: its own
    cluster and namespace), and audit the attempt."""
    cluster = cluster_name(obj.cluster)
    if getattr(obj.cluster, "read_only", False):
        _deny(request, cluster, obj.namespace, obj.kind, obj.name, f"asked to roll out in read-only cluster {cluster}")
        raise PermissionDenied(f"Cluster {cluster} is read-only: Driftwatch may not patch workloads there.")
    if may_roll_out(request.user, cluster, obj.namespace):
        return
    role = role_of(request.user)
    _deny(request, cluster, obj.namespace, obj.kind, obj.name, f"may not roll out in {cluster}/{obj.namespace}")
    raise PermissionDenied(f"Your role ({role}) may not roll out in namespace {obj.namespace} of cluster {cluster}.")


def require_operator_on(request: HttpRequest, obj: Any, what: str) -> None:
    """Raise PermissionDenied (403) unless the user is an operator whose scope covers `obj`'s own cluster and
    namespace (a Workload row looked up by id), and audit the attempt. For settings Driftwatch keeps itself,
    which touch nothing in the cluster (so a read-only cluster allows them)."""
    cluster = cluster_name(obj.cluster)
    if may_roll_out(request.user, cluster, obj.namespace):
        return
    role = role_of(request.user)
    _deny(request, cluster, obj.namespace, obj.kind, obj.name, f"may not {what} in {cluster}/{obj.namespace}")
    raise PermissionDenied(f"Your role ({role}) may not {what} in namespace {obj.namespace} of cluster {cluster}.")


def refuse_unknown_workload(request: HttpRequest, fields: dict[str, str]) -> NoReturn:
    """A rollout request that does not name a workload Driftwatch knows by its id: audited, then 404."""
    _deny(
        request,
        fields.get("cluster", ""),
        fields.get("namespace", ""),
        fields.get("kind", ""),
        fields.get("name", "") or fields.get("workload", ""),
        "named no workload Driftwatch knows (rollouts name a workload by its id)",
    )
    raise Http404("No such workload.")


def read_scopes(user: AbstractBaseUser | AnonymousUser) -> list[tuple[str, str]] | None:
    """Where a viewer given scopes may read (point in time honours them): (cluster, namespace) pairs, either
    may be "*". None: everywhere (every other user, and a viewer without scopes, as before)."""
    membership = membership_of(user)
    if membership is None or membership.role != Role.VIEWER or not membership.namespaces:
        return None
    scopes = []
    for scope in membership.namespaces:
        try:
            scopes.append(parse_scope(scope))
        except ValueError:
            continue  # a malformed scope allows nothing
    return scopes


def may_read(user: AbstractBaseUser | AnonymousUser, cluster: str, namespace: str) -> bool:
    scopes = read_scopes(user)
    return scopes is None or any(c in ("*", cluster) and n in ("*", namespace) for c, n in scopes)


def readable_namespaces(user: AbstractBaseUser | AnonymousUser, cluster: str) -> set[str] | None:
    """The namespaces of ``cluster`` the user may read; None: all of them."""
    scopes = read_scopes(user)
    if scopes is None:
        return None
    allowed = {n for c, n in scopes if c in ("*", cluster)}
    return None if "*" in allowed else allowed


def refuse_read(request: HttpRequest, cluster: str, namespace: str, kind: str = "", name: str = "") -> NoReturn:
    """A read outside the viewer's scopes: audited, then 404 (what it asked for is not said to exist)."""
    _deny(request, cluster[:63], namespace[:253], kind, name, f"may not read {cluster[:63]}/{namespace[:63]}")
    raise Http404("Nothing here.")


def require_namespace_read(request: HttpRequest, cluster: str, namespace: str, kind: str = "", name: str = "") -> None:
    """A page about one namespace (point in time, the timeline, what a version did): a name Kubernetes would refuse
    is a 404, and a namespace outside the viewer's scopes is refused as one that does not exist (audited)."""
    try:
        kube.validate_namespace(namespace)
    except kube.InvalidName:
        raise Http404("No such namespace.") from None
    if not may_read(request.user, cluster, namespace):
        refuse_read(request, cluster, namespace, kind, name)
