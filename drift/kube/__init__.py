"""The one seam to Kubernetes. Every `kubernetes` import lives in this package; callers get plain dicts and
our own few exceptions, so the rest of Driftwatch never handles a client model or an ApiException.

- `errors`: our exceptions, and the translation of the client library's.
- `paths`: name validation (RFC 1123), API paths from quoted segments, the permissions they need.
- `client`: configuration loading (kubeconfig, in-cluster, proxy-url), requests, pagination, rate limiting.
- `exec`: running a command in a container over the exec websocket, through the configured proxy."""

from drift.kube.client import (
    DEFAULT_TIMEOUT_SECONDS,
    FIELD_MANAGER,
    ClusterCredentials,
    KubeClient,
    RateLimiter,
    Traffic,
    WatchStream,
    kubeconfig_proxy_url,
    load_configuration,
)
from drift.kube.errors import (
    ApiRefused,
    ExecFailed,
    ExecTimeout,
    Forbidden,
    Gone,
    InvalidName,
    KubeConfigError,
    KubeError,
    NotFound,
    Stalled,
    Unreachable,
    translate_api_exception,
)
from drift.kube.exec import MAX_EXEC_OUTPUT_BYTES, proxy_options
from drift.kube.paths import (
    collection_path,
    core_path,
    exec_permission,
    node_path,
    owner_path,
    validate_name,
    validate_namespace,
    workload_path,
    workload_permission,
)

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "FIELD_MANAGER",
    "MAX_EXEC_OUTPUT_BYTES",
    "ApiRefused",
    "ClusterCredentials",
    "ExecFailed",
    "ExecTimeout",
    "Forbidden",
    "Gone",
    "InvalidName",
    "KubeClient",
    "KubeConfigError",
    "KubeError",
    "NotFound",
    "RateLimiter",
    "Stalled",
    "Traffic",
    "Unreachable",
    "WatchStream",
    "collection_path",
    "core_path",
    "exec_permission",
    "kubeconfig_proxy_url",
    "load_configuration",
    "node_path",
    "owner_path",
    "proxy_options",
    "translate_api_exception",
    "validate_name",
    "validate_namespace",
    "workload_path",
    "workload_permission",
]
