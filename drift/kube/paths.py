"""API paths and the permissions they need, built only from validated, quoted names: a name that Kubernetes
would refuse never reaches a URL, and a "/" or ".." in one can never become a path of its own."""

from __future__ import annotations

import re
from urllib.parse import quote

from drift.kube.errors import InvalidName

# RFC 1123, as the API server validates them: a DNS label (namespaces) and a DNS subdomain (most object names).
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def validate_namespace(value: str) -> str:
    """A namespace name (a DNS label, at most 63 characters), or InvalidName."""
    if len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        raise InvalidName(f"{value[:80]!r} is not a Kubernetes namespace name (RFC 1123 label)")
    return value


def validate_name(value: str) -> str:
    """An object name (a DNS subdomain, at most 253 characters), or InvalidName."""
    if len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise InvalidName(f"{value[:80]!r} is not a Kubernetes object name (RFC 1123 subdomain)")
    return value


def _segment(value: str) -> str:
    # Quoted with no safe characters: a "/" or ".." can never become a path of its own.
    return quote(value, safe="")


def workload_path(group_version: str, plural: str, namespace: str, name: str) -> str:
    """The API path of one namespaced object of a named API group ("apps/v1", "argoproj.io/v1alpha1"), from
    validated, quoted segments. Each kind says its own group and resource (drift.rollout.kinds)."""
    namespace, name = _segment(validate_namespace(namespace)), _segment(validate_name(name))
    return f"/apis/{group_version}/namespaces/{namespace}/{_segment(plural)}/{name}"


def collection_path(group_version: str, plural: str, namespace: str) -> str:
    """The API path of a namespaced collection of a named API group (where a new object is POSTed)."""
    return f"/apis/{group_version}/namespaces/{_segment(validate_namespace(namespace))}/{_segment(plural)}"


def workload_permission(group_version: str, plural: str, verb: str, namespace: str) -> str:
    """What RBAC must allow to `verb` such an object, as a 403 names it ("patch deployments.apps in shop")."""
    group = group_version.rpartition("/")[0]
    resource = f"{plural}.{group}" if group else plural
    return f"{verb} {resource} in {namespace}"


def core_path(plural: str, namespace: str, name: str = "") -> str:
    """The API path of a core/v1 collection in a namespace, or of one object in it (validated, quoted)."""
    path = f"/api/v1/namespaces/{_segment(validate_namespace(namespace))}/{_segment(plural)}"
    return f"{path}/{_segment(validate_name(name))}" if name else path


# The owners a pod's verdict reads through (a ReplicaSet's Deployment, a Job's CronJob): their API group paths.
_OWNER_COLLECTIONS = {
    "ReplicaSet": "/apis/apps/v1/namespaces/{}/replicasets",
    "Job": "/apis/batch/v1/namespaces/{}/jobs",
}


def owner_path(kind: str, namespace: str, name: str) -> str:
    """The API path of one ReplicaSet or Job (validated, quoted)."""
    collection = _OWNER_COLLECTIONS[kind].format(_segment(validate_namespace(namespace)))
    return f"{collection}/{_segment(validate_name(name))}"


def node_path(name: str) -> str:
    return f"/api/v1/nodes/{_segment(validate_name(name))}"


def exec_permission(namespace: str) -> str:
    return f"create pods/exec in {namespace}"
