"""A local HTTP receiver for webhook tests: it listens on loopback (127.0.0.1, or ::1), records every request, and
answers what the test sets (a status, a redirect, failures before either); over HTTPS with a certificate the test
gives, recording the name each client asked for in SNI."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    status: int = 200
    location: str = ""
    server_names: list[str | None] = field(default_factory=list)
    # The first this many requests are answered 503, as by a receiver that is briefly down; then `status`.
    failures_before_status: int = 0

    def wait_for(self, count: int, timeout: float = 60) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return list(self.requests)


@contextmanager
def receiver(host: str = "127.0.0.1", tls: tuple[Path, Path] | None = None) -> Iterator[Receiver]:
    """Serve on HOST; with `tls` (certificate, key), over HTTPS."""
    state = Receiver(url="")
    lock = threading.Lock()  # the server answers each request in a thread of its own

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            with lock:
                state.requests.append(Received(self.path, dict(self.headers), body, time.time()))
                failing = len(state.requests) <= state.failures_before_status
            self.send_response(503 if failing else state.status)
            if state.location:
                self.send_header("Location", state.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    server = Server((host, 0), Handler)
    shown = f"[{host}]" if ":" in host else host
    state.url = f"{'https' if tls else 'http'}://{shown}:{server.server_address[1]}/hook"
    if tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)

        def record_server_name(_socket: ssl.SSLSocket, name: str | None, _context: ssl.SSLContext) -> None:
            state.server_names.append(name)

        context.sni_callback = record_server_name
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
