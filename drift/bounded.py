"""Values taken from a request, cut to a length a column (or a reader) can take, and marked as cut so a
reader of the audit log knows there was more."""

from __future__ import annotations

from typing import Any

from django.db import models

MARK = "…[cut]"
# Strings inside an audit entry's JSON detail: a path or a name, never a document.
DETAIL_TEXT_MAX = 1_000


def bounded(value: object, limit: int) -> str:
    """`value` as text of at most `limit` characters, ending with MARK when it was longer."""
    text = "" if value is None else str(value)
    if len(text) <= limit:
        return text
    return text[: max(limit - len(MARK), 0)] + MARK[:limit]


def bounded_detail(value: Any) -> Any:
    """Every string in a JSON value bounded, keys included."""
    if isinstance(value, str):
        return bounded(value, DETAIL_TEXT_MAX)
    if isinstance(value, dict):
        return {bounded(key, DETAIL_TEXT_MAX): bounded_detail(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [bounded_detail(item) for item in value]
    return value


def bound_fields(instance: models.Model, names: list[str]) -> None:
    """Cut each named CharField of `instance` to its max_length."""
    for name in names:
        field = instance._meta.get_field(name)
        limit = getattr(field, "max_length", None)
        if limit:
            setattr(instance, name, bounded(getattr(instance, name), limit))
