"""Small template helpers for Driftwatch's pages. Nothing here marks a value safe: markup is built with
format_html, which escapes every value it puts in."""

from __future__ import annotations

import re
from typing import Any

from django import template
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from dashboard import access
from dashboard.pages.at import at_query
from drift import kube
from drift.models import Rollout
from drift.verdicts import DriftRow, rules
from drift.verdicts.rules import Advice
from drift.vocabulary import VERDICT_LABELS, SourceKind, Verdict, WorkloadKind

register = template.Library()


@register.filter
def may_roll_out(user: AbstractBaseUser | AnonymousUser, obj: Any) -> bool:
    """Whether the user may roll out `obj`: anything with a cluster (a name or a Cluster) and a namespace."""
    return access.may_roll_out(user, access.cluster_name(obj.cluster), obj.namespace)


@register.filter
def percent(part: int | None, whole: int | None) -> int:
    """0-100 for a progress bar; a whole of 0 counts as done."""
    if not whole:
        return 100
    return max(0, min(100, round(100 * (part or 0) / whole)))


@register.filter
def short(value: str | None, length: int = 12) -> str:
    text = value or ""
    return text if len(text) <= length else text[:length] + "…"


@register.filter
def get(mapping: dict | None, key: str) -> object:
    return (mapping or {}).get(key)


@register.filter
def plural(kind: str) -> str:
    """ConfigMap -> configmaps, Secret -> secrets: how the source pages' URLs spell a kind."""
    kinds: tuple[type[SourceKind] | type[WorkloadKind], ...] = (SourceKind, WorkloadKind)
    for enum in kinds:
        try:
            return enum(kind).plural
        except ValueError:
            continue
    return kind.lower() + "s"


@register.filter
def bars(rollout: Rollout) -> list[tuple[str, int]]:
    """The progress bars of a rollout, against its desired pod count."""
    return [("Updated", rollout.updated), ("Ready", rollout.ready), ("Available", rollout.available)]


@register.filter
def eviction_bars(rollout: Rollout) -> list[tuple[str, int]]:
    """The progress bars of a restart of the stale pods only, against the pods chosen."""
    return [("Evicted", rollout.updated), ("Replaced", rollout.ready)]


@register.filter
def verdict_label(verdict: str | None) -> str:
    """A verdict as a team lead reads it ("new on disk only" for unreloaded)."""
    try:
        return VERDICT_LABELS[Verdict(verdict or "")]
    except ValueError:
        return str(verdict or "")


@register.filter
def ran_then_url(event: Any) -> str:
    """The namespace's point in time at an audit entry's moment ("" when the entry names no namespace, or names
    one Kubernetes would refuse: an entry may quote what a hostile request sent)."""
    cluster, namespace = getattr(event, "cluster_name", ""), getattr(event, "namespace", "")
    if not cluster or not namespace or not re.fullmatch(r"[-a-zA-Z0-9_]{1,63}", cluster):
        return ""
    try:
        kube.validate_namespace(namespace)
    except kube.InvalidName:
        return ""
    return f"{reverse('namespace', args=[cluster, namespace])}?{at_query(event.at)}"


@register.filter
def timeline_url(event: Any) -> str:
    """The namespace's timeline around an audit entry's moment, the entry's own row marked ("" as for
    ``ran_then_url``)."""
    then = ran_then_url(event)
    if not then:
        return ""
    return f"{reverse('timeline', args=[event.cluster_name, event.namespace])}?{at_query(event.at)}"


@register.simple_tag
def version_name(number: int | None, resource_version: str | None = "") -> SafeString | str:
    """One name for a version on every page: "#12", its resourceVersion as detail on hover. A version Driftwatch
    has not recorded (no number) falls back to its resourceVersion, said in full; neither is "unknown"."""
    if number is not None and resource_version:
        return format_html('<span class="version" title="resourceVersion {}">#{}</span>', resource_version, number)
    if number is not None:
        return f"#{number}"
    if resource_version:
        return f"resourceVersion {resource_version}"
    return "unknown"


@register.filter
def advice(row: DriftRow) -> Advice | None:
    """Why one drift row is not fresh and what to do (drift.verdicts.rules.advice), without the kubelet's time."""
    return rules.advice(row.mode, row.verdict)
