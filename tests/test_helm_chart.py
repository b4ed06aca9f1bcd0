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

# What each process calls, and so what its own service account gets: (apiGroup, resource) -> verbs.
# The web process (gunicorn) runs a rollout inside the request: dashboard/views/rollouts.py -> drift/rollout/plan.py
# (GET the workload and each ConfigMap/Secret it reads, LIST its pods by selector, dry-run PATCH), execute.py
# (PATCH, GET after a lost answer), follow.py (GET).
ROLLOUT_CALLS = {
    ("", "configmaps"): {"get"},
    ("", "secrets"): {"get"},
    ("", "pods"): {"list"},
    ("apps", "deployments"): {"get", "patch"},
    ("apps", "statefulsets"): {"get", "patch"},
    ("apps", "daemonsets"): {"get", "patch"},
    # drift/rollout/evict.py: restart the stale pods only (a bare ReplicaSet's selector; policy/v1 Evictions)
    ("apps", "replicasets"): {"get"},
    ("", "pods/eviction"): {"create"},
    # drift/rollout/kinds.py ArgoRollout: an Argo Rollout's restart (spec.restartAt, or its template)
    ("argoproj.io", "rollouts"): {"get", "patch"},
}
# The Celery worker: the snapshot (drift/snapshot/listing.py LIST, probing.py -> drift/kube/exec.py exec) and the
# rollouts the beat task `track_rollouts` follows and starts (a bulk rollout's later groups: the rollout calls).
SNAPSHOT_CALLS = {
    ("", "configmaps"): {"list"},
    ("", "secrets"): {"list"},
    ("", "pods"): {"list"},
    ("apps", "replicasets"): {"list"},
    ("batch", "jobs"): {"list"},
    # each CronJob's schedule, for its next run (drift/snapshot/listing.py _read_schedules)
    ("batch", "cronjobs"): {"list"},
}
EXEC_CALLS = {("", "pods/exec"): {"create", "get"}}
# The web process restores a ConfigMap version inside the request: drift/restore.py (GET, dry-run PUT, PUT).
RESTORE_CALLS = {("", "configmaps"): {"get", "update"}}
# ... and runs a CronJob now: drift/rollout/run_now.py (GET the CronJob, dry-run POST and POST of a Job).
RUN_NOW_CALLS = {("batch", "cronjobs"): {"get"}, ("batch", "jobs"): {"create"}}
CLUSTER_ONLY_CALLS = {("", "nodes"): {"list"}, ("", "namespaces"): {"list"}}
# The watcher (drift/snapshot/watch.py, podwatch.py): LIST then WATCH of ConfigMaps, Secrets and pods, the pods'
# owners (a LIST, and a GET of one created since), and (unless read-only) the exec probes its events call for.
WATCH_CALLS = {
    ("", "configmaps"): {"list", "watch"},
    ("", "secrets"): {"list", "watch"},
    ("", "pods"): {"list", "watch"},
    ("apps", "replicasets"): {"list", "get"},
    ("batch", "jobs"): {"list", "get"},
}
WATCH_CLUSTER_ONLY_CALLS = {("", "nodes"): {"list", "get"}}


def merged(*calls: dict[tuple[str, str], set[str]]) -> dict[tuple[str, str], set[str]]:
    result: dict[tuple[str, str], set[str]] = {}
    for each in calls:
        for key, verbs in each.items():
            result.setdefault(key, set()).update(verbs)
    return result


WORKER_NAMESPACED_CALLS = merged(SNAPSHOT_CALLS, EXEC_CALLS, ROLLOUT_CALLS)
# Per account and mode: what its Role or ClusterRole grants; an account absent from a mode has none bound.
ACCOUNT_CALLS = {
    "cluster-wide": {
        "web": merged(ROLLOUT_CALLS, RESTORE_CALLS, RUN_NOW_CALLS),
        "worker": merged(WORKER_NAMESPACED_CALLS, CLUSTER_ONLY_CALLS),
        "watcher": merged(WATCH_CALLS, EXEC_CALLS, WATCH_CLUSTER_ONLY_CALLS),
    },
    "cluster-wide read-only": {
        "worker": merged(SNAPSHOT_CALLS, CLUSTER_ONLY_CALLS),
        "watcher": merged(WATCH_CALLS, WATCH_CLUSTER_ONLY_CALLS),
    },
    "namespaced": {
        "web": merged(ROLLOUT_CALLS, RESTORE_CALLS, RUN_NOW_CALLS),
        "worker": WORKER_NAMESPACED_CALLS,
        "watcher": merged(WATCH_CALLS, EXEC_CALLS),
    },
    "namespaced read-only": {"worker": SNAPSHOT_CALLS, "watcher": WATCH_CALLS},
}
MODE_VALUES = {
    "cluster-wide": [],
    "cluster-wide read-only": ["--set", "rbac.readOnly=true"],
    "namespaced": ["--set", "rbac.mode=namespaced", "--set", "rbac.namespaces={shop,demo}"],
    "namespaced read-only": [
        "--set", "rbac.mode=namespaced", "--set", "rbac.namespaces={shop,demo}", "--set", "rbac.readOnly=true"
    ],
}  # fmt: skip
WATCHER = ["--set", "watcher.enabled=true"]
AUDIT_RECEIVER = ["--set", "auditReceiver.enabled=true"]
INGRESS = ["--set", "ingress.enabled=true"]


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


def account(process: str, namespace: str = "driftwatch") -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": f"dw-driftwatch-{process}", "namespace": namespace}


def runs_as(documents: list[dict], process: str) -> dict[str, str] | None:
    """The account whose token the process's pods hold: the serviceAccountName of its Deployment or Job (the
    namespace's `default` when none is named), None when they mount no token; a process the values leave out: the
    account named after it."""
    spec = pod_specs(documents).get(f"dw-driftwatch-{process}")
    if spec is None:
        return account(process)
    if spec.get("automountServiceAccountToken") is False:
        return None
    return {"kind": "ServiceAccount", "name": spec.get("serviceAccountName", "default"), "namespace": "driftwatch"}


def granted_to(documents: list[dict], process: str, namespace: str | None = None) -> dict[tuple[str, str], set[str]]:
    """What the RBAC objects rendered let one process do, with the token its pods mount: cluster-wide (the
    ClusterRoles its account's ClusterRoleBindings name), or in `namespace` (its RoleBindings there, plus the
    cluster-wide grants), as the API server's authoriser adds them up."""
    subject = runs_as(documents, process)
    if subject is None:
        return {}
    roles = {(doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]): doc for doc in documents
             if doc["kind"] in {"Role", "ClusterRole"}}  # fmt: skip
    grants: list[dict] = []
    for binding in of_kind(documents, "ClusterRoleBinding") + of_kind(documents, "RoleBinding"):
        if subject not in binding["subjects"]:
            continue
        where = binding["metadata"].get("namespace")
        if binding["kind"] == "RoleBinding" and where != namespace:
            continue
        ref = binding["roleRef"]
        grants.append(roles[(ref["kind"], where if ref["kind"] == "Role" else None, ref["name"])])
    return merged(*(permissions(role) for role in grants))


def can(documents: list[dict], process: str, verb: str, group: str, resource: str, namespace: str | None) -> bool:
    return verb in granted_to(documents, process, namespace).get((group, resource), set())


def test_the_chart_lints_clean() -> None:
    result = helm("lint", "--strict", str(CHART), *SECRET, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("mode", list(ACCOUNT_CALLS))
def test_each_processs_account_is_granted_exactly_what_that_process_calls(mode) -> None:
    documents = render(*SECRET, *WATCHER, *MODE_VALUES[mode])
    namespaces = [None] if mode.startswith("cluster-wide") else ["shop", "demo"]
    for namespace in namespaces:
        for process in ("web", "worker", "watcher", "beat", "register"):
            expected = ACCOUNT_CALLS[mode].get(process, {})
            assert granted_to(documents, process, namespace) == expected, (mode, process, namespace)
    if mode.startswith("namespaced"):
        assert granted_to(documents, "worker", "elsewhere") == {}


def test_the_web_account_can_neither_exec_nor_list_secrets_nor_watch() -> None:
    documents = render(*SECRET, *WATCHER)
    for verb, group, resource in [
        ("create", "", "pods/exec"), ("get", "", "pods/exec"), ("list", "", "secrets"), ("list", "", "configmaps"),
        ("watch", "", "secrets"), ("list", "", "nodes"), ("list", "apps", "replicasets"),
    ]:  # fmt: skip
        assert not can(documents, "web", verb, group, resource, "demo"), (verb, resource)
    assert can(documents, "web", "patch", "apps", "daemonsets", "demo")
    assert can(documents, "worker", "create", "", "pods/exec", "demo")
    assert not can(documents, "watcher", "patch", "apps", "deployments", "demo")
    assert can(documents, "web", "patch", "argoproj.io", "rollouts", "demo")
    assert not can(documents, "web", "list", "argoproj.io", "rollouts", "demo")
    assert not can(documents, "worker", "watch", "", "secrets", "demo")


def test_each_process_runs_under_its_own_account_and_mounts_a_token_only_when_it_calls_the_api() -> None:
    specs = pod_specs(render(*SECRET, *WATCHER, *AUDIT_RECEIVER))
    for process in ("web", "worker", "watcher", "register"):
        spec = specs[f"dw-driftwatch-{process}"]
        assert spec["serviceAccountName"] == f"dw-driftwatch-{process}", process
        assert spec.get("automountServiceAccountToken", True) is True, process
    for process in ("beat", "migrate", "audit"):
        assert specs[f"dw-driftwatch-{process}"]["automountServiceAccountToken"] is False, process
    read_only = pod_specs(render(*SECRET, "--set", "rbac.readOnly=true"))
    assert read_only["dw-driftwatch-web"]["automountServiceAccountToken"] is False  # a read-only web calls nothing
    accounts = of_kind(render(*SECRET, *WATCHER), "ServiceAccount")
    assert sorted(each["metadata"]["name"] for each in accounts) == [
        f"dw-driftwatch-{process}" for process in ("register", "watcher", "web", "worker")
    ]
    for each in accounts:  # a token only where a pod asks for one
        assert each["automountServiceAccountToken"] is False, each["metadata"]["name"]


def test_namespaced_mode_is_a_role_per_listed_namespace_and_account_and_no_cluster_role() -> None:
    documents = render(*SECRET, *WATCHER, *MODE_VALUES["namespaced"])
    assert of_kind(documents, "ClusterRole") == [] and of_kind(documents, "ClusterRoleBinding") == []
    roles = sorted((role["metadata"]["namespace"], role["metadata"]["name"]) for role in of_kind(documents, "Role"))
    assert roles == [
        (namespace, f"dw-driftwatch-{process}")
        for namespace in ("demo", "shop")
        for process in ("watcher", "web", "worker")
    ]
    for read_only in (False, True):
        values = MODE_VALUES["namespaced read-only" if read_only else "namespaced"]
        [register] = [
            doc for doc in of_kind(render(*SECRET, *values), "Job") if doc["metadata"]["name"].endswith("-register")
        ]
        script = register["spec"]["template"]["spec"]["containers"][0]["command"][-1]
        assert '"--namespace" "shop" "--namespace" "demo"' in script
        assert ('"--read-only"' in script) is read_only


def test_namespaced_mode_without_namespaces_is_refused() -> None:
    result = helm("template", "dw", str(CHART), *SECRET, "--set", "rbac.mode=namespaced", check=False)
    assert result.returncode != 0
    assert "rbac.mode=namespaced needs rbac.namespaces" in result.stderr


def test_the_watcher_gets_its_deployment_and_account_only_when_enabled() -> None:
    without = render(*SECRET)
    assert "dw-driftwatch-watcher" not in pod_specs(without)
    assert granted_to(without, "watcher") == {}
    assert not any(account("watcher") in b["subjects"] for b in of_kind(without, "ClusterRoleBinding"))
    documents = render(*SECRET, *WATCHER)
    command = pod_specs(documents)["dw-driftwatch-watcher"]["containers"][0]["command"]
    assert command == ["python", "manage.py", "watch", "--lease-seconds", "15"]
    assert granted_to(documents, "watcher") == ACCOUNT_CALLS["cluster-wide"]["watcher"]


def test_the_watcher_runs_two_processes_sharing_the_clusters_with_the_same_account() -> None:
    # Leases live in the database (drift/snapshot/leases.py): two replicas need no Kubernetes Lease and no new verb.
    documents = render(*SECRET, *WATCHER)
    (deployment,) = [d for d in of_kind(documents, "Deployment") if d["metadata"]["name"] == "dw-driftwatch-watcher"]
    assert deployment["spec"]["replicas"] == 2
    assert "strategy" not in deployment["spec"]  # rolling: the old pod gives its leases back as it stops
    assert granted_to(documents, "watcher") == ACCOUNT_CALLS["cluster-wide"]["watcher"]
    single = render(*SECRET, *WATCHER, "--set", "watcher.replicas=1", "--set", "watcher.leaseSeconds=30")
    (deployment,) = [d for d in of_kind(single, "Deployment") if d["metadata"]["name"] == "dw-driftwatch-watcher"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["template"]["spec"]["containers"][0]["command"][-1] == "30"


def test_every_pod_meets_the_restricted_pod_security_standard() -> None:
    specs = pod_specs(render(*SECRET, *WATCHER, *AUDIT_RECEIVER))
    assert set(specs) == {
        f"dw-driftwatch-{part}" for part in ("web", "worker", "beat", "watcher", "migrate", "register", "audit")
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


def ingress_serves(ingress: dict, path: str) -> bool:
    """Whether a request for `path` is sent on by the Ingress (networking.k8s.io/v1 path matching: Exact is the
    whole path, Prefix matches whole `/` separated elements)."""
    for rule in ingress["spec"]["rules"]:
        for each in rule["http"]["paths"]:
            if each["pathType"] == "Exact" and path == each["path"]:
                return True
            prefix = each["path"].rstrip("/")
            if each["pathType"] == "Prefix" and (path == prefix or path.startswith(prefix + "/") or prefix == ""):
                return True
    return False


# Served to operators from outside; everything else stays inside the cluster unless a value publishes it.
PUBLIC_PATHS = [
    "/", "/source-names/", "/clusters/local/demo/pods/p/", "/audit/", "/audit.csv", "/rollouts/plan/", "/rollouts/7/", "/workloads/3/confirm/",
    "/notifications/", "/login/", "/logout/", "/sso/start/", "/sso/callback/", "/static/htmx.min.js",
]  # fmt: skip
PRIVATE_PREFIXES = ("/metrics", "/admin/", "/kubernetes-audit/", "/healthz", "/readyz")
PRIVATE_PATHS = ["/metrics", "/admin/", "/admin/drift/cluster/", "/kubernetes-audit/local", "/healthz", "/readyz"]


def test_the_ingress_publishes_the_dashboard_but_not_metrics_admin_or_the_audit_receiver() -> None:
    [ingress] = of_kind(render(*SECRET, *INGRESS, *AUDIT_RECEIVER), "Ingress")
    for path in PUBLIC_PATHS:
        assert ingress_serves(ingress, path), path
    for path in PRIVATE_PATHS:
        assert not ingress_serves(ingress, path), path
    backends = {each["backend"]["service"]["name"] for each in ingress["spec"]["rules"][0]["http"]["paths"]}
    assert backends == {"dw-driftwatch"}
    [published] = of_kind(render(*SECRET, *INGRESS, "--set", "ingress.publishAdmin=true",
                                 "--set", "ingress.publishMetrics=true"), "Ingress")  # fmt: skip
    assert ingress_serves(published, "/admin/drift/") and ingress_serves(published, "/metrics")
    assert not ingress_serves(published, "/kubernetes-audit/local")


def test_every_url_of_the_app_is_either_published_or_known_to_be_private() -> None:
    """A new URL must be placed on one side: the ingress lists the public prefixes one by one."""
    from django.urls import get_resolver

    [ingress] = of_kind(render(*SECRET, *INGRESS), "Ingress")
    for pattern in get_resolver("dashboard.urls").url_patterns:
        sample = "/" + str(pattern.pattern).split("<")[0].lstrip("^")
        private = sample.startswith(PRIVATE_PREFIXES)
        assert ingress_serves(ingress, sample) is not private, (str(pattern.pattern), sample)


def labels_of(documents: list[dict]) -> dict[str, dict[str, str]]:
    return {doc["metadata"]["name"]: doc["spec"]["template"]["metadata"]["labels"] for doc in documents
            if doc["kind"] in {"Deployment", "Job"}}  # fmt: skip


def test_network_policies_let_in_only_the_web_port_and_the_audit_receivers_port() -> None:
    documents = render(*SECRET, *WATCHER, *AUDIT_RECEIVER)
    policies = of_kind(documents, "NetworkPolicy")
    assert policies
    for name, labels in labels_of(documents).items():
        selecting = [p for p in policies if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()]
        assert selecting and all("Ingress" in p["spec"]["policyTypes"] for p in selecting), name
        ports = [port for p in selecting for rule in p["spec"].get("ingress") or [] for port in rule["ports"]]
        expected = {"dw-driftwatch-web": [{"port": "http", "protocol": "TCP"}],
                    "dw-driftwatch-audit": [{"port": "audit", "protocol": "TCP"}]}.get(name, [])  # fmt: skip
        assert ports == expected, name
    assert of_kind(render(*SECRET, "--set", "networkPolicy.enabled=false"), "NetworkPolicy") == []


def test_the_audit_receiver_is_its_own_deployment_service_and_port_serving_only_the_receiver() -> None:
    assert "dw-driftwatch-audit" not in pod_specs(render(*SECRET))
    documents = render(*SECRET, *AUDIT_RECEIVER, "--set", "auditReceiver.tlsSecret=audit-tls")
    [container] = pod_specs(documents)["dw-driftwatch-audit"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DRIFTWATCH_URLS"] == "audit"
    assert "dw-driftwatch-audit.driftwatch.svc" in env["ALLOWED_HOSTS"].split(",")
    assert container["ports"] == [{"name": "audit", "containerPort": 8443, "protocol": "TCP"}]
    assert "--certfile" in container["command"] and "--keyfile" in container["command"]
    [web] = pod_specs(documents)["dw-driftwatch-web"]["containers"]
    assert {e["name"]: e.get("value") for e in web["env"]}["DRIFTWATCH_URLS"] == "dashboard"
    services = {s["metadata"]["name"]: s["spec"] for s in of_kind(documents, "Service")}
    assert services["dw-driftwatch-audit"]["selector"]["app.kubernetes.io/component"] == "audit"
    assert services["dw-driftwatch-audit"]["ports"] == [
        {"name": "audit", "port": 8443, "targetPort": "audit", "protocol": "TCP"}
    ]
    assert services["dw-driftwatch"]["selector"]["app.kubernetes.io/component"] == "web"


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
        "template", "dw", str(CHART), "--namespace", namespace, *SECRET, *INGRESS, *WATCHER, *AUDIT_RECEIVER, *values
    ).stdout
    result = subprocess.run(
        [str(ROOT / "scripts" / "cluster"), "kubectl", "apply", "--dry-run=server", "-n", namespace, "-f", "-"],
        input=rendered, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "deployment.apps/dw-driftwatch-web created (server dry run)" in result.stdout
