"""Proxy settings for exec: a kubeconfig's proxy-url (or the environment's proxy) and no_proxy reach the
websocket, as they reach plain requests. The option building is pure; one test goes through a real HTTP
CONNECT proxy on loopback, written here."""

import select
import socket
import socketserver
import threading
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s_client

from drift import kube
from tests.kube_helpers import deployment

API = "https://127.0.0.1:6443"
EXEC_URL = "wss://127.0.0.1:6443/api/v1/namespaces/demo/pods/p/exec?command=env"


def configuration(proxy: str | None, no_proxy: str | None = None) -> k8s_client.Configuration:
    config = k8s_client.Configuration()
    config.host = API
    config.proxy = proxy
    config.no_proxy = no_proxy
    return config


@pytest.mark.parametrize(
    ("proxy", "no_proxy", "expected"),
    [
        (None, None, {}),
        (
            "http://proxy.example:3128",
            None,
            {"http_proxy_host": "proxy.example", "http_proxy_port": 3128, "proxy_type": "http", "http_no_proxy": None},
        ),
        (
            "http://proxy.example",
            None,
            {"http_proxy_host": "proxy.example", "http_proxy_port": 80, "proxy_type": "http", "http_no_proxy": None},
        ),
        (
            "http://al%40ice:s%3Acret@proxy.example:8080",
            None,
            {
                "http_proxy_host": "proxy.example",
                "http_proxy_port": 8080,
                "proxy_type": "http",
                "http_no_proxy": None,
                "http_proxy_auth": ("al@ice", "s:cret"),
            },
        ),
        ("http://proxy.example:3128", "127.0.0.1", {}),
        ("http://proxy.example:3128", "example.org, 127.0.0.0/8", {}),
        (
            "http://proxy.example:3128",
            "example.org,10.0.0.0/8",
            {
                "http_proxy_host": "proxy.example",
                "http_proxy_port": 3128,
                "proxy_type": "http",
                "http_no_proxy": ["example.org", "10.0.0.0/8"],
            },
        ),
    ],
)
def test_proxy_options(proxy, no_proxy, expected):
    assert kube.proxy_options(configuration(proxy, no_proxy), EXEC_URL) == expected


@pytest.mark.parametrize("proxy", ["https://proxy.example:3128", "socks5://10.0.0.1", "http://"])
def test_a_proxy_that_cannot_carry_exec_is_refused_with_a_message(proxy):
    with pytest.raises(kube.KubeConfigError, match="cannot carry exec"):
        kube.proxy_options(configuration(proxy), EXEC_URL)


def write_kubeconfig(path: Path, proxies: dict[str, str], current: str) -> Path:
    clusters = []
    for name, proxy in proxies.items():
        cluster = {"server": API, "insecure-skip-tls-verify": True}
        if proxy:
            cluster["proxy-url"] = proxy
        clusters.append({"name": name, "cluster": cluster})
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": clusters,
        "contexts": [{"name": name, "context": {"cluster": name, "user": "u"}} for name in proxies],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "current-context": current,
    }
    path.write_text(yaml.safe_dump(document))
    return path


def test_the_proxy_url_of_the_chosen_context_is_loaded(tmp_path, monkeypatch):
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(variable, raising=False)
    path = write_kubeconfig(tmp_path / "config", {"direct": "", "proxied": "http://127.0.0.1:3128"}, "direct")

    assert kube.load_configuration(kube.ClusterCredentials(str(path))).proxy is None
    proxied = kube.load_configuration(kube.ClusterCredentials(str(path), context="proxied"))
    assert proxied.proxy == "http://127.0.0.1:3128"


class ConnectProxy(socketserver.ThreadingTCPServer):
    """An HTTP CONNECT proxy on loopback that tunnels only to loopback and remembers what it was asked."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ConnectHandler)
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ConnectHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode()
        self.server.requests.append(line)
        method, target, _ = line.split(" ", 2)
        host, _, port = target.rpartition(":")
        if method != "CONNECT" or host not in ("127.0.0.1", "localhost"):
            self.request.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            return
        with socket.create_connection((host, int(port)), timeout=10) as upstream:
            self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            sockets = [self.request, upstream]
            while True:
                readable, _, _ = select.select(sockets, [], [], 30)
                if not readable:
                    return
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    (upstream if source is self.request else self.request).sendall(data)


@pytest.fixture
def connect_proxy():
    server = ConnectProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.cluster
def test_exec_goes_through_the_kubeconfig_proxy(kube, kubeconfig, connect_proxy, tmp_path):
    kube.config_map("env-config", {"log_level": "INFO"})
    container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "env-config"}}]}
    kube.create_deployment(deployment("env-demo", [container]))
    kube.wait_deployment_ready("env-demo")
    [pod] = kube.ready_pods("env-demo")
    kube.wait_exec_ready(pod.metadata.name)
    document = yaml.safe_load(kubeconfig.read_text())
    for entry in document["clusters"]:
        entry["cluster"]["proxy-url"] = connect_proxy.url
    proxied = tmp_path / "kubeconfig"
    proxied.write_text(yaml.safe_dump(document))
    api_server = document["clusters"][0]["cluster"]["server"].removeprefix("https://")

    with kube_client(proxied) as client:
        output = client.exec_in_container(kube.namespace, pod.metadata.name, "app", ["env"], 10)

    assert "log_level=INFO" in output.splitlines()
    assert connect_proxy.requests == [f"CONNECT {api_server} HTTP/1.1"]


def kube_client(path: Path) -> kube.KubeClient:
    return kube.KubeClient(kube.ClusterCredentials(str(path)))
