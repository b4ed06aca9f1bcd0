"""No Docker engine runs here, but the compose file is still validated, offline, by Debian's docker-compose."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def compose():
    path = shutil.which("docker-compose")
    if path is None:
        pytest.fail("docker-compose is missing: `make test` installs Debian's package", pytrace=False)
    return path


def run(compose, *args, **environment):
    env = {**os.environ, "SECRET_KEY": "x" * 50, "KUBECONFIG_PATH": "/dev/null", **environment}
    return subprocess.run(
        [compose, "-f", "docker-compose.yml", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_the_compose_file_is_valid(compose):
    result = run(compose, "config", "-q")
    assert result.returncode == 0, result.stderr


def test_it_defines_the_six_services(compose):
    result = run(compose, "config", "--services")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {"web", "worker", "beat", "watch", "postgres", "redis"}


def test_it_mounts_the_kubeconfig_read_only(compose):
    result = run(compose, "config")
    assert "/kube/config:ro" in result.stdout


def test_it_refuses_to_start_without_a_secret_key(compose):
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    result = subprocess.run(
        [compose, "-f", "docker-compose.yml", "config", "-q"], cwd=ROOT, env={**env, "KUBECONFIG_PATH": "/dev/null"},
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
