"""The one seam to Kubernetes. Every `kubernetes` import lives here; callers get plain dicts and our
own few exceptions, so the rest of Driftwatch never handles a client model or an ApiException."""

from __future__ import annotations

import json
import os
import re
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import certifi
import urllib3
import websocket
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException

DEFAULT_TIMEOUT_SECONDS = 15.0


class KubeError(Exception):
    """Anything that went wrong talking to a cluster; the message is meant for the user."""


class KubeConfigError(KubeError):
    """The kubeconfig cannot be read, parsed or does not name a usable context."""


class Unreachable(KubeError):
    """The API server did not answer (connection refused, DNS, TLS, timeout)."""


class Forbidden(KubeError):
    """RBAC said no. `permission` names what is missing, e.g. 'patch deployments.apps in demo'."""

    def __init__(self, message: str, permission: str = "") -> None:
        super().__init__(message)
        self.permission = permission


class NotFound(KubeError):
    pass


class ApiRefused(KubeError):
    """The API server answered with another error (conflict, invalid, server error)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class InvalidName(KubeError, ValueError):
    """A name that Kubernetes itself would refuse: it never reaches a URL."""


# RFC 1123, as the API server validates them: a DNS label (namespaces) and a DNS subdomain (most object names).
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def validate_namespace(value: str) -> str:
    """A namespace name (a DNS label, at most 63 characters), or InvalidName."""
    if len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        raise InvalidName(f"{value[:80]!r} is not a Kubernetes namespace name (RFC 1123 label)")
    return value


def validate_name(value: str) -> str:
    """An object name (a DNS subdomain, at most 253 characters), or InvalidName."""
    if len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise InvalidName(f"{value[:80]!r} is not a Kubernetes object name (RFC 1123 subdomain)")
    return value


def _segment(value: str) -> str:
    # Quoted with no safe characters: a "/" or ".." can never become a path of its own.
    return quote(value, safe="")


# The apps/v1 workloads Driftwatch may patch, by kind, with their resource names.
WORKLOAD_RESOURCES = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}


def workload_path(kind: str, namespace: str, name: str) -> str:
    """The API path of one Deployment, StatefulSet or DaemonSet, from validated, quoted segments."""
    plural = WORKLOAD_RESOURCES[kind]
    namespace, name = _segment(validate_namespace(namespace)), _segment(validate_name(name))
    return f"/apis/apps/v1/namespaces/{namespace}/{plural}/{name}"


def core_path(plural: str, namespace: str, name: str = "") -> str:
    """The API path of a core/v1 collection in a namespace, or of one object in it (validated, quoted)."""
    path = f"/api/v1/namespaces/{_segment(validate_namespace(namespace))}/{_segment(plural)}"
    return f"{path}/{_segment(validate_name(name))}" if name else path


@dataclass(frozen=True)
class ClusterCredentials:
    kubeconfig_path: str = ""
    context: str = ""
    in_cluster: bool = False


class RateLimiter:
    """A token bucket shared by the threads of one snapshot: at most `per_second` API requests."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


def load_configuration(credentials: ClusterCredentials) -> k8s_client.Configuration:
    configuration = k8s_client.Configuration()
    if not credentials.in_cluster and not os.path.isfile(os.path.expanduser(credentials.kubeconfig_path)):
        raise KubeConfigError(f"kubeconfig not found: {credentials.kubeconfig_path}")
    try:
        if credentials.in_cluster:
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            k8s_config.load_kube_config(
                config_file=credentials.kubeconfig_path,
                context=credentials.context or None,
                client_configuration=configuration,
                persist_config=False,
            )
    except FileNotFoundError:
        raise KubeConfigError(f"kubeconfig not found: {credentials.kubeconfig_path}") from None
    except (ConfigException, ValueError, TypeError, KeyError, AttributeError) as error:
        where = "in-cluster credentials" if credentials.in_cluster else f"kubeconfig {credentials.kubeconfig_path}"
        raise KubeConfigError(f"{where} is not usable: {_first_line(error)}") from None
    except Exception as error:  # the YAML parser and base64 decoding raise their own types
        raise KubeConfigError(f"kubeconfig {credentials.kubeconfig_path} is malformed: {_first_line(error)}") from None
    configuration.retries = False
    return configuration


class KubeClient:
    """A connection to one cluster. Thread-safe for plain requests; each exec gets its own ApiClient
    because the client library's stream() swaps the request function of the ApiClient it is given."""

    def __init__(
        self,
        credentials: ClusterCredentials,
        requests_per_second: float = 0,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.configuration = load_configuration(credentials)
        self.api = k8s_client.ApiClient(self.configuration)
        self.limiter = RateLimiter(requests_per_second)
        self.timeout_seconds = timeout_seconds
        self.request_count = 0
        self._count_lock = threading.Lock()

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- plain requests ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        what: str = "",
    ) -> dict[str, Any]:
        """One API request returning the decoded JSON body. `what` names the permission for a 403."""
        self.limiter.wait()
        with self._count_lock:
            self.request_count += 1
        query_params = [(key, value) for key, value in (query or {}).items() if value not in (None, "")]
        try:
            response = self.api.call_api(
                path,
                method,
                query_params=query_params,
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=self.timeout_seconds,
            )
        except ApiException as error:
            raise translate_api_exception(error, what or f"{method} {path}") from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise Unreachable(f"API server {self.configuration.host} unreachable: {_first_line(error)}") from None
        raw = response.data
        return json.loads(raw) if raw else {}

    def server_version(self) -> str:
        return self.request("GET", "/version", what="get /version").get("gitVersion", "unknown")

    def list_paginated(
        self, path: str, what: str, page_size: int = 500, label_selector: str = ""
    ) -> Iterator[dict[str, Any]]:
        """Yield every item of a LIST, following `continue` tokens; one request per page."""
        token = ""
        while True:
            page = self.request(
                "GET",
                path,
                query={"limit": page_size, "continue": token, "labelSelector": label_selector},
                what=what,
            )
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return

    def get(self, path: str, what: str) -> dict[str, Any]:
        return self.request("GET", path, what=what)

    def patch(self, path: str, body: dict[str, Any], what: str, dry_run: bool = False) -> dict[str, Any]:
        return self.request(
            "PATCH",
            path,
            query={"dryRun": "All" if dry_run else None},
            body=body,
            content_type="application/strategic-merge-patch+json",
            what=what,
        )

    # -- exec -------------------------------------------------------------------------------------

    def exec_in_container(
        self, namespace: str, pod: str, container: str, command: list[str], timeout_seconds: float
    ) -> str:
        """Run `command` in a container and return its standard output. A non-zero exit, a hang past
        the timeout, or a refusal raise KubeError subclasses with a reason a person can act on.

        We speak the exec websocket protocol (v4.channel.k8s.io) ourselves rather than through the
        client library's stream(), which opens the socket without any timeout: a stalled handshake
        would hang a worker forever."""
        self.limiter.wait()
        with self._count_lock:
            self.request_count += 1
        query = [("container", container), ("stdout", "true"), ("stderr", "true")]
        query += [("command", part) for part in command]
        path = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/exec?{urlencode(query)}"
        url = re.sub(r"^http", "ws", self.configuration.host) + path
        auth: dict[str, str] = {}
        self.api.update_params_for_auth(auth, [], ["BearerToken"])
        header = ["sec-websocket-protocol: v4.channel.k8s.io"]
        header += [f"authorization: {value}" for key, value in auth.items() if key.lower() == "authorization"]
        deadline = time.monotonic() + timeout_seconds
        what = f"exec into {namespace}/{pod}/{container}"
        ws = websocket.WebSocket(sslopt=_ssl_options(self.configuration, url), skip_utf8_validation=True)
        try:
            try:
                ws.connect(url, header=header, timeout=timeout_seconds)
            except websocket.WebSocketBadStatusException as error:
                raise _exec_refusal(error.status_code, namespace, pod, error) from None
            except (websocket.WebSocketTimeoutException, TimeoutError):
                raise ExecTimeout(f"{what} timed out after {timeout_seconds:g}s") from None
            except (OSError, websocket.WebSocketException) as error:
                raise Unreachable(f"{what}: {_first_line(error)}") from None
            stdout, stderr, status = _read_exec_channels(ws, deadline, what, timeout_seconds)
        finally:
            ws.close(timeout=0)
        if not status:  # the API server always ends an exec with its status: this stream was cut short
            raise Unreachable(f"{what}: the connection closed before the command's exit status")
        if status.get("status") == "Failure":
            message = stderr.decode("utf-8", "replace").strip() or status.get("message", "")
            code = _exit_code(status)
            prefix = f"exit code {code}" if code is not None else "failed"
            raise ExecFailed(f"{prefix}: {_first_line(message)}")
        return stdout.decode("utf-8", "surrogateescape")


MAX_EXEC_OUTPUT_BYTES = 16 * 1024 * 1024
STDOUT_CHANNEL, STDERR_CHANNEL, STATUS_CHANNEL = 1, 2, 3


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
        permission = f"create pods/exec in {namespace}"
        return Forbidden(f"forbidden: {permission}", permission=permission)
    if status == 404:
        return NotFound(f"pod {namespace}/{pod} is gone")
    if status == 401:
        return KubeConfigError("the API server rejected the credentials (401)")
    return ExecFailed(f"exec into {namespace}/{pod} refused: {status} {_first_line(error)}")


class ExecFailed(KubeError):
    """The command ran (or could not be started) inside the container and failed."""


class ExecTimeout(KubeError):
    pass


def translate_api_exception(error: ApiException, what: str) -> KubeError:
    reason = _status_message(error)
    if error.status == 403:
        return Forbidden(f"forbidden: {what} ({reason})", permission=what)
    if error.status == 404:
        return NotFound(f"not found: {what} ({reason})")
    if error.status == 401:
        return KubeConfigError(f"the API server rejected the credentials (401): {reason}")
    if error.status in (0, None):
        return Unreachable(f"API server unreachable: {reason}")
    return ApiRefused(f"{what}: {error.status} {reason}", status=error.status)


def _status_message(error: ApiException) -> str:
    try:
        return json.loads(error.body).get("message") or error.reason or ""
    except (TypeError, ValueError, AttributeError):
        return _first_line(error.reason or str(error))


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0][:300] if text else type(value).__name__
