"""The Driftwatch web app served where the local cluster's API server sends its audit events.

scripts/cluster writes the webhook configuration (.cluster/audit-webhook.yaml: the receiver's URL, with the
registration's name in its path, and the bearer token); the test serves the real app, on the test database,
at that port, and registers the cluster under that name with that token."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.servers.basehttp import ThreadedWSGIServer
from django.test.testcases import LiveServerThread, QuietWSGIRequestHandler

ROOT = Path(__file__).resolve().parent.parent
WEBHOOK_CONFIG = ROOT / ".cluster" / "audit-webhook.yaml"


@dataclass(frozen=True)
class Webhook:
    url: str
    port: int
    cluster_name: str
    token: str


def webhook() -> Webhook:
    document = yaml.safe_load(WEBHOOK_CONFIG.read_text())
    url = document["clusters"][0]["cluster"]["server"]
    parts = urlsplit(url)
    return Webhook(url, parts.port or 80, parts.path.strip("/").split("/")[-1], document["users"][0]["user"]["token"])


class FixedPortServerThread(LiveServerThread):
    """Django's live server, on a port given in advance: rebinding it right after an earlier test's server
    (connections in TIME_WAIT) needs SO_REUSEADDR, which Django's own leaves off for its random ports."""

    def _create_server(self, connections_override: Any = None) -> ThreadedWSGIServer:
        server = self.server_class(
            (self.host, self.port), QuietWSGIRequestHandler, allow_reuse_address=True,
            connections_override=connections_override,
        )  # fmt: skip
        # The API server sends its bearer token over HTTPS only: serve with the receiver's certificate.
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(ROOT / ".cluster" / "audit-receiver.crt", ROOT / ".cluster" / "audit-receiver.key")
        # The handshake happens in each request's own thread (on its first read), never in the accepting one: a
        # client that connects and sends nothing cannot hold up every later delivery.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        return server


@contextmanager
def receiving(port: int) -> Iterator[None]:
    """Serve the app over HTTPS on 127.0.0.1:PORT until the block ends."""
    server = FixedPortServerThread("127.0.0.1", StaticFilesHandler, connections_override=None, port=port)
    server.daemon = True
    server.start()
    server.is_ready.wait()
    if server.error:
        raise RuntimeError(f"cannot serve on 127.0.0.1:{port}: {server.error}")
    try:
        yield
    finally:
        server.terminate()
