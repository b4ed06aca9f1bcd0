"""ConfigMaps that change on their own every few seconds (leader election, status reports) and are ignored.

Recording them would write a version and an audit entry each cycle and say nothing about configuration.
Each cluster has its own list of patterns (`Cluster.ignored_config_maps`, editable in admin): a pattern is
a shell-style glob (`*`, `?`, `[...]`) on the ConfigMap's name, or on `NAMESPACE/NAME` when it holds a
slash. Secrets are never ignored. Pure: no database, no Kubernetes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import fnmatchcase

from django.core.exceptions import ValidationError

DEFAULT_IGNORED_CONFIG_MAPS = [
    "cluster-autoscaler-status",
    "*-leader-election",
    "*-leader-elect",
    "*-leader",
    "kube-system/kube-scheduler",
    "kube-system/kube-controller-manager",
    "kube-system/*-lock",
]
MAX_PATTERNS = 100
# Characters of Kubernetes names (RFC 1123 subdomains) plus the glob characters; one slash at most.
_PATTERN = re.compile(r"^([a-z0-9*?\[\]\-.]{1,253}/)?[a-z0-9*?\[\]\-.]{1,253}$")


def default_ignored_config_maps() -> list[str]:
    return list(DEFAULT_IGNORED_CONFIG_MAPS)


def is_ignored(patterns: Iterable[str], namespace: str, name: str) -> bool:
    qualified = f"{namespace}/{name}"
    return any(fnmatchcase(qualified if "/" in pattern else name, pattern) for pattern in patterns)


def validate_patterns(value: object) -> None:
    """A list of at most MAX_PATTERNS glob patterns made of name characters: anything else is refused with
    the pattern it concerns."""
    if not isinstance(value, list):
        raise ValidationError('Give a list of name patterns, e.g. ["*-leader-election"].')
    if len(value) > MAX_PATTERNS:
        raise ValidationError(f"At most {MAX_PATTERNS} patterns.")
    for pattern in value:
        if not isinstance(pattern, str) or not _PATTERN.match(pattern):
            shown = repr(pattern)[:80]
            raise ValidationError(
                f"{shown} is not a name pattern: use lower-case letters, digits, '-', '.', and the globs "
                "'*', '?', '[...]', optionally as NAMESPACE/NAME."
            )
