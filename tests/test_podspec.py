"""Reading pod specs: every way a container consumes a ConfigMap or Secret, owners, container runs."""

from datetime import UTC, datetime

import pytest

from drift.podspec import (
    ConsumptionSpec,
    Termination,
    consumptions_of,
    container_runs,
    data_modified_at,
    reload_hints,
    reloaded_by,
    restart_tool_annotations,
    restarted_at,
    top_owner,
)


def spec_with(container, volumes=()):
    return {"containers": [container], "volumes": list(volumes)}


CASES = [
    pytest.param(
        {"env": [{"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "log_level"}}}]},
        [],
        [ConsumptionSpec("ConfigMap", "cm", "env", keys=("log_level",), env_names=(("LEVEL", "log_level"),))],
        id="configMapKeyRef",
    ),
    pytest.param(
        {"env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token", "optional": True}}}]},
        [],
        [ConsumptionSpec("Secret", "s", "env", keys=("token",), env_names=(("T", "token"),), optional=True)],
        id="secretKeyRef-optional",
    ),
    pytest.param(
        {"env": [{"name": "plain", "value": "x"}, {"name": "F", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]},
        [],
        [],
        id="plain-and-fieldRef-are-not-config",
    ),
    pytest.param(
        {"envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "APP_"}, {"secretRef": {"name": "s"}}],
         "env": [{"name": "APP_mode", "value": "override"}]},
        [],
        [
            ConsumptionSpec("ConfigMap", "cm", "envFrom", env_prefix="APP_", shadowed_env=("APP_mode",)),
            ConsumptionSpec("Secret", "s", "envFrom", shadowed_env=("APP_mode",)),
        ],
        id="envFrom-prefix-and-shadowing",
    ),
    pytest.param(
        {"volumeMounts": [{"name": "v", "mountPath": "/etc/config"}]},
        [{"name": "v", "configMap": {"name": "cm"}}],
        [ConsumptionSpec("ConfigMap", "cm", "volume", mount_path="/etc/config")],
        id="volume-all-keys",
    ),
    pytest.param(
        {"volumeMounts": [{"name": "v", "mountPath": "/etc/config"}]},
        [{"name": "v", "configMap": {"name": "cm", "items": [{"key": "a", "path": "conf/a.ini"}], "optional": True}}],
        [ConsumptionSpec("ConfigMap", "cm", "volume", keys=("a",), paths=(("conf/a.ini", "a"),),
                         mount_path="/etc/config", optional=True)],
        id="volume-items",
    ),
    pytest.param(
        {"volumeMounts": [{"name": "v", "mountPath": "/etc/secret", "readOnly": True}]},
        [{"name": "v", "secret": {"secretName": "s", "defaultMode": 256}}],
        [ConsumptionSpec("Secret", "s", "volume", mount_path="/etc/secret")],
        id="secret-volume",
    ),
    pytest.param(
        {"volumeMounts": [{"name": "v", "mountPath": "/etc/nginx/nginx.conf", "subPath": "nginx.conf"}]},
        [{"name": "v", "configMap": {"name": "nginx-config"}}],
        [ConsumptionSpec("ConfigMap", "nginx-config", "subPath", keys=("nginx.conf",),
                         mount_path="/etc/nginx/nginx.conf", sub_path="nginx.conf")],
        id="subPath",
    ),
    pytest.param(
        {"volumeMounts": [{"name": "v", "mountPath": "/etc/x", "subPath": "conf/a.ini"}]},
        [{"name": "v", "configMap": {"name": "cm", "items": [{"key": "a", "path": "conf/a.ini"},
                                                              {"key": "b", "path": "other"}]}}],
        [ConsumptionSpec("ConfigMap", "cm", "subPath", keys=("a",), paths=(("conf/a.ini", "a"),),
                         mount_path="/etc/x", sub_path="conf/a.ini")],
        id="subPath-through-items",
    ),
    pytest.param(
        {"volumeMounts": [{"name": "v", "mountPath": "/etc/x", "subPathExpr": "$(POD_NAME)"}]},
        [{"name": "v", "configMap": {"name": "cm"}}],
        [ConsumptionSpec("ConfigMap", "cm", "subPath", mount_path="/etc/x", sub_path="$(POD_NAME)")],
        id="subPathExpr",
    ),
    pytest.param(
        {"volumeMounts": [{"name": "v", "mountPath": "/etc/all"}]},
        [{"name": "v", "projected": {"sources": [
            {"configMap": {"name": "cm", "items": [{"key": "k", "path": "k"}]}},
            {"secret": {"name": "s"}},
            {"serviceAccountToken": {"path": "token"}},
        ]}}],
        [
            ConsumptionSpec("ConfigMap", "cm", "projected", keys=("k",), paths=(("k", "k"),), mount_path="/etc/all"),
            ConsumptionSpec("Secret", "s", "projected", mount_path="/etc/all"),
        ],
        id="projected",
    ),
    pytest.param(
        {"volumeMounts": [{"name": "data", "mountPath": "/data"}]},
        [{"name": "data", "emptyDir": {}}],
        [],
        id="other-volumes-ignored",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("container", "volumes", "expected"), CASES)
def test_consumptions(container, volumes, expected):
    container = {"name": "app", **container}
    assert consumptions_of(spec_with(container, volumes), container) == expected


@pytest.mark.parametrize(
    ("references", "intermediate", "expected"),
    [
        ([{"kind": "ReplicaSet", "name": "web-1", "uid": "rs", "controller": True}], {"rs": ("Deployment", "web")},
         ("Deployment", "web")),
        ([{"kind": "ReplicaSet", "name": "web-1", "uid": "rs", "controller": True}], {}, ("ReplicaSet", "web-1")),
        ([{"kind": "Job", "name": "nightly-1", "uid": "j", "controller": True}], {"j": ("CronJob", "nightly")},
         ("CronJob", "nightly")),
        ([{"kind": "StatefulSet", "name": "db", "uid": "s", "controller": True}], {}, ("StatefulSet", "db")),
        ([{"kind": "DaemonSet", "name": "agent", "uid": "d", "controller": True}], {}, ("DaemonSet", "agent")),
        ([{"kind": "Node", "name": "n", "uid": "n"}], {}, ("Pod", "bare")),
        ([], {}, ("Pod", "bare")),
    ],
    ids=["deployment", "orphan-replicaset", "cronjob", "statefulset", "daemonset", "non-controller", "bare"],
)  # fmt: skip
def test_top_owner(references, intermediate, expected):
    assert top_owner({"name": "bare", "ownerReferences": references}, intermediate) == expected


def test_container_runs_cover_init_containers_and_stand_in_identities():
    pod = {
        "metadata": {"uid": "u1"},
        "spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "app"}, {"name": "waiting"}]},
        "status": {
            "initContainerStatuses": [{"name": "init", "containerID": "containerd://abc",
                                       "state": {"terminated": {"startedAt": "2026-11-25T10:00:00Z"}}}],
            "containerStatuses": [
                {"name": "app", "restartCount": 2, "state": {"running": {"startedAt": "2026-11-25T10:00:05Z"}}},
                {"name": "waiting", "state": {"waiting": {"reason": "ContainerCreating"}}},
            ],
        },
    }  # fmt: skip
    init, app, waiting = container_runs(pod)
    assert (init.init, init.identity, init.running) == (True, "containerd://abc", False)
    assert (app.identity, app.running) == ("u1/app/2/2026-11-25T10:00:05+00:00", True)
    assert app.started_at == datetime(2026, 11, 25, 10, 0, 5, tzinfo=UTC)
    assert (waiting.started_at, waiting.running, waiting.identity) == (None, False, "u1/waiting/0/pending")


def test_container_runs_say_how_a_run_ended_and_how_the_one_before_it_ended():
    pod = {
        "metadata": {"uid": "u1"},
        "spec": {"containers": [{"name": "app"}, {"name": "job"}, {"name": "odd"}]},
        "status": {
            "containerStatuses": [
                {"name": "app", "restartCount": 3, "containerID": "containerd://new",
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137, "containerID": "containerd://old",
                                              "finishedAt": "2026-11-25T10:00:05Z"}}},
                {"name": "job", "containerID": "containerd://j",
                 "state": {"terminated": {"reason": "Error", "exitCode": 2, "finishedAt": "2026-11-25T10:01:00Z"}}},
                {"name": "odd", "restartCount": -1, "state": {"terminated": {"reason": 5, "exitCode": "x",
                                                                              "finishedAt": "yesterday"}}},
            ],
        },
    }  # fmt: skip
    app, job, odd = container_runs(pod)
    assert (app.restart_count, app.waiting_reason, app.termination) == (3, "CrashLoopBackOff", None)
    assert app.previous_termination == Termination("OOMKilled", 137, datetime(2026, 11, 25, 10, 0, 5, tzinfo=UTC))
    assert app.previous_identity == "containerd://old"
    assert job.termination == Termination("Error", 2, datetime(2026, 11, 25, 10, 1, tzinfo=UTC))
    assert (job.previous_termination, job.previous_identity) == (None, "")
    # What a kubelet we do not control might write is left out, never fatal.
    assert (odd.restart_count, odd.termination) == (0, Termination("", None, None))


def test_a_reloader_restart_is_recognised_by_its_mark_without_the_hash_it_writes():
    labels = {"pod-template-hash": "5d8f7c9b4"}
    annotated = {"metadata": {"labels": labels, "annotations": {
        "reloader.stakater.com/last-reloaded-from": '{"type":"CONFIGMAP","name":"env-config","namespace":"demo",'
        '"hash":"0a1b2c","kind":"ConfigMap"}'}}}  # fmt: skip
    assert reloaded_by(annotated) == "ConfigMap env-config @5d8f7c9b4"
    env = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "env": [
        {"name": "STAKATER_DB_PASSWORD_SECRET", "value": "deadbeef"}, {"name": "LOG_LEVEL", "value": "INFO"}]}]}}  # fmt: skip
    assert reloaded_by(env) == "STAKATER_DB_PASSWORD_SECRET @5d8f7c9b4"
    assert "deadbeef" not in reloaded_by(env) and "0a1b2c" not in reloaded_by(annotated)
    odd = {"metadata": {"annotations": {"reloader.stakater.com/last-reloaded-from": "not json"}}}
    assert reloaded_by(odd) == "a ConfigMap or Secret @"
    assert reloaded_by({"metadata": {}, "spec": {"containers": [{"name": "app"}]}}) == ""


def test_data_modified_at_takes_the_managers_of_data():
    metadata = {
        "managedFields": [
            {"manager": "kubectl-create", "time": "2026-11-25T10:00:00Z", "fieldsV1": {"f:data": {}}},
            {"manager": "kubectl-edit", "time": "2026-11-25T11:00:00Z", "fieldsV1": {"f:data": {"f:a": {}}}},
            {"manager": "labeller", "time": "2026-11-25T12:00:00Z", "fieldsV1": {"f:metadata": {}}},
        ]
    }
    assert data_modified_at(metadata) == datetime(2026, 11, 25, 11, tzinfo=UTC)
    assert data_modified_at({}) is None


def pod_with(annotations=None, containers=None):
    return {
        "metadata": {"annotations": annotations or {}},
        "spec": {"containers": containers or [{"name": "app", "image": "nginx:1.27"}]},
    }


@pytest.mark.parametrize(
    ("pod", "owner", "expected"),
    [
        (pod_with(), {}, {}),
        (
            pod_with({"driftwatch.io/reload": "hot"}),
            {},
            {"declared": "hot", "declared_by": "annotation driftwatch.io/reload"},
        ),
        (
            pod_with({"driftwatch.io/reload": "Restart "}),
            {},
            {"declared": "restart", "declared_by": "annotation driftwatch.io/reload"},
        ),
        (pod_with({"driftwatch.io/reload": "sometimes"}), {}, {}),  # neither hot nor restart: declares nothing
        (
            pod_with({"driftwatch.io/reload": "hot", "driftwatch.io/reload.app": "restart"}),
            {},
            {"declared": "restart", "declared_by": "annotation driftwatch.io/reload.app"},
        ),
        (pod_with({"driftwatch.io/reload.other": "hot"}), {}, {}),  # another container's
        (
            pod_with(
                containers=[
                    {"name": "app", "image": "nginx"},
                    {"name": "reload", "image": "ghcr.io/jimmidyson/configmap-reload:v0.14.0"},
                ]
            ),
            {},
            {"sidecar": "configmap-reload, container reload"},
        ),
        (
            pod_with(
                containers=[
                    {"name": "app", "image": "x"},
                    {"name": "r", "image": "quay.io/prometheus-operator/prometheus-config-reloader@sha256:abc"},
                ]
            ),
            {},
            {"sidecar": "prometheus-config-reloader, container r"},
        ),
        (pod_with(containers=[{"name": "app", "image": "quay.io/kiwigrid/k8s-sidecar:1.28"}]), {}, {}),  # itself
        (pod_with({"checksum/config": "5d41402a"}), {}, {"restart_tool": "Helm checksum (checksum/config)"}),
        (pod_with(), {"reloader.stakater.com/auto": "true"}, {"restart_tool": "Reloader (reloader.stakater.com/auto)"}),
        (pod_with(), {"reloader.stakater.com/auto": "false"}, {}),
        (
            pod_with(),
            {"configmap.reloader.stakater.com/reload": "web-config,other"},
            {"restart_tool": "Reloader (configmap.reloader.stakater.com/reload)"},
        ),
        (
            pod_with(),
            {"secret.reloader.stakater.com/reload": "db"},
            {"restart_tool": "Reloader (secret.reloader.stakater.com/reload)"},
        ),
        (
            pod_with(),
            {"reloader.stakater.com/search": "true"},
            {"restart_tool": "Reloader (reloader.stakater.com/search)"},
        ),
        (
            pod_with(),
            {"wave.pusher.com/update-on-config-change": "true"},
            {"restart_tool": "Wave (wave.pusher.com/update-on-config-change)"},
        ),
    ],
    ids=[
        "nothing",
        "declared-hot",
        "declared-restart-spelled-loosely",
        "declared-nonsense",
        "per-container-wins",
        "other-container",
        "configmap-reload-sidecar",
        "prometheus-config-reloader-by-digest",
        "a-sidecar-is-not-its-own",
        "helm-checksum",
        "reloader-auto",
        "reloader-off",
        "reloader-named-configmaps",
        "reloader-named-secrets",
        "reloader-search",
        "wave",
    ],
)
def test_what_a_pod_says_of_reloading(pod, owner, expected):
    assert reload_hints(pod, "app", owner) == expected


def test_a_listing_keeps_only_the_restart_tool_annotations_of_an_owner():
    annotations = {
        "deployment.kubernetes.io/revision": "3",
        "reloader.stakater.com/auto": "true",
        "checksum/x": "y" * 400,
    }
    assert restart_tool_annotations(annotations) == {"reloader.stakater.com/auto": "true", "checksum/x": "y" * 253}


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({"kubectl.kubernetes.io/restartedAt": "2026-12-01T09:12:00Z"}, datetime(2026, 12, 1, 9, 12, tzinfo=UTC)),
        ({"kubectl.kubernetes.io/restartedAt": "2026-12-01T10:12:00+01:00"}, datetime(2026, 12, 1, 9, 12, tzinfo=UTC)),
        ({"kubectl.kubernetes.io/restartedAt": "yesterday"}, None),
        ({"kubectl.kubernetes.io/restartedAt": "2026-12-01T09:12:00"}, None),  # no zone: not what kubectl writes
        ({}, None),
    ],
    ids=["utc", "offset", "not-a-time", "no-zone", "absent"],
)
def test_when_kubectl_rollout_restart_made_the_template(annotations, expected):
    assert restarted_at({"annotations": annotations}) == expected
