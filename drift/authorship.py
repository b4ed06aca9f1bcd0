"""Who wrote a version of a ConfigMap or Secret: pure rules, no database, no Kubernetes.

Two sources, of different worth:
- `managedFields` (always there): the field manager that touched `data`/`binaryData`/`stringData` last, and
  when, to the second. It names a client (`kubectl-patch`, `helm`, `argocd-controller`), never a person.
- the API server's audit events (when the cluster sends them): the authenticated user (or the user it
  impersonated), its groups, user agent and source addresses. At `Metadata` level nothing names the
  resourceVersion a write produced, so an event is joined to a version by object, time and field manager,
  and the join says how sure it is (see `join_confidence`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from drift.podspec import parse_time

CONTENT_FIELDS = ("f:data", "f:binaryData", "f:stringData")
WRITE_VERBS = ("create", "update", "patch", "delete")
AUDITED_RESOURCES = {"configmaps": "ConfigMap", "secrets": "Secret"}
# A refused write is kept as an attempt: it produced no version.
ATTEMPT_CODES = (403, 409, 422)
# The field managers Driftwatch knows as the controllers and tools they say they are. A field manager is whatever
# the client sent (`kubectl --field-manager=anything`): one outside this list is shown as an unrecognised
# client, in quotes, so that a name like "alice@example.com" is never read as a person.
KNOWN_CLIENTS = frozenset(
    {
        "kubectl", "kubectl-annotate", "kubectl-client-side-apply", "kubectl-create", "kubectl-edit", "kubectl-label",
        "kubectl-patch", "kubectl-replace", "kubectl-rollout", "kubectl-set", "helm", "argocd-controller",
        "argocd-application-controller", "kustomize-controller", "helm-controller", "kube-controller-manager",
        "kubelet", "OpenAPI-Generator", "Go-http-client", "driftwatch",
    }
)  # fmt: skip
# The times an audit event may carry: anything outside is no API server's clock (and year 9999 overflows the
# join's window arithmetic).
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ContentWriter:
    """The field manager that last wrote the content, as managedFields tells it."""

    manager: str
    operation: str  # Apply or Update
    at: datetime | None


def content_writer(metadata: Mapping[str, Any]) -> ContentWriter | None:
    """The manager owning `data`/`binaryData` whose entry is the latest: the writer of the current content.
    Entries of managers that own only metadata (labels, annotations) never count. Ties (two managers in the
    same second) go to the one listed last, which is the order the API server appends new entries in."""
    latest: ContentWriter | None = None
    for entry in metadata.get("managedFields") or []:
        if not isinstance(entry, Mapping) or not any(name in (entry.get("fieldsV1") or {}) for name in CONTENT_FIELDS):
            continue
        try:
            at = parse_time(entry.get("time"))
        except (TypeError, ValueError):
            at = None
        writer = ContentWriter(str(entry.get("manager") or ""), str(entry.get("operation") or ""), at)
        if latest is None or (at is not None and (latest.at is None or at >= latest.at)):
            latest = writer
    return latest


def shown_client(manager: str) -> str:
    """A field manager as pages show it: a known one by its name, any other quoted as an unrecognised client."""
    return manager if manager in KNOWN_CLIENTS else f'unrecognised client "{manager}"'


def client_label(writer: ContentWriter | None) -> str:
    """What a version says wrote it when no person is known: the client, never a person."""
    if writer is None or not writer.manager:
        return ""
    return writer.manager


# -- audit events -------------------------------------------------------------------------------------------


class MalformedEvent(ValueError):
    """An audit event we cannot read: that event is refused (counted under `reason`), the others are kept."""

    def __init__(self, message: str, reason: str = "event malformed") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class WriteEvent:
    """What Driftwatch keeps of one `ResponseComplete` audit event on a ConfigMap or Secret: metadata only."""

    audit_id: str
    verb: str
    kind: str  # ConfigMap or Secret
    namespace: str
    name: str
    uid: str  # objectRef.uid: only an update carries it
    replaced_resource_version: str  # objectRef.resourceVersion: the version an update replaced
    username: str
    groups: tuple[str, ...]
    impersonated_user: str
    impersonated_groups: tuple[str, ...]
    user_agent: str
    source_ips: tuple[str, ...]
    status_code: int
    received_at: datetime  # requestReceivedTimestamp
    completed_at: datetime  # stageTimestamp
    field_manager: str  # ?fieldManager= of the request
    dry_run: bool
    # SHA-256 of the whole event (bodies left out): what tells two events apart. The auditID is the client's own
    # Audit-ID header when it sent one, so two different writes may share it.
    digest: str = ""

    @property
    def author(self) -> str:
        """The person behind the write: the impersonated user when there is one, else the caller."""
        return self.impersonated_user or self.username

    @property
    def attempt(self) -> bool:
        return self.status_code in ATTEMPT_CODES

    @property
    def wrote(self) -> bool:
        """A write that can have produced a version: successful, not a dry run, not a delete."""
        return 200 <= self.status_code < 300 and not self.dry_run and self.verb in ("create", "update", "patch")


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedEvent(f"{what} is not a string")
    return value


def _texts(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise MalformedEvent(f"{what} is not a list of strings")
    return tuple(value)


def _time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise MalformedEvent(f"{what} is missing")
    try:
        parsed = parse_time(value)
    except ValueError:
        raise MalformedEvent(f"{what} is not a time") from None
    if parsed is None or parsed.tzinfo is None:
        raise MalformedEvent(f"{what} is not a time", "event time")
    if not EARLIEST_TIME <= parsed < LATEST_TIME:
        raise MalformedEvent(f"{what} is out of range: no API server time (years 2000 to 2199)", "event time")
    return parsed


def event_digest(raw: Mapping[str, Any]) -> str:
    """The whole event's SHA-256, its request and response bodies left out (never read, and a Secret's value
    may be in them)."""
    kept = {key: value for key, value in raw.items() if key not in ("requestObject", "responseObject")}
    try:
        text = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (RecursionError, ValueError):
        raise MalformedEvent("the event is nested too deeply") from None
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def read_event(raw: Any) -> WriteEvent | None:
    """The event Driftwatch keeps, None for one it does not (another stage, resource or verb). Never reads a
    request or response body, even when a policy sent one. Raises MalformedEvent for what cannot be read."""
    if not isinstance(raw, Mapping):
        raise MalformedEvent("an event is not an object")
    audit_id = _text(raw.get("auditID"), "auditID")
    if not audit_id or len(audit_id) > 64:
        raise MalformedEvent("auditID is missing or too long", "event auditID")
    object_ref = raw.get("objectRef") or {}
    user = raw.get("user") or {}
    impersonated = raw.get("impersonatedUser") or {}
    status = raw.get("responseStatus") or {}
    if not all(isinstance(part, Mapping) for part in (object_ref, user, impersonated, status)):
        raise MalformedEvent("objectRef, user, impersonatedUser and responseStatus must be objects")
    stage, verb = _text(raw.get("stage"), "stage"), _text(raw.get("verb"), "verb")
    resource = _text(object_ref.get("resource"), "objectRef.resource")
    if stage != "ResponseComplete" or verb not in WRITE_VERBS or resource not in AUDITED_RESOURCES:
        return None
    if object_ref.get("subresource") or object_ref.get("apiGroup"):
        return None
    code = status.get("code")
    if not isinstance(code, int) or isinstance(code, bool):
        raise MalformedEvent("responseStatus.code is not a number")
    query = parse_qs(urlsplit(_text(raw.get("requestURI"), "requestURI")).query)
    return WriteEvent(
        audit_id=audit_id,
        verb=verb,
        kind=AUDITED_RESOURCES[resource],
        namespace=_text(object_ref.get("namespace"), "objectRef.namespace"),
        name=_text(object_ref.get("name"), "objectRef.name"),
        uid=_text(object_ref.get("uid"), "objectRef.uid"),
        replaced_resource_version=_text(object_ref.get("resourceVersion"), "objectRef.resourceVersion"),
        username=_text(user.get("username"), "user.username"),
        groups=_texts(user.get("groups"), "user.groups"),
        impersonated_user=_text(impersonated.get("username"), "impersonatedUser.username"),
        impersonated_groups=_texts(impersonated.get("groups"), "impersonatedUser.groups"),
        user_agent=_text(raw.get("userAgent"), "userAgent"),
        source_ips=_texts(raw.get("sourceIPs"), "sourceIPs"),
        status_code=code,
        received_at=_time(raw.get("requestReceivedTimestamp"), "requestReceivedTimestamp"),
        completed_at=_time(raw.get("stageTimestamp"), "stageTimestamp"),
        field_manager=(query.get("fieldManager") or [""])[0],
        dry_run=bool(query.get("dryRun")),
        digest=event_digest(raw),
    )


@dataclass(frozen=True)
class EventBatch:
    """An EventList judged event by event: the events kept (each once) and the reasons of those refused."""

    events: list[WriteEvent]
    refused: list[MalformedEvent]


def read_event_list(document: Any) -> list[WriteEvent]:
    """The kept events of an `audit.k8s.io/v1` EventList. Raises MalformedEvent for anything else, and for
    the first event it cannot read."""
    batch = read_batch(document)
    if batch.refused:
        raise batch.refused[0]
    return batch.events


def read_batch(document: Any) -> EventBatch:
    """The events of an `audit.k8s.io/v1` EventList, each judged on its own: one that cannot be read is refused
    alone, the same event twice is kept once. Raises MalformedEvent for a document that is no EventList."""
    if not isinstance(document, Mapping):
        raise MalformedEvent("the body is not a JSON object")
    if document.get("kind") != "EventList" or document.get("apiVersion") != "audit.k8s.io/v1":
        raise MalformedEvent("the body is not an audit.k8s.io/v1 EventList")
    items = document.get("items")
    if not isinstance(items, list):
        raise MalformedEvent("items is not a list")
    events: dict[str, WriteEvent] = {}
    refused = []
    for item in items:
        try:
            kept = read_event(item)
        except MalformedEvent as error:
            refused.append(error)
            continue
        if kept is not None:
            events.setdefault(kept.digest, kept)
    return EventBatch(list(events.values()), refused)


# -- joining an event to the version it produced ------------------------------------------------------------


class Confidence:
    """How sure a version's author is, in the words the pages use."""

    CONFIRMED = "confirmed"  # one candidate, and it names the version it replaced: the previous one
    LIKELY = "likely"  # one candidate write in the version's second
    AMBIGUOUS = "ambiguous"  # several writes in that second: the latest is shown, all are kept
    UNKNOWN = "unknown"  # no audit event matches (none sent, or not yet)


@dataclass(frozen=True)
class VersionFacts:
    """What the join needs of a version: when managedFields says its data was written (to the second), the
    client that wrote it, and the resourceVersion of the version before it."""

    written_at: datetime | None
    client: str
    previous_resource_version: str = ""
    uid: str = ""


@dataclass(frozen=True)
class Join:
    confidence: str
    chosen: WriteEvent | None
    candidates: tuple[WriteEvent, ...] = field(default_factory=tuple)


def covers(event: WriteEvent, written_at: datetime) -> bool:
    """Whether the write's request window contains the managedFields second (which is truncated)."""
    second = written_at.replace(microsecond=0)
    return event.received_at.replace(microsecond=0) <= second <= event.completed_at


def join(version: VersionFacts, events: Iterable[WriteEvent]) -> Join:
    """The write event that produced a version, from the events on the same object. Candidates: successful,
    non-dry-run create/update/patch whose request window covers the version's managedFields second; those
    whose field manager is the version's client are preferred. One left: likely (confirmed when an update
    names the previous version); several: ambiguous, the latest (by completion) chosen; none: unknown."""
    if version.written_at is None:
        return Join(Confidence.UNKNOWN, None)
    candidates = [
        event
        for event in events
        if event.wrote and covers(event, version.written_at) and (not version.uid or event.uid in ("", version.uid))
    ]
    if version.client:
        matching = [event for event in candidates if event.field_manager == version.client]
        candidates = matching or candidates
    candidates.sort(key=lambda event: (event.completed_at, event.audit_id))
    if not candidates:
        return Join(Confidence.UNKNOWN, None)
    chosen = candidates[-1]
    if len(candidates) > 1:
        return Join(Confidence.AMBIGUOUS, chosen, tuple(candidates))
    confirmed = (
        chosen.verb == "update"
        and bool(version.previous_resource_version)
        and chosen.replaced_resource_version == version.previous_resource_version
    )
    return Join(Confidence.CONFIRMED if confirmed else Confidence.LIKELY, chosen, (chosen,))


def window_around(written_at: datetime, slack_seconds: int = 5) -> tuple[datetime, datetime]:
    """The stored events worth reading to join a version written in that second."""
    return written_at - timedelta(seconds=slack_seconds), written_at + timedelta(seconds=slack_seconds + 1)


def describe(author: str, client: str, confidence: str) -> str:
    """ "alice@example.com via kubectl-patch", "kubectl-patch (client; no person known)", for pages and logs."""
    if author:
        suffix = "" if confidence in (Confidence.CONFIRMED, Confidence.LIKELY, "") else f" ({confidence})"
        return f"{author} via {shown_client(client)}{suffix}" if client else f"{author}{suffix}"
    if not client:
        return "unknown"
    if client in KNOWN_CLIENTS:
        return f"{client} (client; no person known)"
    return f"{shown_client(client)} (no person known)"
