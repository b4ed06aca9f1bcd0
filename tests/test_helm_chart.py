"""The Helm chart (deploy/helm/driftwatch), rendered by the pinned Helm (scripts/helm): lint, the RBAC of each
mode against the API calls the code makes, restricted pod security, probes, Secrets, and a server-side dry-run
apply against the local API server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "driftwatch"
SECRET = ["--set", "secrets.existingSecret=driftwatch-secrets"]

# What the code calls (drift/snapshot/listing.py, drift/snapshot/probing.py -> drift/kube/exec.py,
# drift/rollout/plan.py, execute.py, follow.py): (apiGroup, resource) -> verbs.
NAMESPACED_CALLS = {
    ("", "configmaps"): {"get", "list"},
    ("", "secrets"): {"get", "list"},
    ("", "pods"): {"list"},
    ("apps", "replicasets"): {"list"},
    ("batch", "jobs"): {"list"},
    ("", "pods/exec"): {"create", "get"},
    ("apps", "deployments"): {"get", "patch"},
    ("apps", "statefulsets"): {"get", "patch"},
    ("apps", "daemonsets"): {"get", "patch"},
}
CLUSTER_CALLS = {**NAMESPACED_CALLS, ("", "nodes"): {"list"}, ("", "namespaces"): {"list"}}
READ_ONLY_CALLS = {
    ("", "configmaps"): {"list"},
    ("", "secrets"): {"list"},
    ("", "pods"): {"list"},
    ("apps", "replicasets"): {"list"},
    ("batch", "jobs"): {"list"},
}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "scripts" / "helm"), *args], capture_output=True, text=True, check=check)


def render(*values: str, namespace: str = "driftwatch") -> list[dict]:
    result = helm("template", "dw", str(CHART), "--namespace", namespace, *values)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(documents: list[dict], kind: str) -> list[dict]:
    return [doc for doc in documents if doc["kind"] == kind]


def permissions(role: dict) -> dict[tuple[str, str], set[str]]:
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def pod_specs(documents: list[dict]) -> dict[str, dict]:
    return {
        doc["metadata"]["name"]: doc["spec"]["template"]["spec"]
        for doc in documents
        if doc["kind"] in {"Deployment", "Job"}
    }


def test_the_chart_lints_clean() -> None:
    result = helm("lint", "--strict", str(CHART), *SECRET, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("mode", "values", "expected"),
    [
        ("cluster-wide", [], CLUSTER_CALLS),
        (
            "cluster-wide read-only",
            ["--set", "rbac.readOnly=true"],
            {**READ_ONLY_CALLS, **{k: v for k, v in CLUSTER_CALLS.items() if k[1] in {"nodes", "namespaces"}}},
        ),
    ],
)
def test_cluster_wide_mode_grants_exactly_what_the_code_calls(mode, values, expected) -> None:
    documents = render(*SECRET, *values)
    [role] = of_kind(documents, "ClusterRole")
    assert permissions(role) == expected, mode
    assert of_kind(documents, "Role") == []
    [binding] = of_kind(documents, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "dw-driftwatch", "namespace": "driftwatch"}]


@pytest.mark.parametrize(("read_only", "expected"), [(False, NAMESPACED_CALLS), (True, READ_ONLY_CALLS)])
def test_namespaced_mode_is_a_role_per_listed_namespace_and_no_cluster_role(read_only, expected) -> None:
    values = ["--set", "rbac.mode=namespaced", "--set", "rbac.namespaces={shop,demo}"]
    documents = render(*SECRET, *values, "--set", f"rbac.readOnly={str(read_only).lower()}")
    assert of_kind(documents, "ClusterRole") == [] and of_kind(documents, "ClusterRoleBinding") == []
    roles = of_kind(documents, "Role")
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["demo", "shop"]
    for role in roles:
        assert permissions(role) == expected
    assert sorted(b["metadata"]["namespace"] for b in of_kind(documents, "RoleBinding")) == ["demo", "shop"]
    [register] = [doc for doc in of_kind(documents, "Job") if doc["metadata"]["name"].endswith("-register")]
    script = register["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert '"--namespace" "shop" "--namespace" "demo"' in script
    assert ('"--read-only"' in script) is read_only


def test_namespaced_mode_without_namespaces_is_refused() -> None:
    result = helm("template", "dw", str(CHART), *SECRET, "--set", "rbac.mode=namespaced", check=False)
    assert result.returncode != 0
    assert "rbac.mode=namespaced needs rbac.namespaces" in result.stderr


def test_the_watcher_adds_its_deployment_and_the_watch_verb_only_when_enabled() -> None:
    without = render(*SECRET)
    assert not any("watch" in verbs for verbs in permissions(of_kind(without, "ClusterRole")[0]).values())
    assert "dw-driftwatch-watcher" not in pod_specs(without)
    documents = render(*SECRET, "--set", "watcher.enabled=true")
    granted = permissions(of_kind(documents, "ClusterRole")[0])
    for resource in ("configmaps", "secrets"):
        assert "watch" in granted[("", resource)]
    assert granted[("", "pods")] == {"list"}  # drift/snapshot/watch.py watches ConfigMaps and Secrets, not pods
    assert pod_specs(documents)["dw-driftwatch-watcher"]["containers"][0]["command"] == ["python", "manage.py", "watch"]


def test_every_pod_meets_the_restricted_pod_security_standard() -> None:
    specs = pod_specs(render(*SECRET, "--set", "watcher.enabled=true"))
    assert set(specs) == {
        f"dw-driftwatch-{part}" for part in ("web", "worker", "beat", "watcher", "migrate", "register")
    }
    for name, spec in specs.items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert "hostNetwork" not in spec, name
        assert {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}} in spec["volumes"], name
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], name
            assert container["resources"]["requests"] and container["resources"]["limits"], name
            secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
            assert secrets == {
                key: {"name": "driftwatch-secrets", "key": key} for key in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL")
            }, name


def test_web_probes_liveness_on_healthz_and_readiness_on_readyz_and_has_a_disruption_budget() -> None:
    documents = render(*SECRET)
    [web] = pod_specs(documents)["dw-driftwatch-web"]["containers"]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    [budget] = of_kind(documents, "PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "web"
    assert of_kind(documents, "Ingress") == [] and of_kind(documents, "ServiceMonitor") == []
    optional = render(*SECRET, "--set", "ingress.enabled=true", "--set", "serviceMonitor.enabled=true")
    assert len(of_kind(optional, "Ingress")) == 1 and len(of_kind(optional, "ServiceMonitor")) == 1


def test_secrets_come_from_a_secret_the_chart_creates_before_the_migrations_or_one_named() -> None:
    refused = helm("template", "dw", str(CHART), check=False)
    assert refused.returncode != 0 and "secrets.existingSecret" in refused.stderr
    documents = render(
        "--set",
        "secrets.secretKey=k",
        "--set",
        "secrets.databaseUrl=postgres://x/y",
        "--set",
        "secrets.redisUrl=redis://r/0",
    )
    [secret] = of_kind(documents, "Secret")
    assert secret["metadata"]["annotations"]["helm.sh/hook-weight"] == "-10"
    [migrate] = [doc for doc in of_kind(documents, "Job") if doc["metadata"]["name"].endswith("-migrate")]
    assert int(migrate["metadata"]["annotations"]["helm.sh/hook-weight"]) > -10
    assert of_kind(render(*SECRET), "Secret") == []


@pytest.mark.cluster
@pytest.mark.parametrize(
    "values",
    [[], ["--set", "rbac.readOnly=true"], ["--set", "rbac.mode=namespaced", "--set", "rbac.namespaces={NS}"]],
    ids=["cluster-wide", "read-only", "namespaced"],
)
def test_every_mode_passes_a_server_side_dry_run_apply(kubeconfig, namespace, values) -> None:
    values = [value.replace("{NS}", "{" + namespace + "}") for value in values]
    rendered = helm(
        "template", "dw", str(CHART), "--namespace", namespace, *SECRET, "--set", "ingress.enabled=true", *values
    ).stdout
    result = subprocess.run(
        [str(ROOT / "scripts" / "cluster"), "kubectl", "apply", "--dry-run=server", "-n", namespace, "-f", "-"],
        input=rendered, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "deployment.apps/dw-driftwatch-web created (server dry run)" in result.stdout
