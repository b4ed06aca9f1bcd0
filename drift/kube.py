"""The one seam to Kubernetes. Every `kubernetes` import lives here; callers get plain dicts and our
own few exceptions, so the rest of Driftwatch never handles a client model or an ApiException."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
import websocket
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.stream import stream as k8s_stream

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
        the timeout, or a refusal raise KubeError subclasses with a reason a person can act on."""
        self.limiter.wait()
        with self._count_lock:
            self.request_count += 1
        api = k8s_client.ApiClient(self.configuration)
        # The client library opens the websocket without a timeout, so a stalled handshake would hang
        # forever; websocket-client takes its default from this process-wide setting. Every thread of
        # one snapshot uses the same cluster's timeout, so they agree on the value.
        websocket.setdefaulttimeout(timeout_seconds)
        try:
            core = k8s_client.CoreV1Api(api)
            try:
                ws = k8s_stream(
                    core.connect_get_namespaced_pod_exec,
                    pod,
                    namespace,
                    container=container,
                    command=command,
                    stderr=True,
                    stdin=False,
                    stdout=True,
                    tty=False,
                    _preload_content=False,
                    _request_timeout=timeout_seconds,
                )
            except ApiException as error:
                raise translate_api_exception(error, f"create pods/exec in {namespace}") from None
            except (websocket.WebSocketTimeoutException, TimeoutError):
                raise ExecTimeout(
                    f"exec into {namespace}/{pod}/{container} timed out after {timeout_seconds:g}s"
                ) from None
            except (urllib3.exceptions.HTTPError, OSError) as error:
                raise Unreachable(f"exec into {namespace}/{pod}: {_first_line(error)}") from None
            except Exception as error:  # the websocket handshake reports HTTP errors as its own types
                raise _translate_handshake_error(error, namespace, pod) from None
            stdout: list[str] = []
            stderr: list[str] = []
            deadline = time.monotonic() + timeout_seconds
            try:
                while ws.is_open():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise ExecTimeout(
                            f"exec into {namespace}/{pod}/{container} timed out after {timeout_seconds:g}s"
                        )
                    ws.update(timeout=min(remaining, 1.0))
                    if ws.peek_stdout():
                        stdout.append(ws.read_stdout())
                    if ws.peek_stderr():
                        stderr.append(ws.read_stderr())
                stdout.append(ws.read_stdout() if ws.peek_stdout() else "")
                code = ws.returncode
            finally:
                ws.close()
            if code not in (0, None):
                message = "".join(stderr).strip() or "".join(stdout).strip()
                raise ExecFailed(f"exit code {code}: {_first_line(message)}")
            return "".join(stdout)
        finally:
            api.close()


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


def _translate_handshake_error(error: Exception, namespace: str, pod: str) -> KubeError:
    text = str(error)
    if "403" in text:
        return Forbidden(f"forbidden: create pods/exec in {namespace}", permission=f"create pods/exec in {namespace}")
    if "404" in text:
        return NotFound(f"pod {namespace}/{pod} is gone")
    return ExecFailed(f"exec into {namespace}/{pod} could not start: {_first_line(text)}")


def _status_message(error: ApiException) -> str:
    try:
        return json.loads(error.body).get("message") or error.reason or ""
    except (TypeError, ValueError, AttributeError):
        return _first_line(error.reason or str(error))


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0][:300] if text else type(value).__name__
