"""Shared fixtures. Everything that crosses a process boundary runs for real: PostgreSQL and Redis from
scripts/services, the control plane from scripts/cluster, Celery workers as child processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.kube_helpers import Kube

# The OpenID Connect provider (Dex) of the single sign-on tests.
pytest_plugins = ["tests.oidc_provider"]

ROOT = Path(__file__).resolve().parent.parent
KUBECONFIG = ROOT / ".cluster" / "kubeconfig"


@pytest.fixture(scope="session")
def kubeconfig() -> Path:
    """Bring the local cluster up once per session (idempotent: reused when already running)."""
    result = subprocess.run([str(ROOT / "scripts" / "cluster"), "up"], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"scripts/cluster up failed:\n{result.stderr[-4000:]}", pytrace=False)
    return KUBECONFIG


@pytest.fixture(scope="session")
def kube_api(kubeconfig: Path) -> k8s.ApiClient:
    return k8s_config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture
def namespace(kube_api: k8s.ApiClient) -> Iterator[str]:
    """A fresh namespace for each test, deleted afterwards (without waiting for it to go)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = k8s.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": name, "labels": {"driftwatch.io/test": "true"}}})
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def kube(kube_api: k8s.ApiClient, namespace: str) -> Kube:
    return Kube(kube_api, namespace)


@pytest.fixture(scope="session")
def celery_queue() -> str:
    """A queue of our own, so a demo worker on the same Redis never takes the tests' tasks."""
    return f"driftwatch-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def celery_worker_process(
    transactional_db: None, celery_queue: str, request: pytest.FixtureRequest
) -> Iterator[subprocess.Popen]:
    """A real `celery worker` process on the real Redis broker, writing to the test database. Tasks that
    the code under test enqueues go to this worker's own queue. It logs at INFO, or at the level a test gives
    (`@pytest.mark.parametrize("celery_worker_process", ["DEBUG"], indirect=True)`)."""
    from dashboard.celery import app

    log_level = getattr(request, "param", "INFO")

    database = settings.DATABASES["default"]
    env = dict(os.environ)
    env["DATABASE_URL"] = (
        f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    )
    env["REDIS_URL"] = settings.REDIS_URL
    env["LOG_LEVEL"] = log_level  # Django's root logger (settings.LOGGING); --loglevel sets Celery's own
    log_path = worker_log_path(celery_queue)
    log_path.parent.mkdir(exist_ok=True)
    # The session's workers share one queue and so one log, appended to: this worker's part starts here.
    log_start = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "dashboard", "worker", "-Q", celery_queue, "--pool", "solo",
             "--loglevel", log_level, "--without-heartbeat", "--without-mingle", "--without-gossip"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while b"ready." not in log_path.read_bytes()[log_start:]:
            if worker.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"celery worker did not start:\n{log_path.read_text()[-3000:]}", pytrace=False)
            time.sleep(0.2)
        default_queue = app.conf.task_default_queue
        app.conf.task_default_queue = celery_queue
        worker.log_start = log_start  # type: ignore[attr-defined]  # read by celery_worker_log
        yield worker
        app.conf.task_default_queue = default_queue
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def worker_log_path(celery_queue: str) -> Path:
    return ROOT / "artifacts" / f"celery-worker-{celery_queue}.log"


@pytest.fixture
def celery_worker_log(celery_worker_process: subprocess.Popen, celery_queue: str) -> Callable[[], str]:
    """What this test's worker process has logged so far (its own part of the session's worker log)."""
    path = worker_log_path(celery_queue)
    start = celery_worker_process.log_start  # type: ignore[attr-defined]
    return lambda: path.read_bytes()[start:].decode("utf-8", "replace")


@pytest.fixture
def private_celery_queue(celery_queue: str) -> Iterator[str]:
    """Tasks the code under test enqueues go to a queue no worker reads, emptied afterwards: without this a
    demo worker on the same Redis would take them and run them against its own database."""
    import redis

    from dashboard.celery import app

    queue = f"{celery_queue}-unread"
    default_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    yield queue
    app.conf.task_default_queue = default_queue
    redis.Redis.from_url(settings.REDIS_URL).delete(queue)


@pytest.fixture
def plain_http(settings) -> None:
    """Serve pages over plain HTTP, as the demo does: with HTTPS on (the default when DEBUG is off) every
    request would be redirected to https://, which neither the test client nor the live server speaks."""
    settings.SECURE_SSL_REDIRECT = False
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False


@pytest.fixture(autouse=True)
def _worker_default_queue(celery_queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker process started by a test inherits this environment, so the tasks it enqueues itself (a
    completed rollout asks for a snapshot) go to this session's queue, which it reads, instead of the shared
    default queue that a demo worker on the same Redis would take them from (settings: DRIFTWATCH_CELERY_QUEUE)."""
    monkeypatch.setenv("DRIFTWATCH_CELERY_QUEUE", celery_queue)
