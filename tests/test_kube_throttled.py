"""API priority and fairness: a 429 with Retry-After is waited out (by every request of the cluster, not only
the one refused) and the request tried again; it is never an error while the API server only asks to wait."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest
from kubernetes.client.exceptions import ApiException

from drift import kube
from drift.clusters import connect
from drift.kube.client import THROTTLED_RETRIES, is_throttling
from drift.models import Cluster
from tests.faultproxy import FaultProxy

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]


def once(path: str, retry_after: int) -> Callable[[str], int | None]:
    """A throttle answering the first request for `path` with 429 and that Retry-After, then passing all."""
    refused: list[str] = []
    lock = threading.Lock()

    def throttle(request_line: str) -> int | None:
        with lock:
            if path in request_line and not refused:
                refused.append(request_line)
                return retry_after
        return None

    return throttle


def test_a_429_waits_its_retry_after_then_succeeds_and_holds_the_clusters_other_requests(kubeconfig, tmp_path):
    proxy = FaultProxy(kubeconfig, tmp_path).start()
    try:
        cluster = Cluster.objects.create(name="throttled", kubeconfig_path=str(proxy.kubeconfig_path()))
        proxy.throttle = once("/version", 2)
        with connect(cluster) as first, connect(cluster) as second:
            started = time.monotonic()
            assert first.server_version()
            assert time.monotonic() - started >= 1.9
            assert first.throttled_count == 1
            # The other client of the same cluster shares the limiter: held too, not sent into another 429.
            proxy.throttle = once("/api/v1/namespaces", 3)
            refused = threading.Thread(target=lambda: first.get("/api/v1/namespaces", "list namespaces"))
            refused.start()
            time.sleep(0.5)
            held = time.monotonic()
            assert second.server_version()
            assert time.monotonic() - held >= 1.5
            assert second.throttled_count == 0
            refused.join()
            assert first.throttled_count == 2
    finally:
        proxy.stop()


def test_a_429_that_does_not_end_is_an_error_after_a_few_tries(kubeconfig, tmp_path):
    proxy = FaultProxy(kubeconfig, tmp_path).start()
    try:
        cluster = Cluster.objects.create(name="throttled", kubeconfig_path=str(proxy.kubeconfig_path()))
        proxy.throttle = lambda line: 0 if "/version" in line else None
        with connect(cluster) as client, pytest.raises(kube.ApiRefused) as raised:
            client.server_version()
        assert raised.value.status == 429
        assert client.throttled_count == THROTTLED_RETRIES
    finally:
        proxy.stop()


def _status_429(body: object) -> ApiException:
    error = ApiException(status=429, reason="Too Many Requests")
    error.body = json.dumps(body) if not isinstance(body, str) else body
    return error


@pytest.mark.parametrize(
    ("body", "throttled"),
    [
        (
            {"kind": "Status", "reason": "TooManyRequests", "message": "Too many requests, please try again later."},
            True,
        ),
        ("not json at all", True),
        # The Eviction API's answer when a PodDisruptionBudget allows no disruption now: the caller's to handle
        # (the stale-pods restart counts it and tries later), never retried here nor held against the cluster.
        (
            {
                "kind": "Status",
                "reason": "TooManyRequests",
                "message": "Cannot evict pod as it would violate the pod's disruption budget.",
                "details": {"causes": [{"reason": "DisruptionBudget", "message": "needs 2 healthy pods, has 2"}]},
            },
            False,
        ),
    ],
)
def test_only_api_priority_and_fairness_429s_are_throttling(body, throttled):
    assert is_throttling(_status_429(body)) is throttled
