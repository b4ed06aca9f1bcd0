"""Fault injection in front of the real API server, for tests.

`kubectl proxy` (the real binary) authenticates to the local cluster and serves plain HTTP on loopback;
a small relay in front of it passes bytes through unchanged, except that it can stall `pods/exec`
upgrade requests (an exec that hangs) or stop listening (an API server that went away). The product
talks to the relay through an ordinary kubeconfig and cannot tell it from a cluster."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

KUBECTL = Path.home() / ".cache" / "driftwatch"


def cached_kubectl() -> str:
    found = sorted(KUBECTL.glob("kubernetes-*/kubectl"))
    if not found:
        raise RuntimeError("no cached kubectl: run scripts/cluster build")
    return str(found[-1])


class FaultProxy:
    def __init__(self, kubeconfig: Path, workdir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.stall_exec = False
        # Hold WATCH requests open without ever answering: a watch that stalls without closing.
        self.stall_watch = False
        # Pass the exec upgrade through, then close the connection before any output: a connection reset.
        self.cut_exec = False
        # Called with the request line of each exec before it is passed on (e.g. to delete the pod first).
        self.on_exec: Callable[[str], None] | None = None
        # Given each request line: "answer" passes the request on but drops the API server's answer (the change
        # is applied, the client never learns it); "request" drops the request itself; None passes it through.
        self.lose: Callable[[str], str | None] | None = None
        # Given each request line: a number of seconds answers it 429 Too Many Requests with that Retry-After, as
        # API priority and fairness does when a flow's queue is full; None passes it through.
        self.throttle: Callable[[str], int | None] | None = None
        self._stop = threading.Event()
        self._stalled: list[socket.socket] = []
        self._open: list[socket.socket] = []
        self._kubectl: subprocess.Popen | None = None
        self._listener: socket.socket | None = None
        self.upstream_port = 0
        self.port = 0

    def start(self) -> FaultProxy:
        self._kubectl = subprocess.Popen(
            [cached_kubectl(), "--kubeconfig", str(self.kubeconfig), "proxy", "--port=0", "--disable-filter=true"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self._kubectl.stdout.readline()
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        if not match:
            raise RuntimeError(f"kubectl proxy did not start: {line!r}")
        self.upstream_port = int(match.group(1))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def kubeconfig_path(self) -> Path:
        path = self.workdir / "proxied-kubeconfig"
        path.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: proxied\n"
            f"clusters:\n- name: proxied\n  cluster: {{server: 'http://127.0.0.1:{self.port}'}}\n"
            "users:\n- name: proxied\n  user: {}\n"
            "contexts:\n- name: proxied\n  context: {cluster: proxied, user: proxied}\n"
        )
        return path

    def go_away(self) -> None:
        """Stop listening: the API server now refuses connections."""
        self._stop.set()
        if self._listener:
            # shutdown() wakes the thread blocked in accept(); close() alone leaves the port listening.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()

    def drop_connections(self) -> None:
        """Close every connection passing through, as an API server that restarts does."""
        for sock in self._open + self._stalled:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._open.clear()
        self._stalled.clear()

    def come_back(self) -> None:
        """Listen again on the same port, after go_away()."""
        self._stop.clear()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self.go_away()
        for connection in self._stalled:
            with contextlib.suppress(OSError):
                connection.close()
        if self._kubectl:
            self._kubectl.terminate()
            self._kubectl.wait(timeout=10)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(65536)
            if not chunk:
                client.close()
                return
            head += chunk
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        lost = self.lose(request_line) if self.lose else None
        if self.lose or self.throttle:
            # One request per connection, so that every request line passes through here (keep-alive would
            # carry later requests past it unseen).
            head = head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
        if lost == "request":
            client.close()
            return
        retry_after = self.throttle(request_line) if self.throttle else None
        if retry_after is not None:
            body = b'{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"TooManyRequests","code":429}'
            client.sendall(
                b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                + f"Retry-After: {retry_after}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            client.close()
            return
        if lost == "answer":
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            upstream.sendall(head)
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
            try:
                upstream.recv(65536)  # the API server answered: the request was carried out
            finally:
                for sock in (client, upstream):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
            return
        if self.stall_watch and "watch=true" in request_line:
            self._stalled.append(client)  # held open, never answered
            return
        if "/exec?" in request_line:
            if self.stall_exec:
                self._stalled.append(client)  # held open, never answered
                return
            if self.on_exec:
                self.on_exec(request_line)
            if self.cut_exec:
                self._cut_after_upgrade(client, head)
                return
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        self._open.extend((client, upstream))
        upstream.sendall(head)
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        _pump(client, upstream)

    def _cut_after_upgrade(self, client: socket.socket, head: bytes) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        try:
            upstream.sendall(head)
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = upstream.recv(65536)
                if not chunk:
                    break
                answer += chunk
            client.sendall(answer.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
