"""The one door to the audit log: every entry Driftwatch writes goes through `record` (one entry) or
`record_many` (entries written together, as a snapshot writes them), never through AuditEvent itself
(tests/test_audit_door.py holds every other module to that). Each field is bounded here, before it is written:
text cut to its column and marked as cut, the JSON detail's strings cut. The entry's time is the database's.
Django admin's changes (users, roles, clusters, rollout windows, notification channels, rules and notices) come
through `record_admin_change`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.db import connection, models
from django.utils import timezone

from drift.bounded import bounded
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


def entry(
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
    """An entry not written yet, bounded, for `record_many`."""
    event = AuditEvent(
        actor=actor, action=action, message=message, cluster_name=cluster_name, namespace=namespace,
        object_kind=object_kind, object_name=object_name, detail=detail or {},
    )  # fmt: skip
    event.bound()
    return event


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
    """Write one entry to the audit log."""
    event = entry(
        actor, action, message, cluster_name=cluster_name, namespace=namespace, object_kind=object_kind,
        object_name=object_name, detail=detail,
    )  # fmt: skip
    event.save(force_insert=True)
    return event


def record_many(entries: Iterable[AuditEvent]) -> list[AuditEvent]:
    """Write entries made with `entry` in one statement."""
    events = list(entries)
    for event in events:
        event.bound()
    return AuditEvent.objects.bulk_create(events) if events else []


def count_refusal(action: str, message: str, key: str = "") -> int:
    """Count one refusal in its hour's RefusedAttempt row (one upsert, safe under concurrency); returns how
    many of that action and key the hour holds now, this one included."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO drift_refusedattempt (action, key, hour, count, last_at, last_message) "
            "VALUES (%s, %s, %s, 1, %s, %s) ON CONFLICT (action, key, hour) DO UPDATE SET "
            "count = drift_refusedattempt.count + 1, last_at = EXCLUDED.last_at, last_message = EXCLUDED.last_message "
            "RETURNING count",
            [
                bounded(action, 32), bounded(key, 253), now.replace(minute=0, second=0, microsecond=0), now,
                bounded(message, 300),
            ],
        )  # fmt: skip
        return int(cursor.fetchone()[0])


def record_refusal(
    actor: str, action: str, message: str, *, key: str = "", detail: dict[str, Any] | None = None
) -> AuditEvent | None:
    """A refusal anyone can cause at will (anonymous CSRF failures, single sign-on callback errors, failed logins
    under unknown names): counted per hour, and written as an entry of its own only while the hour holds at most
    DRIFTWATCH_REFUSAL_ENTRIES_PER_HOUR of them. A flood grows one counter row, never a row per request."""
    if count_refusal(action, message, key) > settings.DRIFTWATCH_REFUSAL_ENTRIES_PER_HOUR:
        return None
    return record(actor, action, message, detail=detail)


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
