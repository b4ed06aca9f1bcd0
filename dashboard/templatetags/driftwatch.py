"""Small template helpers for Driftwatch's pages. Nothing here marks text safe: every value stays escaped."""

from __future__ import annotations

from typing import Any

from django import template
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from dashboard import access
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
def verdict_label(verdict: str | None) -> str:
    """A verdict as a team lead reads it ("new on disk only" for unreloaded)."""
    try:
        return VERDICT_LABELS[Verdict(verdict or "")]
    except ValueError:
        return str(verdict or "")


@register.filter
def advice(row: DriftRow) -> Advice | None:
    """Why one drift row is not fresh and what to do (drift.verdicts.rules.advice), without the kubelet's time."""
    return rules.advice(row.mode, row.verdict)
