"""A safe way back: put a ConfigMap's content back to a stored version.

1. ``preview``: read the ConfigMap as it is now (GET), say what a restore would change (drift.diffs against the
   live content), and ask the API server for a dry run of the replacement (``dryRun=All``). Refused, with the
   reason, when the version cannot be restored from what is stored.
2. ``restore``: recorded in the audit log first (``config.restore_requested``), then one PUT with
   ``metadata.resourceVersion`` of the preview (the API server refuses with 409 when anyone changed the ConfigMap
   since) and ``fieldManager=driftwatch``; the outcome is recorded (``config.restored`` or
   ``config.restore_refused``). Optionally followed by a rollout of each workload whose pods read the ConfigMap
   only at start (env, envFrom, subPath), through drift.rollout.

What can be restored: a ConfigMap's text ``data``, which every version stores in full (large values too: the
replacement is built from the stored version, never from the page). Not: a Secret (values are never stored,
only their hashes), a version with ``binaryData`` keys (stored as hashes only), or one with a value Postgres
could not hold (a NUL character: hash only). Authorisation is the caller's, on the version's own source row
(dashboard.access.require_operator_on)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn

from drift import audit, kube
from drift.attribution import attribute_own_write
from drift.clusters import connect
from drift.diffs import KeyDiff, key_diffs
from drift.history import version_number
from drift.models import AuditEvent, Cluster, Consumption, SourceVersion, Workload
from drift.rollout.kinds import ROLLABLE_KINDS
from drift.vocabulary import Mode, SourceKind

# Consumers that keep what they read at start: a restore reaches them only through a rollout.
FIXED_AT_START = (Mode.ENV, Mode.ENV_FROM, Mode.SUBPATH)


class RestoreRefused(Exception):
    """A restore that must not or cannot happen; the message says why, for the page and the shell."""


def unrestorable(version: SourceVersion) -> str:
    """Why this version cannot be restored from what is stored ("" when it can)."""
    source = version.source
    if source.kind == SourceKind.SECRET:
        return (
            "Secrets cannot be restored: Driftwatch never stores their values (only hashes), so it has nothing to "
            "put back. Restore it from where it was made (your secret store, Helm, GitOps)."
        )
    if version.binary_keys:
        return (
            f"Version holds binaryData ({', '.join(version.binary_keys)}), which Driftwatch stores as hashes only: "
            "it cannot be restored from here."
        )
    missing = sorted(set(version.key_hashes) - set(version.data))
    if missing:
        return f"The values of {', '.join(missing)} were not stored (a NUL character): it cannot be restored from here."
    return ""


def _hashes(values: dict[str, str]) -> dict[str, str]:
    # Only compared with each other, for the diff; never stored.
    return {key: hashlib.sha256(value.encode()).hexdigest() for key, value in values.items()}


@dataclass(frozen=True)
class Preview:
    version: SourceVersion
    number: int
    live_resource_version: str
    live_uid: str
    diffs: list[KeyDiff]
    dry_run: str  # what the API server's dry run said
    consumers: list[Workload] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return any(diff.status != "unchanged" for diff in self.diffs)


def _path(version: SourceVersion) -> str:
    return kube.core_path("configmaps", version.source.namespace, version.source.name)


def _replacement(live: dict[str, Any], version: SourceVersion) -> dict[str, Any]:
    """The live object with the stored version's data, and the live resourceVersion as the precondition."""
    metadata = live.get("metadata") or {}
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            **{key: metadata[key] for key in ("name", "namespace", "labels", "annotations") if key in metadata},
            "resourceVersion": metadata.get("resourceVersion", ""),
        },
        "data": dict(version.data),
    }
    if live.get("immutable"):
        body["immutable"] = True
    return body


def consumers_needing_rollout(version: SourceVersion) -> list[Workload]:
    """The rollable workloads whose live pods read this ConfigMap only at start (env, envFrom, subPath)."""
    source = version.source
    ids = (
        Consumption.objects.filter(
            container__pod__cluster_id=source.cluster_id,
            container__pod__namespace=source.namespace,
            container__pod__deleted_at=None,
            container__ended_at=None,
            source_kind=SourceKind.CONFIG_MAP,
            source_name=source.name,
            mode__in=FIXED_AT_START,
        )
        .values_list("container__pod__workload_id", flat=True)
        .distinct()
    )
    return list(Workload.objects.filter(pk__in=list(ids), kind__in=ROLLABLE_KINDS).select_related("cluster"))


def preview(version: SourceVersion, client: kube.KubeClient | None = None) -> Preview:
    """The diff against the live content and the API server's dry run. Raises RestoreRefused."""
    reason = unrestorable(version)
    if reason:
        raise RestoreRefused(reason)
    cluster = version.source.cluster
    if cluster.read_only:
        raise RestoreRefused(f"Cluster {cluster.name} is read-only: Driftwatch may not write ConfigMaps there.")
    with _client(cluster, client) as api:
        live = _get(api, version)
        if live.get("immutable"):
            raise RestoreRefused("The ConfigMap is immutable: the API server refuses any change of its data.")
        body = _replacement(live, version)
        try:
            api.put(_path(version), body, _what("update", version), dry_run=True)
        except kube.KubeError as error:
            raise RestoreRefused(f"The API server's dry run refused it: {error}") from None
    live_data = {key: str(value) for key, value in (live.get("data") or {}).items()}
    live_binary = {key: str(value) for key, value in (live.get("binaryData") or {}).items()}
    diffs = key_diffs(
        _hashes({**live_data, **live_binary}),
        _hashes(version.data),
        {**live_data, **live_binary},
        dict(version.data),
        frozenset(live_binary),
    )
    metadata = live.get("metadata") or {}
    return Preview(
        version=version,
        number=version_number(version),
        live_resource_version=str(metadata.get("resourceVersion", "")),
        live_uid=str(metadata.get("uid", "")),
        diffs=diffs,
        dry_run="accepted (dryRun=All)",
        consumers=consumers_needing_rollout(version),
    )


@dataclass(frozen=True)
class Restored:
    resource_version: str  # the ConfigMap's after the update ("" for a dry run)
    dry_run: bool
    rollouts: list[Any] = field(default_factory=list)  # drift.models.Rollout rows, when asked for


def restore(
    version: SourceVersion,
    actor: str,
    expected_resource_version: str,
    *,
    dry_run: bool = False,
    roll_out: bool = False,
    client: kube.KubeClient | None = None,
) -> Restored:
    """Put ``version``'s data back, refused unless the ConfigMap is still at ``expected_resource_version`` (what
    the preview showed). Audited before the API call, and its outcome after. Raises RestoreRefused."""
    source = version.source
    cluster = source.cluster
    number = version_number(version)
    where = {"cluster_name": cluster.name, "namespace": source.namespace, "object_kind": source.kind,
             "object_name": source.name}  # fmt: skip
    detail = {"version": number, "version_id": version.pk, "resource_version": version.resource_version,
              "expected_resource_version": expected_resource_version, "dry_run": dry_run,
              "roll_out": roll_out}  # fmt: skip
    reason = unrestorable(version) or (
        f"Cluster {cluster.name} is read-only: Driftwatch may not write ConfigMaps there." if cluster.read_only else ""
    )
    if reason:
        _refused(actor, source.name, number, reason, where, detail)
    action = AuditEvent.Action.RESTORE_DRY_RUN if dry_run else AuditEvent.Action.RESTORE_REQUESTED
    audit.record(
        actor,
        action,
        f"{actor} asked to restore ConfigMap {source.namespace}/{source.name} to version #{number}"
        + (" (dry run)" if dry_run else ""),
        **where,
        detail=detail,
    )
    with _client(cluster, client) as api:
        try:
            live = _get(api, version)
        except RestoreRefused as error:
            _refused(actor, source.name, number, str(error), where, detail)
        now_at = str((live.get("metadata") or {}).get("resourceVersion", ""))
        if now_at != expected_resource_version:
            _refused(actor, source.name, number, _changed_since(expected_resource_version, now_at), where, detail)
        body = _replacement(live, version)
        try:
            answer = api.put(_path(version), body, _what("update", version), dry_run=dry_run)
        except kube.ApiRefused as error:
            if error.status == 409:
                _refused(actor, source.name, number, _changed_since(expected_resource_version, "newer"), where, detail)
            _refused(actor, source.name, number, f"The API server refused it: {error}", where, detail)
        except kube.KubeError as error:
            _refused(actor, source.name, number, f"The API server refused it: {error}", where, detail)
    if dry_run:
        return Restored("", True)
    after = str((answer.get("metadata") or {}).get("resourceVersion", ""))
    audit.record(
        actor,
        AuditEvent.Action.RESTORED,
        f"ConfigMap {source.namespace}/{source.name} restored to version #{number} by {actor} "
        f"(resourceVersion {expected_resource_version} -> {after})",
        **where,
        detail={**detail, "new_resource_version": after},
    )
    attribute_own_write(source.pk, after, actor)  # when the watcher recorded the new version first
    rollouts = _roll_out(version, actor) if roll_out else []
    return Restored(after, False, rollouts)


def _roll_out(version: SourceVersion, actor: str) -> list[Any]:
    """A rollout of each workload that reads the ConfigMap only at start, through drift.rollout (planned again,
    recorded and audited there)."""
    from drift.rollout import Target, request_rollout

    return [
        request_rollout(workload.cluster, Target.of(workload), actor)[0]
        for workload in consumers_needing_rollout(version)
    ]


def _changed_since(expected: str, now_at: str) -> str:
    return (
        f"Refused: the ConfigMap changed after the preview (resourceVersion {expected} then, {now_at} now). "
        "Nothing was written; look at the new content and preview again."
    )


def _refused(
    actor: str, name: str, number: int, reason: str, where: dict[str, str], detail: dict[str, Any]
) -> NoReturn:
    audit.record(
        actor,
        AuditEvent.Action.RESTORE_REFUSED,
        f"restore of ConfigMap {name} to version #{number} refused: {reason}",
        **where,
        detail={**detail, "reason": reason},
    )
    raise RestoreRefused(reason)


def _get(api: kube.KubeClient, version: SourceVersion) -> dict[str, Any]:
    try:
        return api.get(_path(version), _what("get", version))
    except kube.NotFound:
        raise RestoreRefused(
            f"ConfigMap {version.source.namespace}/{version.source.name} does not exist now: nothing to restore "
            "onto (create it again first)."
        ) from None
    except kube.KubeError as error:
        raise RestoreRefused(f"Cannot read the ConfigMap: {error}") from None


def _what(verb: str, version: SourceVersion) -> str:
    return f"{verb} configmaps in {version.source.namespace}"


@contextmanager
def _client(cluster: Cluster, client: kube.KubeClient | None) -> Iterator[kube.KubeClient]:
    """The caller's client, or a new connection closed afterwards."""
    if client is not None:
        yield client
        return
    try:
        made = connect(cluster)
    except kube.KubeError as error:
        raise RestoreRefused(f"Cannot connect to cluster {cluster.name}: {error}") from None
    try:
        yield made
    finally:
        made.close()
