"""Reading Kubernetes objects as plain JSON dicts: who owns a pod, which containers ran when, and every
way each container consumes a ConfigMap or Secret. Pure functions: no ORM, no HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drift.vocabulary import RELOAD_ANNOTATION, Mode, Reload, SourceKind, WorkloadKind

CONFIG_MAP = SourceKind.CONFIG_MAP
SECRET = SourceKind.SECRET


@dataclass(frozen=True)
class ConsumptionSpec:
    source_kind: SourceKind
    source_name: str
    mode: Mode
    keys: tuple[str, ...] = ()  # () = every key of the source
    env_names: tuple[tuple[str, str], ...] = ()  # (variable, key) for env
    env_prefix: str = ""  # envFrom prefix
    shadowed_env: tuple[str, ...] = ()  # variables that the container's own `env` overrides (envFrom)
    paths: tuple[tuple[str, str], ...] = ()  # (file path under the mount, key) for volumes with items
    mount_path: str = ""
    sub_path: str = ""
    optional: bool = False


@dataclass(frozen=True)
class Termination:
    """How a container run ended, as a `terminated` state says it."""

    reason: str  # OOMKilled, Error, Completed, ... ("" when the runtime gives none)
    exit_code: int | None
    finished_at: datetime | None


@dataclass(frozen=True)
class ContainerRun:
    """One run of a container as the pod status tells it."""

    name: str
    init: bool
    identity: str  # the runtime's container id, or a stand-in when the runtime gives none
    started_at: datetime | None
    running: bool
    # The container's spec, for consumptions_of(); read only for runs not recorded yet.
    spec: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    restart_count: int = 0
    waiting_reason: str = ""  # state.waiting.reason: CrashLoopBackOff, ContainerCreating, ...
    termination: Termination | None = None  # state.terminated: this run's own end
    # lastState.terminated: the end of the run before this one, and that run's container id ("" when not given).
    previous_termination: Termination | None = None
    previous_identity: str = ""


# What `kubectl rollout restart` writes into the pod template (and so every pod of it carries).
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"


def restarted_at(metadata: Mapping[str, Any]) -> datetime | None:
    """When `kubectl rollout restart` made the template this pod came from, or None (absent, or not a time)."""
    value = (metadata.get("annotations") or {}).get(RESTARTED_AT_ANNOTATION)
    try:
        moment = parse_time(str(value)) if value else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def terminating_since(metadata: Mapping[str, Any]) -> datetime | None:
    """metadata.deletionTimestamp: when the pod's deletion was asked for (it runs on for its grace period)."""
    try:
        return parse_time(metadata.get("deletionTimestamp"))
    except ValueError:
        return None


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def top_owner(
    metadata: dict[str, Any], intermediate: dict[str, tuple[str, str]], fallback_kind: str = WorkloadKind.POD
) -> tuple[str, str]:
    """(kind, name) of the workload behind an object: a ReplicaSet resolves to its Deployment and a Job to
    its CronJob through `intermediate` (uid -> (kind, name) of their own controller)."""
    for reference in metadata.get("ownerReferences") or []:
        if not reference.get("controller"):
            continue
        kind, name, uid = reference.get("kind", ""), reference.get("name", ""), reference.get("uid", "")
        if kind in (WorkloadKind.REPLICA_SET, WorkloadKind.JOB) and uid in intermediate:
            return intermediate[uid]
        return kind, name
    return fallback_kind, metadata.get("name", "")


def owner_uid(metadata: dict[str, Any], intermediate: dict[str, tuple[str, str]]) -> str:
    """The UID of the workload `top_owner` names, when the pod's own controller reference names it (a StatefulSet,
    a DaemonSet, a bare ReplicaSet or Job, an operator's custom resource): "" when it is reached through a
    ReplicaSet or a Job (a Deployment, a CronJob) or is the pod itself. An operator-owned workload's pods are found
    by it (drift.rollout.evict)."""
    for reference in metadata.get("ownerReferences") or []:
        if not reference.get("controller"):
            continue
        own = (reference.get("kind", ""), reference.get("name", ""))
        uid = reference.get("uid", "")
        return uid if intermediate.get(uid, own) == own else ""
    return ""


def controller_of(metadata: dict[str, Any], kind: str) -> tuple[str, str]:
    """For a ReplicaSet or Job: its own controller (Deployment, CronJob), or itself when it has none."""
    for reference in metadata.get("ownerReferences") or []:
        if reference.get("controller"):
            return reference.get("kind", ""), reference.get("name", "")
    return kind, metadata.get("name", "")


def container_runs(pod: dict[str, Any]) -> list[ContainerRun]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    uid = (pod.get("metadata") or {}).get("uid", "")
    runs: list[ContainerRun] = []
    for init, containers_key, statuses_key in (
        (True, "initContainers", "initContainerStatuses"),
        (False, "containers", "containerStatuses"),
    ):
        statuses = {item.get("name"): item for item in status.get(statuses_key) or []}
        for container in spec.get(containers_key) or []:
            name = container.get("name", "")
            state_holder = statuses.get(name) or {}
            state = state_holder.get("state") or {}
            running = "running" in state
            started_at = parse_time((state.get("running") or state.get("terminated") or {}).get("startedAt"))
            # Without a runtime id (kwok gives none), a run is known by its restart count and start time.
            started = started_at.isoformat() if started_at else "pending"
            identity = (
                state_holder.get("containerID") or f"{uid}/{name}/{state_holder.get('restartCount', 0)}/{started}"
            )
            last_terminated = (state_holder.get("lastState") or {}).get("terminated")
            runs.append(
                ContainerRun(
                    name=name,
                    init=init,
                    identity=identity,
                    started_at=started_at,
                    running=running,
                    spec=container,
                    restart_count=_count(state_holder.get("restartCount")),
                    waiting_reason=_reason((state.get("waiting") or {}).get("reason")),
                    termination=termination_of(state.get("terminated")),
                    previous_termination=termination_of(last_terminated),
                    previous_identity=str((last_terminated or {}).get("containerID") or ""),
                )
            )
    return runs


def termination_of(terminated: Any) -> Termination | None:
    """A `terminated` state as plain values; None when there is none. A malformed field is left out, not fatal:
    a status is written by kubelets we do not control."""
    if not isinstance(terminated, dict):
        return None
    exit_code = terminated.get("exitCode")
    try:
        finished_at = parse_time(terminated.get("finishedAt"))
    except (TypeError, ValueError):
        finished_at = None
    return Termination(
        reason=_reason(terminated.get("reason")),
        exit_code=exit_code if isinstance(exit_code, int) and -(2**31) <= exit_code < 2**31 else None,
        finished_at=finished_at if finished_at is not None and finished_at.tzinfo is not None else None,
    )


def _reason(value: Any) -> str:
    """A reason as a kubelet gives it (a CamelCase word), cut to its column."""
    return value[:64] if isinstance(value, str) else ""


def _count(value: Any) -> int:
    return value if isinstance(value, int) and 0 <= value < 2**31 else 0


def consumptions_of(pod_spec: dict[str, Any], container: dict[str, Any]) -> list[ConsumptionSpec]:
    """Every way one container consumes a ConfigMap or Secret, in the order the spec lists them."""
    found: list[ConsumptionSpec] = []
    explicit_env = [item.get("name", "") for item in container.get("env") or []]
    for item in container.get("env") or []:
        value_from = item.get("valueFrom") or {}
        for kind, ref_key in ((CONFIG_MAP, "configMapKeyRef"), (SECRET, "secretKeyRef")):
            ref = value_from.get(ref_key)
            if ref:
                found.append(
                    ConsumptionSpec(
                        source_kind=kind,
                        source_name=ref.get("name", ""),
                        mode=Mode.ENV,
                        keys=(ref.get("key", ""),),
                        env_names=((item.get("name", ""), ref.get("key", "")),),
                        optional=bool(ref.get("optional")),
                    )
                )
    for item in container.get("envFrom") or []:
        for kind, ref_key in ((CONFIG_MAP, "configMapRef"), (SECRET, "secretRef")):
            ref = item.get(ref_key)
            if ref:
                found.append(
                    ConsumptionSpec(
                        source_kind=kind,
                        source_name=ref.get("name", ""),
                        mode=Mode.ENV_FROM,
                        env_prefix=item.get("prefix") or "",
                        shadowed_env=tuple(explicit_env),
                        optional=bool(ref.get("optional")),
                    )
                )
    volumes = {volume.get("name"): volume for volume in pod_spec.get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount.get("name"))
        if volume:
            found.extend(_volume_consumptions(volume, mount))
    return found


def _volume_consumptions(volume: dict[str, Any], mount: dict[str, Any]) -> list[ConsumptionSpec]:
    sub_path = mount.get("subPath") or mount.get("subPathExpr") or ""
    mount_path = mount.get("mountPath", "")
    sources: list[tuple[SourceKind, dict[str, Any], Mode]] = []  # (kind, reference, mode)
    if volume.get("configMap"):
        sources.append((CONFIG_MAP, volume["configMap"], Mode.VOLUME))
    if volume.get("secret"):
        reference = dict(volume["secret"])
        reference["name"] = reference.get("secretName", "")
        sources.append((SECRET, reference, Mode.VOLUME))
    for projected in (volume.get("projected") or {}).get("sources") or []:
        if projected.get("configMap"):
            sources.append((CONFIG_MAP, projected["configMap"], Mode.PROJECTED))
        if projected.get("secret"):
            sources.append((SECRET, projected["secret"], Mode.PROJECTED))
    return [_volume_consumption(kind, reference, mode, mount_path, sub_path) for kind, reference, mode in sources]


def _volume_consumption(
    kind: SourceKind, reference: dict[str, Any], mode: Mode, mount_path: str, sub_path: str
) -> ConsumptionSpec:
    items = [(item.get("path", ""), item.get("key", "")) for item in reference.get("items") or []]
    if sub_path:
        # A subPath mounts one file (or folder) of the volume; with items, paths are the items' paths.
        first_segment = sub_path.split("/", 1)[0]
        if "$(" in sub_path:
            # A subPathExpr names its file through the container's variables: judge it against every
            # key, so a change anywhere counts (never a "fresh" for a key we could not name).
            keys: tuple[str, ...] = ()
        elif items:
            keys = tuple(key for path, key in items if path == sub_path or path.split("/", 1)[0] == first_segment)
        else:
            keys = (first_segment,)
        return ConsumptionSpec(
            source_kind=kind,
            source_name=reference.get("name", ""),
            mode=Mode.SUBPATH,
            keys=keys,
            paths=tuple((path, key) for path, key in items if key in keys),
            mount_path=mount_path,
            sub_path=sub_path,
            optional=bool(reference.get("optional")),
        )
    return ConsumptionSpec(
        source_kind=kind,
        source_name=reference.get("name", ""),
        mode=mode,
        keys=tuple(key for _, key in items),
        paths=tuple(items),
        mount_path=mount_path,
        optional=bool(reference.get("optional")),
    )


def data_modified_at(metadata: dict[str, Any]) -> datetime | None:
    """The latest managedFields time of a manager that owns the data, an upper bound of when it changed."""
    times = [
        parse_time(entry.get("time"))
        for entry in metadata.get("managedFields") or []
        if any(field in (entry.get("fieldsV1") or {}) for field in ("f:data", "f:binaryData", "f:stringData"))
    ]
    known = [time for time in times if time is not None]
    return max(known) if known else None


# Images of config-reloader sidecars: a container that watches the volume and signals the app to re-read it. Matched
# on the last part of the image's repository (registry and tag do not matter).
CONFIG_RELOADER_IMAGES = {
    "configmap-reload": "configmap-reload",
    "prometheus-config-reloader": "prometheus-config-reloader",
    "k8s-sidecar": "k8s-sidecar",
    "config-reloader": "config-reloader",
}
# Annotations by which an owner has a tool restart its pods when config changes (so the app needs a restart):
# Reloader (auto, named lists, search/match), Wave, and Helm's checksum/* convention on the pod template.
RESTART_TOOL_PREFIXES = (
    ("reloader.stakater.com/", "Reloader"),
    ("configmap.reloader.stakater.com/", "Reloader"),
    ("secret.reloader.stakater.com/", "Reloader"),
    ("wave.pusher.com/update-on-config-change", "Wave"),
    ("checksum/", "Helm checksum"),
)


def restart_tool(annotations: Mapping[str, str]) -> str:
    """The restart tool these annotations enlist, with the annotation that says so ("" for none)."""
    for name in sorted(annotations):
        for prefix, tool in RESTART_TOOL_PREFIXES:
            if name.startswith(prefix) and str(annotations[name]).strip().lower() not in ("", "false"):
                return f"{tool} ({name})"
    return ""


# What Reloader writes into a pod template when it restarts a workload: an annotation (its "annotations" strategy,
# a JSON object naming the ConfigMap or Secret) or an env var STAKATER_<NAME>_CONFIGMAP|SECRET ("env-vars").
RELOADER_ANNOTATION = "reloader.stakater.com/last-reloaded-from"
RELOADER_ENV = re.compile(r"STAKATER_[A-Z0-9_]+_(CONFIGMAP|SECRET)")


def reloaded_by(pod: Mapping[str, Any]) -> str:
    """Which Reloader restart made this pod's template ("" for none): what triggered it ("ConfigMap env-config", or
    the env var's name) and the template's pod-template-hash, so the pods of one restart share it. Never the
    hashes Reloader writes (one of a Secret's data is not ours to keep)."""
    metadata = pod.get("metadata") or {}
    template = str((metadata.get("labels") or {}).get("pod-template-hash", ""))[:16]
    annotation = (metadata.get("annotations") or {}).get(RELOADER_ANNOTATION)
    said = ""
    if annotation:
        try:
            source = json.loads(str(annotation))
        except ValueError:
            source = None
        if isinstance(source, dict) and isinstance(source.get("name"), str):
            said = f"{source.get('kind') or 'source'} {source['name']}"
        else:
            said = "a ConfigMap or Secret"
    else:
        names = sorted(
            {
                str(item.get("name"))
                for container in (pod.get("spec") or {}).get("containers") or []
                for item in container.get("env") or []
                if RELOADER_ENV.fullmatch(str(item.get("name", "")))
            }
        )
        said = ", ".join(names)
    return f"{said[:200]} @{template}" if said else ""


def restart_tool_annotations(annotations: Mapping[str, str]) -> dict[str, str]:
    """Only the annotations ``restart_tool`` reads: what a listing keeps of an owner (a ReplicaSet carries its
    Deployment's annotations)."""
    return {
        name: str(value)[:253]
        for name, value in annotations.items()
        if any(name.startswith(prefix) for prefix, _ in RESTART_TOOL_PREFIXES)
    }


def _image_name(image: str) -> str:
    repository = image.split("@", 1)[0]
    last = repository.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def reload_hints(
    pod: Mapping[str, Any], container_name: str, owner_annotations: Mapping[str, str] | None = None
) -> dict[str, str]:
    """What the pod says of whether one container's processes re-read a rewritten config file, as plain strings
    for drift.verdicts.rules.ReloadFacts: ``declared`` (hot|restart) with ``declared_by``, ``sidecar``,
    ``restart_tool``. A value of the annotation other than hot or restart declares nothing."""
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    hints: dict[str, str] = {}
    for name in (f"{RELOAD_ANNOTATION}.{container_name}", RELOAD_ANNOTATION):
        value = str(annotations.get(name, "")).strip().lower()
        if value in (Reload.HOT, Reload.RESTART):
            hints["declared"] = value
            hints["declared_by"] = f"annotation {name}"[:300]
            break
    spec = pod.get("spec") or {}
    for other in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        if other.get("name") == container_name:
            continue
        known = CONFIG_RELOADER_IMAGES.get(_image_name(str(other.get("image", ""))))
        if known:
            hints["sidecar"] = f"{known}, container {other.get('name', '')}"[:300]
            break
    tool = restart_tool(annotations) or restart_tool(owner_annotations or {})
    if tool:
        hints["restart_tool"] = tool[:300]
    return hints
