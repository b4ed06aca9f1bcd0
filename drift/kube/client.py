"""A connection to one cluster: its configuration loaded from a kubeconfig (or in-cluster credentials), plain
API requests returning dicts, LIST pagination, a request-rate limiter shared by a snapshot's threads."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import urllib3
import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException

from drift.kube.errors import (
    ApiRefused,
    Gone,
    KubeConfigError,
    Stalled,
    Unreachable,
    first_line,
    oldest_kept,
    translate_api_exception,
)
from drift.kube.exec import run_exec

DEFAULT_TIMEOUT_SECONDS = 15.0
# The name every write of Driftwatch carries (`?fieldManager=`): the API server records it in the object's
# managedFields, so `kubectl get --show-managed-fields`, audit logs and GitOps tools (Argo CD's
# ignoreDifferences.managedFieldsManagers) can tell Driftwatch's changes from anyone else's. Without it the
# API server names the client library's user agent.
FIELD_MANAGER = "driftwatch"


@dataclass(frozen=True)
class ClusterCredentials:
    kubeconfig_path: str = ""
    context: str = ""
    in_cluster: bool = False


# API priority and fairness answers 429 with Retry-After when a flow's queue is full: wait that long (at most
# this, so that a hostile header cannot park a thread for hours) and try again, this many times.
RETRY_AFTER_CAP_SECONDS = 60.0
THROTTLED_RETRIES = 3


class RateLimiter:
    """A token bucket shared by every client of one cluster in a process: at most `per_second` API requests.
    `hold` stops every request through it for a while (the API server asked us to wait)."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next = time.monotonic()
        self._held_until = 0.0
        self._lock = threading.Lock()

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._held_until = max(self._held_until, time.monotonic() + seconds)

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._held_until, self._next if self.interval else now)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


@dataclass
class Traffic:
    """Requests sent and response bytes read (watch streams included), shared like the limiter by every client
    of one cluster in a process: what Driftwatch costs the API server, as the benchmarks report it."""

    requests: int = 0
    bytes_read: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, requests: int = 0, bytes_read: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.bytes_read += bytes_read


def is_throttling(error: ApiException) -> bool:
    """Whether a 429 is API priority and fairness asking to slow down (wait, try again), rather than the Eviction
    API saying a PodDisruptionBudget allows no disruption now: that one is an answer for the caller (the
    stale-pods restart counts it and tries later), and holding the cluster's limiter for it would slow every
    other request for nothing."""
    try:
        status = json.loads(error.body or "")
    except (TypeError, ValueError):
        return True
    causes = ((status.get("details") or {}).get("causes") or []) if isinstance(status, dict) else []
    return not any(isinstance(cause, dict) and cause.get("reason") == "DisruptionBudget" for cause in causes)


def retry_after_seconds(error: ApiException) -> float:
    """The Retry-After of a 429 in seconds (API priority and fairness sends whole seconds), bounded; 1 s when
    absent or not a number."""
    value = (error.headers or {}).get("Retry-After", "") if hasattr(error, "headers") else ""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = 1.0
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)


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
        raise KubeConfigError(f"{where} is not usable: {first_line(error)}") from None
    except Exception as error:  # the YAML parser and base64 decoding raise their own types
        raise KubeConfigError(f"kubeconfig {credentials.kubeconfig_path} is malformed: {first_line(error)}") from None
    configuration.retries = False
    if not credentials.in_cluster:
        proxy = kubeconfig_proxy_url(credentials)
        if proxy:
            configuration.proxy = proxy
    return configuration


def kubeconfig_proxy_url(credentials: ClusterCredentials) -> str:
    """The `proxy-url` of the cluster the kubeconfig's context names, or "". The client library (34.x) reads
    proxies only from the environment; kubectl honours this field, so Driftwatch does too (requests and exec)."""
    try:
        with open(os.path.expanduser(credentials.kubeconfig_path), encoding="utf-8") as file:
            document = yaml.safe_load(file) or {}
        context_name = credentials.context or document.get("current-context", "")
        contexts = {entry.get("name"): entry.get("context") or {} for entry in document.get("contexts") or []}
        cluster_name = contexts.get(context_name, {}).get("cluster", "")
        clusters = {entry.get("name"): entry.get("cluster") or {} for entry in document.get("clusters") or []}
        return str(clusters.get(cluster_name, {}).get("proxy-url") or "")
    except (OSError, yaml.YAMLError, AttributeError, TypeError) as error:
        raise KubeConfigError(f"kubeconfig {credentials.kubeconfig_path} is malformed: {first_line(error)}") from None


class KubeClient:
    """A connection to one cluster. Thread-safe for plain requests; each exec gets its own ApiClient
    because the client library's stream() swaps the request function of the ApiClient it is given."""

    def __init__(
        self,
        credentials: ClusterCredentials,
        requests_per_second: float = 0,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        limiter: RateLimiter | None = None,
        traffic: Traffic | None = None,
    ) -> None:
        self.configuration = load_configuration(credentials)
        self.api = k8s_client.ApiClient(self.configuration)
        self.limiter = limiter or RateLimiter(requests_per_second)
        self.traffic = traffic or Traffic()
        self.timeout_seconds = timeout_seconds
        self.request_count = 0
        self.throttled_count = 0
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
        """One API request returning the decoded JSON body. `what` names the permission for a 403. A 429 (API
        priority and fairness) waits its Retry-After, for every request through this limiter, and tries again."""
        query_params = [(key, value) for key, value in (query or {}).items() if value not in (None, "")]
        for attempt in range(THROTTLED_RETRIES + 1):
            self.limiter.wait()
            with self._count_lock:
                self.request_count += 1
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
                if error.status == 429 and attempt < THROTTLED_RETRIES and is_throttling(error):
                    self._throttled(error)
                    continue
                raise translate_api_exception(error, what or f"{method} {path}") from None
            except (urllib3.exceptions.HTTPError, OSError) as error:
                raise Unreachable(f"API server {self.configuration.host} unreachable: {first_line(error)}") from None
            raw = response.data
            self.traffic.add(1, len(raw or b""))
            return json.loads(raw) if raw else {}
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _throttled(self, error: ApiException) -> None:
        with self._count_lock:
            self.throttled_count += 1
        self.limiter.hold(retry_after_seconds(error))

    @property
    def api_server(self) -> str:
        """host:port of the API server (the port said even when it is the scheme's default), which tells two
        registrations of one server apart from two servers."""
        address = urlsplit(self.configuration.host)
        port = address.port or (443 if address.scheme == "https" else 80)
        host = f"[{address.hostname}]" if address.hostname and ":" in address.hostname else address.hostname
        return f"{host}:{port}" if host else self.configuration.host

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

    def list_page(self, path: str, what: str, token: str = "", page_size: int = 500) -> dict[str, Any]:
        """One page of a LIST with its metadata (resourceVersion, continue)."""
        return self.request("GET", path, query={"limit": page_size, "continue": token}, what=what)

    def watch(
        self, path: str, resource_version: str, what: str, stall_seconds: float, timeout_seconds: int
    ) -> WatchStream:
        """Open one WATCH from `resource_version`, with bookmarks, that the API server ends after
        `timeout_seconds`; iterate the returned stream for its events. Raises Gone on a 410 (as an answer, or later
        as an ERROR event), Stalled when nothing arrives for `stall_seconds`, Unreachable when the connection
        breaks. A 429 holds the limiter for its Retry-After and raises ApiRefused: the caller opens the watch
        again, after that wait."""
        self.limiter.wait()
        with self._count_lock:
            self.request_count += 1
        query = [("watch", "true"), ("resourceVersion", resource_version), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(timeout_seconds))]  # fmt: skip
        try:
            response = self.api.call_api(
                path, "GET", query_params=query, header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
                # The read timeout is the stall limit: silence longer than that raises, and the caller restarts.
                _request_timeout=(10, stall_seconds),
            )  # fmt: skip
        except ApiException as error:
            if error.status == 410:
                raise Gone(f"{what}: resourceVersion {resource_version} is gone", oldest_kept(error.body)) from None
            if error.status == 429:
                self._throttled(error)
            raise translate_api_exception(error, what) from None
        except urllib3.exceptions.ReadTimeoutError:
            raise Stalled(f"{what}: no answer for {stall_seconds:.0f} s") from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise Unreachable(f"API server {self.configuration.host} unreachable: {first_line(error)}") from None
        self.traffic.add(requests=1)
        return WatchStream(response, what, resource_version, stall_seconds, self.traffic)

    def get(self, path: str, what: str) -> dict[str, Any]:
        return self.request("GET", path, what=what)

    def patch(
        self,
        path: str,
        body: dict[str, Any],
        what: str,
        dry_run: bool = False,
        content_type: str = "application/strategic-merge-patch+json",
    ) -> dict[str, Any]:
        return self.request(
            "PATCH",
            path,
            query={"dryRun": "All" if dry_run else None, "fieldManager": FIELD_MANAGER},
            body=body,
            content_type=content_type,
            what=what,
        )

    def put(self, path: str, body: dict[str, Any], what: str, dry_run: bool = False) -> dict[str, Any]:
        """Replace an object, as Driftwatch's manager. With ``metadata.resourceVersion`` in ``body`` the API server
        refuses (409) when the object changed since: the precondition a restore rests on."""
        return self.request(
            "PUT",
            path,
            query={"dryRun": "All" if dry_run else None, "fieldManager": FIELD_MANAGER},
            body=body,
            what=what,
        )

    def create(self, path: str, body: dict[str, Any], what: str, dry_run: bool = False) -> dict[str, Any]:
        """A POST that creates (an object, or a subresource such as a pod's eviction), as Driftwatch's manager."""
        return self.request(
            "POST", path, query={"dryRun": "All" if dry_run else None, "fieldManager": FIELD_MANAGER}, body=body,
            what=what,
        )  # fmt: skip

    # -- exec -------------------------------------------------------------------------------------

    def exec_in_container(
        self, namespace: str, pod: str, container: str, command: list[str], timeout_seconds: float
    ) -> str:
        """Run `command` in a container and return its standard output (drift.kube.exec)."""
        self.limiter.wait()
        with self._count_lock:
            self.request_count += 1
        output = run_exec(self.configuration, self.api, (namespace, pod, container), command, timeout_seconds)
        self.traffic.add(1, len(output))
        return output


class WatchStream:
    """One open WATCH: iterating it yields its events as they arrive, until the API server ends the watch.
    `close()`, from any other thread, ends the iteration at once: a watch waits for its next event in a blocking
    read (minutes on a quiet cluster), and one told to stop must neither wait that long nor record anything
    after."""

    def __init__(self, response: Any, what: str, resource_version: str, stall_seconds: float, traffic: Traffic):
        self._response = response
        self._what = what
        self._resource_version = resource_version
        self._stall_seconds = stall_seconds
        self._traffic = traffic
        self.closed = False
        # Once the iteration ended, its connection is back in the pool, maybe serving another request: close()
        # must then leave it alone.
        self._ended = False
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._ended:
                return
            self.closed = True
            # Shutting the socket down for reading wakes the blocked read with an end of stream.
            with contextlib.suppress(OSError, ValueError):
                self._response.shutdown()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        what = self._what
        try:
            for line in _lines(self._response, self._traffic):
                if self.closed:
                    return
                try:
                    event = json.loads(line)
                    kind, obj = event["type"], event["object"]
                except (ValueError, KeyError, TypeError):
                    # Never the line itself: it may hold a Secret's values.
                    raise ApiRefused(f"{what}: a line that is not a watch event", 200) from None
                if kind == "ERROR":
                    code = obj.get("code") if isinstance(obj, dict) else None
                    if code == 410:
                        raise Gone(
                            f"{what}: resourceVersion {self._resource_version} is gone",
                            oldest_kept(obj.get("message")),
                        )
                    raise ApiRefused(f"{what}: watch error {code}", code if isinstance(code, int) else 500)
                yield event
        except urllib3.exceptions.ReadTimeoutError:
            if not self.closed:
                raise Stalled(f"{what}: nothing for {self._stall_seconds:.0f} s") from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            if not self.closed:
                raise Unreachable(f"{what}: the connection broke ({type(error).__name__})") from None
        finally:
            with self._lock:
                self._ended = True
            if self.closed:
                self._response.close()  # a socket shut down is not one to reuse
            self._response.release_conn()


def _lines(response: Any, traffic: Traffic) -> Iterator[bytes]:
    """The newline-separated JSON events of a watch response, as the chunks arrive."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=False):
        traffic.add(bytes_read=len(chunk))
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.strip():
                yield line
    if pending.strip():
        yield pending
