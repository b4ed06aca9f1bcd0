"""Running a command in a container: the exec websocket protocol (v4.channel.k8s.io), spoken here rather than
through the client library's stream(), which opens the socket without any timeout (a stalled handshake would
hang a worker forever). TLS and proxy settings are the ones the cluster's configuration gives plain requests."""

from __future__ import annotations

import json
import re
import ssl
import time
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import certifi
import websocket
from kubernetes import client as k8s_client
from requests.utils import should_bypass_proxies

from drift.kube.errors import (
    ExecFailed,
    ExecTimeout,
    Forbidden,
    KubeConfigError,
    KubeError,
    NotFound,
    Unreachable,
    first_line,
)
from drift.kube.paths import core_path, exec_permission

MAX_EXEC_OUTPUT_BYTES = 16 * 1024 * 1024
STDOUT_CHANNEL, STDERR_CHANNEL, STATUS_CHANNEL = 1, 2, 3
# The proxy scheme exec can go through, with its usual port: http (a CONNECT tunnel, as for plain requests).
# An https:// proxy (TLS to the proxy itself) and socks ones (python-socks, and urllib3's SOCKS manager for
# plain requests) are not supported: refused with a message rather than failing obscurely.
PROXY_PORTS = {"http": 80}


def exec_url(host: str, namespace: str, pod: str, container: str, command: list[str]) -> str:
    query = [("container", container), ("stdout", "true"), ("stderr", "true")]
    query += [("command", part) for part in command]
    return re.sub(r"^http", "ws", host) + f"{core_path('pods', namespace, pod)}/exec?{urlencode(query)}"


def proxy_options(configuration: k8s_client.Configuration, url: str) -> dict[str, Any]:
    """websocket-client's connect options for the proxy the configuration names (a kubeconfig's proxy-url or
    the HTTPS_PROXY environment), unless `no_proxy` exempts the API server; {} when none applies."""
    if not configuration.proxy:
        return {}
    target = re.sub(r"^ws", "http", url)
    if should_bypass_proxies(target, no_proxy=configuration.no_proxy or ""):
        return {}
    proxy = urlsplit(configuration.proxy)
    scheme = proxy.scheme.lower()
    if scheme not in PROXY_PORTS or not proxy.hostname:
        raise KubeConfigError(f"proxy {scheme}://{proxy.hostname or ''} cannot carry exec: use an http:// proxy")
    no_proxy = [host.strip() for host in configuration.no_proxy.split(",")] if configuration.no_proxy else None
    options: dict[str, Any] = {
        "http_proxy_host": proxy.hostname,
        "http_proxy_port": proxy.port or PROXY_PORTS[scheme],
        "proxy_type": scheme,
        # The same list decided above, so websocket-client agrees (None: it reads the environment's, as we did).
        "http_no_proxy": no_proxy,
    }
    if proxy.username:
        options["http_proxy_auth"] = (unquote(proxy.username), unquote(proxy.password or ""))
    return options


def run_exec(
    configuration: k8s_client.Configuration,
    api: k8s_client.ApiClient,
    target: tuple[str, str, str],
    command: list[str],
    timeout_seconds: float,
) -> str:
    """Run `command` in container `target` (namespace, pod, container) and return its standard output. A
    non-zero exit, a hang past the timeout, or a refusal raise KubeError subclasses with a reason a person
    can act on."""
    namespace, pod, container = target
    url = exec_url(configuration.host, namespace, pod, container, command)
    auth: dict[str, str] = {}
    api.update_params_for_auth(auth, [], ["BearerToken"])
    header = ["sec-websocket-protocol: v4.channel.k8s.io"]
    header += [f"authorization: {value}" for key, value in auth.items() if key.lower() == "authorization"]
    deadline = time.monotonic() + timeout_seconds
    what = f"exec into {namespace}/{pod}/{container}"
    proxy = proxy_options(configuration, url)
    ws = websocket.WebSocket(sslopt=_ssl_options(configuration, url), skip_utf8_validation=True)
    try:
        try:
            ws.connect(url, header=header, timeout=timeout_seconds, **proxy)
        except websocket.WebSocketBadStatusException as error:
            raise _exec_refusal(error.status_code, namespace, pod, error) from None
        except (websocket.WebSocketTimeoutException, TimeoutError):
            raise ExecTimeout(f"{what} timed out after {timeout_seconds:g}s") from None
        except (OSError, websocket.WebSocketException) as error:
            raise Unreachable(f"{what}: {first_line(error)}") from None
        stdout, stderr, status = _read_exec_channels(ws, deadline, what, timeout_seconds)
    finally:
        ws.close(timeout=0)
    if not status:  # the API server always ends an exec with its status: this stream was cut short
        raise Unreachable(f"{what}: the connection closed before the command's exit status")
    if status.get("status") == "Failure":
        message = stderr.decode("utf-8", "replace").strip() or status.get("message", "")
        code = _exit_code(status)
        prefix = f"exit code {code}" if code is not None else "failed"
        raise ExecFailed(f"{prefix}: {first_line(message)}")
    return stdout.decode("utf-8", "surrogateescape")


def _read_exec_channels(
    ws: websocket.WebSocket, deadline: float, what: str, timeout_seconds: float
) -> tuple[bytes, bytes, dict[str, Any]]:
    stdout, stderr = bytearray(), bytearray()
    status: dict[str, Any] = {}
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ExecTimeout(f"{what} timed out after {timeout_seconds:g}s")
        ws.settimeout(remaining)
        try:
            opcode, data = ws.recv_data()
        except (websocket.WebSocketTimeoutException, TimeoutError):
            raise ExecTimeout(f"{what} timed out after {timeout_seconds:g}s") from None
        except websocket.WebSocketConnectionClosedException:
            break
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        if not data:
            continue
        channel, payload = data[0], data[1:]
        if channel == STDOUT_CHANNEL:
            stdout += payload
        elif channel == STDERR_CHANNEL:
            stderr += payload
        elif channel == STATUS_CHANNEL:
            status = json.loads(payload or b"{}")
        if len(stdout) + len(stderr) > MAX_EXEC_OUTPUT_BYTES:
            raise ExecFailed(f"{what}: output larger than {MAX_EXEC_OUTPUT_BYTES // (1024 * 1024)} MiB")
    return bytes(stdout), bytes(stderr), status


def _exit_code(status: dict[str, Any]) -> int | None:
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message", ""))
            except ValueError:
                return None
    return None


def _ssl_options(configuration: k8s_client.Configuration, url: str) -> dict[str, Any]:
    """The same TLS settings the client library uses for its own websockets."""
    if url.startswith("wss://") and configuration.verify_ssl:
        options: dict[str, Any] = {
            "cert_reqs": ssl.CERT_REQUIRED,
            "ca_certs": configuration.ssl_ca_cert or certifi.where(),
        }
        if configuration.assert_hostname is not None:
            options["check_hostname"] = configuration.assert_hostname
    else:
        options = {"cert_reqs": ssl.CERT_NONE}
    if configuration.cert_file:
        options["certfile"] = configuration.cert_file
    if configuration.key_file:
        options["keyfile"] = configuration.key_file
    if configuration.tls_server_name:
        options["server_hostname"] = configuration.tls_server_name
    return options


def _exec_refusal(status: int, namespace: str, pod: str, error: Exception) -> KubeError:
    if status == 403:
        permission = exec_permission(namespace)
        return Forbidden(f"forbidden: {permission}", permission=permission)
    if status == 404:
        return NotFound(f"pod {namespace}/{pod} is gone")
    if status == 401:
        return KubeConfigError("the API server rejected the credentials (401)")
    return ExecFailed(f"exec into {namespace}/{pod} refused: {status} {first_line(error)}")
