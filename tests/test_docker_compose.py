"""The compose file, validated offline by Debian's docker-compose, and brought up for real where a Docker engine
runs and has the images it needs (the tests pull nothing: network traffic stays on loopback); otherwise that test
is skipped with the reason."""

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

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


def test_web_is_healthy_when_readyz_answers_and_the_others_wait_for_it(compose):
    config = yaml.safe_load(run(compose, "config").stdout)
    services = config["services"]
    assert "http://127.0.0.1:8000/readyz" in " ".join(services["web"]["healthcheck"]["test"])
    for name in ("worker", "beat", "watch"):
        assert services[name]["depends_on"] == {"web": {"condition": "service_healthy"}}
    for name in ("postgres", "redis"):
        assert services["web"]["depends_on"][name] == {"condition": "service_healthy"}


def compose_up_blocker(compose) -> str | None:
    """Why the compose file cannot be brought up here, in words a reader can act on; None when it can."""
    docker = shutil.which("docker")
    if docker is None:
        return "no docker command on PATH"
    info = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if info.returncode != 0:
        said = (info.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"no Docker engine answers (`docker info`: {said})"
    services = yaml.safe_load(run(compose, "config").stdout)["services"]
    needed = {service["image"] for service in services.values() if "build" not in service}
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            needed.add(line.split()[1])
    missing = sorted(
        image
        for image in needed
        if subprocess.run([docker, "image", "inspect", image], capture_output=True).returncode != 0
    )
    if missing:
        listed = ", ".join(missing)
        return (
            f"images not on this Docker engine, and the tests pull nothing: {listed} (docker pull or docker load them)"
        )
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_compose_comes_up_and_serves_readyz(compose):
    blocker = compose_up_blocker(compose)
    if blocker:
        pytest.skip(blocker)
    project = f"driftwatch-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    up = ["-p", project]
    try:
        result = run(compose, *up, "up", "-d", "--build", DRIFTWATCH_WEB_PORT=str(port))
        assert result.returncode == 0, result.stderr[-4000:]
        deadline = time.monotonic() + 300
        while True:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
                if answer.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                logs = run(compose, *up, "logs", "--tail", "50", DRIFTWATCH_WEB_PORT=str(port)).stdout
                pytest.fail(f"/readyz never answered 200 within 300 s:\n{logs[-4000:]}", pytrace=False)
            time.sleep(2)
        running = run(compose, *up, "ps", "--services", "--filter", "status=running", DRIFTWATCH_WEB_PORT=str(port))
        assert set(running.stdout.split()) >= {"web", "worker", "beat", "watch", "postgres", "redis"}
    finally:
        run(compose, *up, "down", "-v", "--remove-orphans", DRIFTWATCH_WEB_PORT=str(port))
