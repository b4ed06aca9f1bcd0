"""/healthz (liveness) and /readyz (PostgreSQL and Redis checked for real), as the kubelet calls them: by the
pod's address, over plain HTTP, with HTTPS redirects and ALLOWED_HOSTS on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent
POD_ADDRESS = "10.203.47.9:8000"  # not in ALLOWED_HOSTS, as a probe's Host header never is
CLOSED_PORT = "127.0.0.1:1"

PROBE_SCRIPT = """
import json, os, django
django.setup()
from django.test import Client
client = Client()
print(json.dumps({path: [r.status_code, json.loads(r.content)] for path in ("/healthz", "/readyz")
                  for r in [client.get(path, HTTP_HOST=os.environ["PROBE_HOST"])]}))
"""


def database_url_of_this_run() -> str:
    """The URL of the database pytest-django created for this run, for a child process."""
    database = connection.settings_dict
    return (
        f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    )


def probe_with(**environment: str) -> dict[str, list]:
    """Both probes answered in a fresh process whose settings point at `environment`'s services."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url_of_this_run(),
        "PROBE_HOST": POD_ADDRESS,
        **environment,
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.django_db
def test_both_probes_answer_200_by_pod_address_over_plain_http() -> None:
    client = Client()
    for path in ("/healthz", "/readyz"):
        response = client.get(path, HTTP_HOST=POD_ADDRESS)
        assert response.status_code == 200, (path, response.status_code, response.content[:200])
    assert client.get("/readyz", HTTP_HOST=POD_ADDRESS).json() == {
        "ok": True,
        "checks": {"database": "ok", "redis": "ok"},
    }


@pytest.mark.django_db
def test_readyz_is_503_naming_redis_when_redis_is_down() -> None:
    answers = probe_with(REDIS_URL=f"redis://{CLOSED_PORT}/0")
    assert answers["/healthz"][0] == 200
    status, body = answers["/readyz"]
    assert status == 503
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] == "ConnectionError"


def test_readyz_is_503_naming_the_database_when_postgres_is_down() -> None:
    answers = probe_with(DATABASE_URL=f"postgres://driftwatch:driftwatch@{CLOSED_PORT}/driftwatch")
    assert answers["/healthz"][0] == 200, "liveness must not depend on the database"
    status, body = answers["/readyz"]
    assert status == 503
    assert body["checks"]["database"] == "OperationalError"
    assert body["checks"]["redis"] == "ok"
    assert "127.0.0.1" not in json.dumps(body), "the error's message (hosts, users) is not shown"


@pytest.mark.django_db
def test_other_paths_still_check_the_host_and_redirect_to_https() -> None:
    response = Client().get("/login/", HTTP_HOST=POD_ADDRESS)
    assert response.status_code == 400  # DisallowedHost: the probes' exemption is theirs alone
