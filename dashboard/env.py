"""Tiny helpers that read settings from the environment and fail loudly on a bad value."""

import ipaddress
import os
import zoneinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_secret_key(name: str, key_file: Path, default: str) -> str:
    """`name` from the environment; unset: the key `make demo` keeps in `key_file`, so `manage.py` in a checkout
    where the demo ran signs and hashes as the demo does; neither: `default`."""
    if name in os.environ:
        return os.environ[name]
    try:
        kept = key_file.read_text().strip()
    except FileNotFoundError:
        return default
    except OSError as error:
        raise ImproperlyConfigured(f"{name} is unset and {key_file} cannot be read: {error.strerror}") from None
    return kept or default


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use one of 1/0, true/false, yes/no, on/off.")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below its minimum of {minimum}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_database(name: str, default: str) -> dict[str, Any]:
    raw = os.environ.get(name, default)
    scheme = urlparse(raw).scheme
    if scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(
            f"{name} must be a PostgreSQL URL such as postgres://user:password@127.0.0.1:5432/driftwatch "
            f"(got scheme {scheme!r}); Driftwatch runs on PostgreSQL only."
        )
    try:
        return dict(dj_database_url.parse(raw, conn_max_age=60))
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} is not a valid database URL: {error}") from None


def env_redis_url(name: str, default: str) -> str:
    raw = os.environ.get(name, default)
    parsed = urlparse(raw)
    if parsed.scheme not in {"redis", "rediss"} or not parsed.hostname:
        raise ImproperlyConfigured(f"{name} must look like redis://127.0.0.1:6379/0 (got {raw!r}).")
    return raw


def env_time_zone(name: str, default: str) -> str:
    raw = os.environ.get(name, default)
    try:
        zoneinfo.ZoneInfo(raw)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(f"{name}={raw!r} is not a known time zone such as UTC or Europe/Paris.") from None
    return raw


def env_networks(name: str, default: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated address ranges in CIDR notation, e.g. 10.20.0.0/16,fd00:20::/64."""
    networks = []
    for item in env_list(name, default):
        try:
            networks.append(ipaddress.ip_network(item))
        except ValueError as error:
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not an address range such as 10.20.0.0/16 or 127.0.0.0/8 ({error})."
            ) from None
    return networks


# DRIFTWATCH_URLS: the URL sets a process may serve, each a URLconf module.
URL_SETS = {"all": "dashboard.urls", "dashboard": "dashboard.urls_dashboard", "audit": "dashboard.urls_audit"}


def env_urlconf(name: str, default: str = "all") -> str:
    raw = os.environ.get(name, default)
    try:
        return URL_SETS[raw.strip().lower()]
    except KeyError:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a set of URLs: use all, dashboard or audit (the audit receiver only)."
        ) from None
