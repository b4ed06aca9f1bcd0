"""Rollouts against the real control plane: the Deployment, StatefulSet and DaemonSet controllers replace pods
for real, RBAC is enforced, and every outcome is recorded as a Rollout and an audit entry."""

import io
import logging
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from kubernetes import client as k8s

from drift.models import AuditEvent, Cluster, Pod, Rollout, SnapshotRun
from drift.rollout import Target, advance_batch, plan_rollout, queue_batch, refresh_rollout, request_rollout
from drift.tasks import track_rollouts
from tests.kube_helpers import deployment, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.django_db, pytest.mark.usefixtures("private_celery_queue")]

KEY = "driftwatch.io/config-hash"


@pytest.fixture
def cluster(kubeconfig):
    return Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig))


def env_app(name, config_map="env-config", replicas=2, **spec):
    container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": config_map}}]}
    manifest = deployment(name, [container], replicas=replicas)
    manifest["spec"].update(spec)
    return manifest


def ready_app(kube, name="env-demo", replicas=2, **spec):
    kube.config_map("env-config", {"log_level": "INFO"})
    kube.create_deployment(env_app(name, replicas=replicas, **spec))
    kube.wait_deployment_ready(name)


def follow(rollout, timeout=90):
    def ended():
        nonlocal rollout
        rollout = refresh_rollout(rollout)
        return rollout.finished

    wait_until(ended, timeout=timeout, what=f"rollout {rollout} to end")
    return rollout


def advance_until(batch, condition, what):
    """Play the part of the track_rollouts task until the batch's rows satisfy `condition`."""

    def check():
        rows = advance_batch(batch)
        return rows if condition(rows) else None

    return wait_until(check, what=what)


def generation(kube, name):
    return kube.apps.read_namespaced_deployment(name, kube.namespace).metadata.generation


def audit(action, **where):
    return list(AuditEvent.objects.filter(action=action, **where))


def test_it_rolls_out_a_deployment_and_replaces_every_pod(kube, cluster):
    ready_app(kube)
    old_pods = {pod.metadata.name for pod in kube.pods("env-demo")}
    kube.edit_config_map("env-config", {"log_level": "DEBUG"})

    rollout, plan = request_rollout(cluster, Target("Deployment", kube.namespace, "env-demo"), "olga")

    assert rollout.status == "in_progress", rollout.message
    assert set(plan.pods) == old_pods
    assert "RollingUpdate" in plan.strategy
    assert "dry run accepted" in plan.dry_run
    rollout = follow(rollout)
    assert rollout.status == "complete", rollout.message
    assert (rollout.desired, rollout.updated, rollout.available) == (2, 2, 2)
    template = kube.apps.read_namespaced_deployment("env-demo", kube.namespace).spec.template
    assert template.metadata.annotations == {KEY: rollout.config_hash}
    wait_until(lambda: {p.metadata.name for p in kube.ready_pods("env-demo")}.isdisjoint(old_pods), what="new pods")
    [requested] = audit("rollout.requested", object_name="env-demo")
    [completed] = audit("rollout.completed", object_name="env-demo")
    assert requested.actor == completed.actor == "olga"
    assert requested.detail["pods"] == sorted(old_pods)


def test_clicking_again_for_the_same_configuration_changes_nothing(kube, cluster):
    ready_app(kube, replicas=1)
    target = Target("Deployment", kube.namespace, "env-demo")
    first, _ = request_rollout(cluster, target, "olga")
    follow(first)
    before = generation(kube, "env-demo")

    again, plan = request_rollout(cluster, target, "olga")

    assert again.status == "noop"
    assert "No rollout needed" in again.message
    assert "nothing was sent" in again.message
    assert plan.config_hash == first.config_hash
    assert generation(kube, "env-demo") == before
    assert audit("rollout.noop", object_name="env-demo")[0].actor == "olga"

    kube.edit_config_map("env-config", {"log_level": "DEBUG"})
    third, _ = request_rollout(cluster, target, "olga")
    assert third.status == "in_progress"
    assert third.config_hash != first.config_hash


def test_a_dry_run_patches_nothing(kube, cluster):
    ready_app(kube, replicas=1)
    before = generation(kube, "env-demo")

    rollout, plan = request_rollout(cluster, Target("Deployment", kube.namespace, "env-demo"), "olga", dry_run=True)

    assert rollout.status == "dry_run"
    assert f"would become {before + 1}" in plan.dry_run
    assert generation(kube, "env-demo") == before
    # A dry run is recorded (issue 7, item 9), as a dry run: nothing says a rollout was requested.
    [dry] = AuditEvent.objects.filter(action__startswith="rollout.")
    assert (dry.action, dry.actor) == ("rollout.dry_run", "olga")


def test_it_refuses_a_paused_deployment(kube, cluster):
    ready_app(kube, replicas=1)
    kube.apps.patch_namespaced_deployment("env-demo", kube.namespace, {"spec": {"paused": True}})
    before = generation(kube, "env-demo")

    rollout, _ = request_rollout(cluster, Target("Deployment", kube.namespace, "env-demo"), "olga")

    assert rollout.status == "refused"
    assert "is paused" in rollout.message
    assert f"kubectl -n {kube.namespace} rollout resume deployment/env-demo" in rollout.message
    assert generation(kube, "env-demo") == before
    [refused] = audit("rollout.refused")
    assert (refused.actor, refused.object_kind, refused.object_name) == ("olga", "Deployment", "env-demo")


def test_it_refuses_while_a_rollout_is_already_in_progress(kube, cluster):
    # Pods that no node accepts keep the Deployment's first rollout going (until its deadline).
    kube.config_map("env-config", {"log_level": "INFO"})
    manifest = env_app("stuck", replicas=1)
    manifest["spec"]["template"]["spec"]["nodeSelector"] = {"driftwatch.io/no-such-node": "true"}
    kube.create_deployment(manifest)
    wait_until(lambda: kube.pods("stuck"), what="a pending pod")

    rollout, _ = request_rollout(cluster, Target("Deployment", kube.namespace, "stuck"), "olga")

    assert rollout.status == "refused"
    assert "rollout is in progress" in rollout.message
    assert audit("rollout.refused", object_name="stuck")


def test_a_second_request_while_ours_runs_is_refused(kube, cluster):
    ready_app(kube, replicas=1, minReadySeconds=30)  # keeps our rollout in progress for a while
    target = Target("Deployment", kube.namespace, "env-demo")
    first, _ = request_rollout(cluster, target, "olga")
    assert first.status == "in_progress"

    second, _ = request_rollout(cluster, target, "pavel")

    assert second.status == "refused"
    assert "already in progress (requested by olga" in second.message or "rollout is in progress" in second.message


def test_a_rollout_past_its_progress_deadline_is_recorded_as_failed(kube, cluster):
    kube.config_map("env-config", {"log_level": "INFO"})
    manifest = env_app("doomed", replicas=1, progressDeadlineSeconds=1)
    manifest["spec"]["template"]["spec"]["nodeSelector"] = {"driftwatch.io/no-such-node": "true"}
    kube.create_deployment(manifest)

    def deadline_passed():
        status = kube.apps.read_namespaced_deployment_status("doomed", kube.namespace).status
        return any(c.reason == "ProgressDeadlineExceeded" for c in status.conditions or [])

    wait_until(deadline_passed, what="the first rollout to miss its deadline")

    rollout, plan = request_rollout(cluster, Target("Deployment", kube.namespace, "doomed"), "olga")
    assert rollout.status == "in_progress", rollout.message
    assert any("previous rollout failed" in warning for warning in plan.warnings)
    rollout = follow(rollout)

    assert rollout.status == "failed"
    assert "progress deadline exceeded (1s" in rollout.message
    [failed] = audit("rollout.failed", object_name="doomed")
    assert failed.actor == "olga"


def test_it_refuses_a_bare_pod_and_a_job_and_says_what_works_instead(kube, cluster):
    kube.core.create_namespaced_pod(
        kube.namespace, {"metadata": {"name": "lonely"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    )

    pod_rollout, _ = request_rollout(cluster, Target("Pod", kube.namespace, "lonely"), "olga")
    job_rollout, _ = request_rollout(cluster, Target("Job", kube.namespace, "nightly"), "olga")

    assert pod_rollout.status == job_rollout.status == "refused"
    assert "bare Pod cannot be rolled out" in pod_rollout.message
    assert "run it under a Deployment" in pod_rollout.message
    assert "Delete the Job and create it again" in job_rollout.message
    assert len(audit("rollout.refused")) == 2
    assert kube.core.read_namespaced_pod("lonely", kube.namespace).metadata.deletion_timestamp is None


def test_a_403_from_the_api_names_the_missing_permission(kube, cluster, kube_api, kubeconfig, tmp_path):
    ready_app(kube, replicas=1)
    limited = read_only_cluster(kube, kube_api, kubeconfig, tmp_path)
    before = generation(kube, "env-demo")

    rollout, plan = request_rollout(limited, Target("Deployment", kube.namespace, "env-demo"), "olga")

    assert rollout.status == "refused"
    assert plan.permission == f"patch deployments.apps in {kube.namespace}"
    assert f"lack permission to patch deployments.apps in {kube.namespace}" in rollout.message
    assert generation(kube, "env-demo") == before
    [refused] = audit("rollout.refused")
    assert refused.detail["permission"] == f"patch deployments.apps in {kube.namespace}"


def test_it_rolls_out_a_statefulset_and_a_daemonset(kube, cluster):
    kube.config_map("env-config", {"log_level": "INFO"})
    container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "env-config"}}]}
    # The cluster may have more nodes than its usual two (a benchmark adds some): keep the DaemonSet on two
    # simulated ones (the real node is tainted, and named after the machine).
    two_nodes = sorted(node.metadata.name for node in kube.core.list_node(label_selector="type=kwok").items)[:2]
    on_two_nodes = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": two_nodes}]}
                ]
            }
        }
    }
    for kind, create in (
        ("sts", kube.apps.create_namespaced_stateful_set),
        ("ds", kube.apps.create_namespaced_daemon_set),
    ):
        pod_spec = {"containers": [container]}
        spec = {"selector": {"matchLabels": {"app": kind}}, "template": {"metadata": {"labels": {"app": kind}}}}
        if kind == "sts":
            spec |= {"replicas": 2, "serviceName": "sts"}
        else:
            pod_spec["affinity"] = on_two_nodes
        spec["template"]["spec"] = pod_spec
        create(kube.namespace, {"metadata": {"name": kind}, "spec": spec})
    wait_until(lambda: len(kube.ready_pods("sts")) == 2 and len(kube.ready_pods("ds")) == 2, what="pods ready")
    wait_until(
        lambda: kube.apps.read_namespaced_stateful_set("sts", kube.namespace).status.current_revision, what="revision"
    )

    for kind, name in (("StatefulSet", "sts"), ("DaemonSet", "ds")):
        rollout, _ = request_rollout(cluster, Target(kind, kube.namespace, name), "olga")
        assert rollout.status == "in_progress", rollout.message
        rollout = follow(rollout)
        assert rollout.status == "complete", rollout.message
        assert rollout.desired == rollout.updated == 2


def test_it_warns_when_argo_cd_manages_the_workload(kube, cluster):
    kube.config_map("env-config", {"log_level": "INFO"})
    manifest = env_app("gitops", replicas=1)
    manifest["metadata"]["labels"]["argocd.argoproj.io/instance"] = "shop"
    kube.create_deployment(manifest)
    kube.wait_deployment_ready("gitops")

    plan = plan_rollout(cluster, Target("Deployment", kube.namespace, "gitops"))

    assert plan.ready
    assert any("Argo CD (application shop)" in warning and "drift" in warning for warning in plan.warnings)


def test_a_batch_rolls_out_a_group_at_a_time(kube, cluster):
    cluster.rollout_batch_size = 2
    cluster.save()
    kube.config_map("env-config", {"log_level": "INFO"})
    names = ["one", "two", "three"]
    for name in names:
        kube.create_deployment(env_app(name, replicas=1, minReadySeconds=2))
    for name in names:
        kube.wait_deployment_ready(name)

    batch = queue_batch([(cluster, Target("Deployment", kube.namespace, name)) for name in names], "olga")
    rows = advance_batch(batch)

    assert [row.status for row in rows] == ["in_progress", "in_progress", "queued"]
    assert len(audit("rollout.requested")) == 3
    rows = advance_until(batch, lambda rows: rows[2].status != "queued", what="the second group")
    assert [row.status for row in rows[:2]] == ["complete", "complete"]
    rows = advance_until(batch, lambda rows: all(row.finished for row in rows), what="the batch end")
    assert [row.status for row in rows] == ["complete"] * 3
    assert {row.batch for row in rows} == {batch}


def test_a_failed_rollout_stops_the_rest_of_its_batch(kube, cluster):
    cluster.rollout_batch_size = 1
    cluster.save()
    kube.config_map("env-config", {"log_level": "INFO"})
    manifest = env_app("doomed", replicas=1, progressDeadlineSeconds=1)
    manifest["spec"]["template"]["spec"]["nodeSelector"] = {"driftwatch.io/no-such-node": "true"}
    kube.create_deployment(manifest)
    kube.create_deployment(env_app("fine", replicas=1))
    kube.wait_deployment_ready("fine")
    wait_until(
        lambda: any(
            c.reason == "ProgressDeadlineExceeded"
            for c in kube.apps.read_namespaced_deployment_status("doomed", kube.namespace).status.conditions or []
        ),
        what="deadline",
    )

    batch = queue_batch([(cluster, Target("Deployment", kube.namespace, n)) for n in ("doomed", "fine")], "olga")
    rows = advance_until(batch, lambda rows: all(row.finished for row in rows), what="the batch end")

    assert [row.status for row in rows] == ["failed", "refused"]
    assert "Not started" in rows[1].message
    before = kube.apps.read_namespaced_deployment("fine", kube.namespace).spec.template.metadata.annotations
    assert not before


def test_the_rollout_command_records_the_actor(kube, cluster):
    ready_app(kube, replicas=1)
    out = io.StringIO()

    call_command("rollout", "deploy/env-demo", "-n", kube.namespace, "--actor", "ops-bot", "--wait", stdout=out)

    output = out.getvalue()
    assert "pods to replace:" in output
    assert "Deployment/env-demo" in output and "complete" in output
    rollout = Rollout.objects.get()
    assert (rollout.requested_by, rollout.status) == ("ops-bot", "complete")
    assert {e.actor for e in AuditEvent.objects.filter(action__startswith="rollout.")} == {"ops-bot"}


def test_the_rollout_command_dry_run_and_refusals(kube, cluster):
    ready_app(kube, replicas=1)
    out = io.StringIO()
    call_command("rollout", "deployment/env-demo", "-n", kube.namespace, "--dry-run", "--actor", "ops", stdout=out)
    assert "dry run accepted" in out.getvalue()
    assert Rollout.objects.get().status == "dry_run"
    assert AuditEvent.objects.get(action="rollout.dry_run").actor == "ops"

    with pytest.raises(CommandError, match="refused"):
        call_command(
            "rollout", "pod/lonely", "-n", kube.namespace, "--cluster", "local", "--actor", "ops", stdout=io.StringIO()
        )
    with pytest.raises(CommandError, match="KIND/NAME"):
        call_command("rollout", "env-demo", "-n", kube.namespace, "--actor", "ops", stdout=io.StringIO())


def test_secret_values_stay_out_of_logs_audit_and_annotation(kube, cluster, caplog):
    secret_value = "hunter2-very-secret-value"
    kube.secret("db", {"password": secret_value})
    container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"secretRef": {"name": "db"}}]}
    kube.create_deployment(deployment("uses-secret", [container]))
    kube.wait_deployment_ready("uses-secret")
    caplog.set_level(logging.DEBUG)

    rollout, plan = request_rollout(cluster, Target("Deployment", kube.namespace, "uses-secret"), "olga")
    follow(rollout)

    assert rollout.status == "in_progress"
    assert [(s.kind, s.name) for s in plan.sources] == [("Secret", "db")]
    assert secret_value not in caplog.text
    assert secret_value not in str(list(AuditEvent.objects.values_list("message", "detail")))
    assert secret_value not in str(list(Rollout.objects.values()))


def read_only_cluster(kube, kube_api, kubeconfig: Path, tmp_path: Path) -> Cluster:
    """The local cluster seen through a service account that may read deployments, pods, ConfigMaps and
    Secrets in the test namespace, and patch nothing (a token from the TokenRequest API)."""
    rbac = k8s.RbacAuthorizationV1Api(kube_api)
    kube.core.create_namespaced_service_account(kube.namespace, {"metadata": {"name": "reader"}})
    rules = [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["pods", "configmaps", "secrets"], "verbs": ["get", "list"]},
    ]
    rbac.create_namespaced_role(kube.namespace, {"metadata": {"name": "reader"}, "rules": rules})
    rbac.create_namespaced_role_binding(
        kube.namespace,
        {
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": kube.namespace}],
        },
    )
    token = kube.core.create_namespaced_service_account_token(
        "reader", kube.namespace, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    source = yaml.safe_load(kubeconfig.read_text())
    cluster_entry = source["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster_entry],
        "users": [{"name": "reader", "user": {"token": token}}],
        "contexts": [{"name": "reader", "context": {"cluster": cluster_entry["name"], "user": "reader"}}],
        "current-context": "reader",
    }
    path = tmp_path / "reader.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    limited = Cluster.objects.create(name="limited", kubeconfig_path=str(path))
    # RBAC caches take a moment to see the new binding: wait until a get passes and only the patch fails.
    target = Target("Deployment", kube.namespace, "env-demo")
    wait_until(lambda: plan_rollout(limited, target).permission.startswith("patch"), what="the role binding")
    return limited


@pytest.mark.django_db(transaction=True)
def test_the_track_rollouts_task_follows_rollouts_and_batches_in_a_worker(kube, kubeconfig, celery_worker_log):
    """Nobody watches the page: beat's track_rollouts, run by a real worker, records the end, starts the
    next group of a batch, and asks for a snapshot of the new pods."""
    cluster = Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig), rollout_batch_size=1)
    kube.config_map("env-config", {"log_level": "INFO"})
    for name in ("solo", "first", "second"):
        kube.create_deployment(env_app(name, replicas=1))
    for name in ("solo", "first", "second"):
        kube.wait_deployment_ready(name)
    old_pods = {pod.metadata.name for name in ("solo", "first", "second") for pod in kube.pods(name)}
    request_rollout(cluster, Target("Deployment", kube.namespace, "solo"), "olga")
    batch = queue_batch([(cluster, Target("Deployment", kube.namespace, n)) for n in ("first", "second")], "olga")

    def all_done():
        track_rollouts.apply_async(expires=5)  # no result is stored: the rows say when it is done
        return all(rollout.finished for rollout in Rollout.objects.all())

    wait_until(all_done, what="every rollout to end through the worker")

    assert set(Rollout.objects.values_list("status", flat=True)) == {"complete"}
    assert Rollout.objects.filter(batch=batch).count() == 2
    assert AuditEvent.objects.filter(action="rollout.completed", actor="olga").count() == 3
    # Each completed rollout asked for a snapshot (nothing else does here: no beat), which the worker ran...
    finished_runs = cluster.runs.exclude(status=SnapshotRun.Status.RUNNING)
    wait_until(lambda: finished_runs.count() == 3, what="a snapshot after each of the 3 rollouts")
    received = [line for line in celery_worker_log().splitlines() if "drift.tasks.snapshot_cluster[" in line]
    assert len([line for line in received if line.endswith(" received")]) == 3
    assert set(finished_runs.values_list("status", flat=True)) == {SnapshotRun.Status.SUCCEEDED}
    ends = sorted(Rollout.objects.values_list("finished_at", flat=True))
    starts = sorted(finished_runs.values_list("started_at", flat=True))
    assert all(start >= end for start, end in zip(starts, ends, strict=True)), "each snapshot after an end"
    # ...and recorded the new pods. (Old ones may still be terminating then, and recorded too: not checked.)
    recorded = set(Pod.objects.filter(cluster=cluster, deleted_at=None).values_list("name", flat=True))
    for name in ("solo", "first", "second"):
        new_pods = {pod.metadata.name for pod in kube.ready_pods(name)}
        assert new_pods and new_pods.isdisjoint(old_pods) and new_pods <= recorded, name
