"""The compose file, validated offline by Debian's docker-compose, and brought up for real on a Docker engine of
the tests' own (scripts/docker: Debian's docker.io with no bridge and no iptables rule, images loaded from archives
built from Debian packages and PyPI, no registry): every service on the host's network, on loopback ports picked
here (tests/docker-compose.host-network.yml)."""

import base64
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.kube_helpers import Kube, deployment

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


HOST_NETWORK = ROOT / "tests" / "docker-compose.host-network.yml"
SERVICES = {"web", "worker", "beat", "watch", "postgres", "redis"}


@pytest.fixture(scope="module")
def engine() -> Iterator[str]:
    """The tests' Docker engine with the three images loaded, stopped after this module; its DOCKER_HOST.
    No skip: where it cannot start, the test fails with the engine's own words."""
    if os.geteuid() != 0:
        pytest.fail("the tests' Docker engine needs root (scripts/docker)", pytrace=False)
    try:
        up = subprocess.run([str(ROOT / "scripts" / "docker"), "up"], capture_output=True, text=True, timeout=480)
    except subprocess.TimeoutExpired as late:
        pytest.fail(f"scripts/docker up took over 480 s:\n{(late.stderr or b'')[-4000:]!r}", pytrace=False)
    if up.returncode != 0:
        pytest.fail(f"scripts/docker up failed:\n{up.stderr[-4000:]}", pytrace=False)
    try:
        yield up.stdout.strip().splitlines()[-1].removeprefix("DOCKER_HOST=")
    finally:
        subprocess.run([str(ROOT / "scripts" / "docker"), "down"], capture_output=True, text=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Stack:
    """One compose project on the tests' engine: docker-compose.yml with tests/docker-compose.host-network.yml over
    it, resolved by `docker-compose config` into one file less the web service's published port (docker-py refuses
    port bindings on the host network, and an override file can add to a list but never remove from it)."""

    def __init__(self, compose: str, docker_host: str, kubeconfig: Path, folder: Path) -> None:
        self.compose = compose
        self.project = f"driftwatch-test-{uuid.uuid4().hex[:8]}"
        self.web = free_port()
        ports = {
            "DRIFTWATCH_WEB_PORT": str(self.web),
            "DRIFTWATCH_POSTGRES_PORT": str(free_port()),
            "DRIFTWATCH_REDIS_PORT": str(free_port()),
        }
        self.env = {
            **os.environ,
            "SECRET_KEY": "x" * 50,
            "KUBECONFIG_PATH": str(kubeconfig),
            "DOCKER_HOST": docker_host,
        }
        resolved = subprocess.run(
            [compose, "-f", "docker-compose.yml", "-f", str(HOST_NETWORK), "config"],
            cwd=ROOT, env={**self.env, **ports}, capture_output=True, text=True,
        )  # fmt: skip
        assert resolved.returncode == 0, resolved.stderr
        config = yaml.safe_load(resolved.stdout)
        del config["services"]["web"]["ports"]
        self.file = folder / "docker-compose.yml"
        self.file.write_text(yaml.safe_dump(config))

    def __call__(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        command = [self.compose, "-f", str(self.file), "-p", self.project, *args]
        return subprocess.run(command, cwd=ROOT, env=self.env, input=input, capture_output=True, text=True, timeout=300)

    def manage(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        result = self("exec", "-T", "web", "python", "manage.py", *args, input=input)
        assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stdout}{result.stderr[-4000:]}"
        return result

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.web}{path}"


@pytest.fixture
def readable_kubeconfig(kubeconfig: Path, tmp_path: Path) -> Path:
    """The local cluster's kubeconfig as the web container can use it: the certificate files it names embedded
    (their paths are not in the container), readable by the image's user (uid 10001) and nobody else."""
    config = yaml.safe_load(kubeconfig.read_text())
    embedded = {"certificate-authority", "client-certificate", "client-key"}
    for entry in [*config["clusters"], *config["users"]]:
        fields = entry.get("cluster") or entry.get("user") or {}
        for field in embedded & set(fields):
            fields[f"{field}-data"] = base64.b64encode(Path(fields.pop(field)).read_bytes()).decode()
    copy = tmp_path / "kubeconfig.yaml"
    copy.write_text(yaml.safe_dump(config))
    os.chown(copy, 10001, 10001)
    copy.chmod(0o600)
    return copy


@pytest.mark.cluster
def test_compose_comes_up_snapshots_the_cluster_and_serves_a_page(
    compose, engine, readable_kubeconfig, kube: Kube, tmp_path: Path
):
    kube.config_map("env-config", {"log_level": "INFO"})
    container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "env-config"}}]}
    kube.create_deployment(deployment("env-demo", [container]))
    stack = Stack(compose, engine, readable_kubeconfig, tmp_path)
    try:
        started = time.monotonic()
        up = stack("up", "-d", "--no-build")
        assert up.returncode == 0, up.stderr[-4000:]
        wait_for_readyz(stack)
        print(f"compose up to /readyz: {time.monotonic() - started:.0f} s")
        running = stack("ps", "--services", "--filter", "status=running")
        assert set(running.stdout.split()) >= SERVICES, running.stdout + running.stderr
        # Host networking only: the engine made no bridge, and compose no network of its own.
        networks = subprocess.run(
            ["/usr/bin/docker", "--host", engine, "network", "ls", "--format", "{{.Name}}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert set(networks.stdout.split()) == {"host", "none"}

        kube.wait_deployment_ready("env-demo")
        stack.manage("cluster", "add", "local", "--kubeconfig", "/kube/config", "--namespace", kube.namespace)
        summary = stack.manage("snapshot", "--cluster", "local").stdout
        assert summary.startswith("local: succeeded"), summary

        session = logged_in(stack)
        # Fresh workloads are counted, and listed when asked for.
        page = session.get(stack.url(f"/?cluster=local&namespace={kube.namespace}&verdict=fresh"), timeout=30)
        assert page.status_code == 200 and "/login/" not in page.url
        assert "env-demo" in page.text, page.text[page.text.find("<main") :][:3000]
    finally:
        down = stack("down", "-v", "--remove-orphans")
        assert down.returncode == 0, down.stderr[-4000:]


def wait_for_readyz(stack: Stack, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if requests.get(stack.url("/readyz"), timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            logs = stack("logs", "--tail", "50").stdout
            pytest.fail(f"/readyz never answered 200 within {seconds:.0f} s:\n{logs[-4000:]}", pytrace=False)
        time.sleep(2)


def logged_in(stack: Stack) -> requests.Session:
    """A session of an operator made for this test in the stack's database (password on stdin)."""
    username, password = f"t{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    stack.manage("adduser", username, "--role", "operator", "--namespace", "*/*", input=password + "\n")
    session = requests.Session()
    page = session.get(stack.url("/login/"), timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text[:500]
    answer = session.post(stack.url("/login/"), data={"username": username, "password": password,
                                                      "csrfmiddlewaretoken": token.group(1)}, timeout=30)  # fmt: skip
    assert answer.ok and "/login/" not in answer.url, answer.text[:500]
    return session
