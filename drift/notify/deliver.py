"""Delivering one notice to one channel: a Slack-compatible or JSON webhook (HMAC-SHA256 signed), or e-mail.

A webhook request never follows a redirect to another host than the one configured (a redirect within it is
followed, a few times at most), speaks only http/https, times out, and never reaches an inward address
(`drift.notify.outbound`: checked at each hop, and connected to as checked). What a notice says is built from names,
times and verdict reasons: never a ConfigMap or Secret value."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from django.core.mail import send_mail

from drift.models import Channel
from drift.notify import outbound

SIGNATURE_HEADER = "X-Driftwatch-Signature"
TIMEOUT_SECONDS = 10
MAX_REDIRECTS = 3


class DeliveryFailed(Exception):
    """The reason is safe to store and to show operators: a status code, a timeout, a refused redirect. Viewers
    are shown that delivery failed and the host, never the reason (it would map what the host answers)."""


class AddressRefused(DeliveryFailed):
    """The webhook's host is an inward address: final, trying again would change nothing."""


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    link: str
    fields: dict[str, Any]


def signature(key: str, body: bytes) -> str:
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def deliver(channel: Channel, message: Message) -> None:
    if channel.kind == Channel.Kind.EMAIL:
        recipients = [address.strip() for address in channel.email_to.split(",") if address.strip()]
        try:
            send_mail(message.subject, f"{message.text}\n\n{message.link}\n", None, recipients)
        except Exception as error:  # smtplib and socket errors alike; their text names hosts, not values
            raise DeliveryFailed(f"e-mail not sent: {type(error).__name__}") from error
        return
    if channel.kind == Channel.Kind.SLACK:
        payload: dict[str, Any] = {"text": f"*{message.subject}*\n{message.text}\n<{message.link}|Review and roll out>"}
    else:
        payload = {"subject": message.subject, "text": message.text, "link": message.link, **message.fields}
    body = json.dumps(payload, sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "driftwatch-notify"}
    if channel.kind == Channel.Kind.JSON and channel.signing_key:
        headers[SIGNATURE_HEADER] = signature(channel.signing_key, body)
    post(channel.url, body, headers)


def post(url: str, body: bytes, headers: dict[str, str]) -> None:
    """POST, following redirects only to the configured host (and scheme http/https), each hop to a checked
    address."""
    allowed = urlsplit(url).hostname
    target = url
    with outbound.session() as pinned:
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(target)
            if parts.scheme not in ("http", "https") or parts.hostname != allowed:
                raise DeliveryFailed(
                    f"refused a redirect to another host or scheme ({parts.scheme}://{parts.hostname})"
                )
            response = _post_once(pinned, target, body, headers)
            if response.is_redirect and "location" in response.headers:
                target = urljoin(target, response.headers["location"])
                continue
            if 200 <= response.status_code < 300:
                return
            raise DeliveryFailed(f"the webhook answered HTTP {response.status_code}")
    raise DeliveryFailed(f"more than {MAX_REDIRECTS} redirects")


def _post_once(pinned: requests.Session, url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    try:
        return pinned.post(url, data=body, headers=headers, timeout=TIMEOUT_SECONDS, allow_redirects=False)
    except outbound.RefusedAddress as error:
        raise AddressRefused(str(error)) from error
    except requests.Timeout as error:
        raise DeliveryFailed(f"no answer within {TIMEOUT_SECONDS} s") from error
    except requests.RequestException as error:
        raise DeliveryFailed(f"cannot connect ({type(error).__name__})") from error


def absolute(path: str) -> str:
    return settings.DRIFTWATCH_BASE_URL.rstrip("/") + path
