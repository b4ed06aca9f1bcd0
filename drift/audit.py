"""One way to write an audit entry, for the paths that change who may do what: Django admin (users, roles,
clusters, rollout windows, notification channels, rules and notices), `adduser`, CSRF
failures, login lockouts. The entry's time is the database's; every field is bounded by AuditEvent itself."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.db import models

from drift.models import AuditEvent, Channel, Cluster, Membership, Notice, NotificationRule, RolloutWindow

# What an admin change of each model is recorded as: (added, changed, deleted).
ADMIN_ACTIONS: dict[type[models.Model], tuple[str, str, str]] = {
    Cluster: (AuditEvent.Action.CLUSTER_ADDED, AuditEvent.Action.CLUSTER_CHANGED, AuditEvent.Action.CLUSTER_REMOVED),
    Membership: (AuditEvent.Action.ROLE_CHANGED, AuditEvent.Action.ROLE_CHANGED, AuditEvent.Action.ROLE_CHANGED),
    Channel: (AuditEvent.Action.CHANNEL_CHANGED,) * 3,
    NotificationRule: (AuditEvent.Action.CHANNEL_CHANGED,) * 3,
    Notice: (AuditEvent.Action.CHANNEL_CHANGED,) * 3,
    # When rollouts may start is a setting of the cluster.
    RolloutWindow: (AuditEvent.Action.CLUSTER_CHANGED,) * 3,
}
VERBS = ("added", "changed", "deleted")


def record(
    actor: str,
    action: str,
    message: str,
    *,
    cluster_name: str = "",
    namespace: str = "",
    object_kind: str = "",
    object_name: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        actor=actor, action=action, message=message, cluster_name=cluster_name, namespace=namespace,
        object_kind=object_kind, object_name=object_name, detail=detail or {},
    )  # fmt: skip


def record_user_change(
    actor: str, username: str, action: str, message: str, detail: dict[str, Any] | None = None
) -> AuditEvent:
    """A user created or changed outside the admin (the `adduser` command): `actor` is who ran it."""
    return record(actor, action, message, object_kind="User", object_name=username, detail=detail)


def record_admin_change(actor: str, obj: models.Model, verb: str, change_message: Any) -> AuditEvent | None:
    """An add, change or delete through Django admin of a user, a membership (role) or a cluster. `change_message`
    is what the admin stores in its own log (field names, never values: a password is never in it)."""
    user_model = get_user_model()
    actions: tuple[str, str, str]
    if isinstance(obj, user_model):
        actions = (AuditEvent.Action.USER_CREATED, AuditEvent.Action.USER_CHANGED, AuditEvent.Action.USER_DELETED)
        kind, name, detail = "User", obj.get_username(), _user_detail(obj)
    elif type(obj) in ADMIN_ACTIONS:
        actions = ADMIN_ACTIONS[type(obj)]
        kind, name, detail = type(obj).__name__, str(obj), _detail(obj)
    else:
        return None
    said = _change_text(change_message)
    detail["change"] = said
    return record(
        actor,
        actions[VERBS.index(verb)],
        f"{actor} {verb} {kind.lower()} {name} in the admin" + (f": {said}" if said and verb == "changed" else ""),
        cluster_name=_cluster_of(obj),
        namespace=obj.namespace if isinstance(obj, RolloutWindow | Notice) else "",
        object_kind=kind,
        object_name=name,
        detail=detail,
    )


def _cluster_of(obj: models.Model) -> str:
    if isinstance(obj, Cluster):
        return obj.name
    if isinstance(obj, RolloutWindow):
        return obj.cluster.name
    if isinstance(obj, Notice):
        return obj.cluster
    return ""


def _change_text(change_message: Any) -> str:
    if not change_message:
        return ""
    raw = change_message if isinstance(change_message, str) else json.dumps(change_message)
    return LogEntry(change_message=raw).get_change_message()


def _user_detail(user: Any) -> dict[str, Any]:
    return {"is_active": user.is_active, "is_staff": user.is_staff, "is_superuser": user.is_superuser}


def _detail(obj: models.Model) -> dict[str, Any]:
    if isinstance(obj, Membership):
        return {"user": obj.user.get_username(), "role": obj.role, "namespaces": obj.namespaces}
    if isinstance(obj, Cluster):
        return {
            field: getattr(obj, field)
            for field in ("snapshot_interval_seconds", "propagation_window_seconds", "exec_concurrency",
                          "exec_timeout_seconds", "api_requests_per_second", "rollout_batch_size", "file_probes",
                          "reload_default")
        }  # fmt: skip
    if isinstance(obj, RolloutWindow):
        return {"weekdays": obj.weekdays, "start": f"{obj.start:%H:%M}", "end": f"{obj.end:%H:%M}"}
    if isinstance(obj, Notice):
        return {"rule": obj.rule.name, "key": obj.key, "status": obj.status, "closed_at": str(obj.closed_at or "")}
    return {}
