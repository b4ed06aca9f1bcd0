"""The pure half of drift.rollout: workloads as the API server returns them (plain dicts) in, decisions out."""

from datetime import UTC, datetime, timedelta

import pytest

from drift.kube import InvalidName, core_path, validate_name, validate_namespace, workload_path
from drift.rollout import (
    KINDS,
    ROLLABLE_KINDS,
    Target,
    busy_reason,
    config_hash,
    gitops_warning,
    next_step,
    not_rollable_reason,
    paused_reason,
    progress_of,
    referenced_sources,
    restart_tool_warning,
    selector_string,
    update_strategy,
)
from drift.rollout.kinds import controller_owner, kinds_text, owned_reason

KEY = "driftwatch.io/config-hash"


def deployment(spec=None, status=None, generation=2, labels=None, annotations=None):
    return {
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "generation": generation,
            "labels": labels or {},
            "annotations": annotations or {},
        },
        "spec": {"replicas": 3, **(spec or {})},
        "status": status or {},
    }


def progressing(reason, status="True", message=""):
    return {"conditions": [{"type": "Progressing", "status": status, "reason": reason, "message": message}]}


DONE = {
    "observedGeneration": 2,
    "replicas": 3,
    "updatedReplicas": 3,
    "readyReplicas": 3,
    "availableReplicas": 3,
    **progressing("NewReplicaSetAvailable"),
}


@pytest.mark.parametrize(
    ("kind", "spec", "expected", "refused"),
    [
        ("Deployment", {}, "at most 25% extra and 25% unavailable", False),
        ("Deployment", {"strategy": {"type": "Recreate"}}, "expect downtime", False),
        ("Deployment", {"strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}, "1 extra and 0", False),
        ("StatefulSet", {}, "highest ordinal first", False),
        ("StatefulSet", {"updateStrategy": {"rollingUpdate": {"partition": 2}}}, "ordinal 2 or above", False),
        ("StatefulSet", {"updateStrategy": {"type": "OnDelete"}}, "OnDelete", True),
        ("DaemonSet", {}, "node by node, at most 1 unavailable", False),
        ("DaemonSet", {"updateStrategy": {"type": "OnDelete"}}, "OnDelete", True),
    ],
)
def test_it_describes_the_update_strategy(kind, spec, expected, refused):
    text, refusal = update_strategy(kind, {"metadata": {"name": "x"}, "spec": spec})
    assert expected in text
    assert (refusal is not None) is refused
    if refused:
        assert "restart nothing" in refusal


def test_it_refuses_a_paused_deployment_and_says_how_to_resume_it():
    reason = paused_reason("Deployment", deployment({"paused": True}))
    assert "paused" in reason
    assert "kubectl -n shop rollout resume deployment/web" in reason
    assert paused_reason("Deployment", deployment()) is None
    assert paused_reason("StatefulSet", {"spec": {"paused": True}}) is None


@pytest.mark.parametrize(
    ("workload", "busy"),
    [
        (deployment(status=DONE), False),
        (deployment(status={**DONE, "observedGeneration": 1}), True),
        (deployment(status={**DONE, "updatedReplicas": 1, **progressing("ReplicaSetUpdated")}), True),
        # A pod that crashed after the rollout finished does not make the Deployment busy.
        (deployment(status={**DONE, "availableReplicas": 2}), False),
        # A stuck rollout may be fixed by a new template: not busy.
        (deployment(status={**DONE, "updatedReplicas": 1, **progressing("ProgressDeadlineExceeded", "False")}), False),
    ],
    ids=["done", "not-observed", "rolling", "pod-crashed-later", "deadline-exceeded"],
)
def test_it_tells_a_deployment_rollout_in_progress(workload, busy):
    reason = busy_reason("Deployment", workload)
    assert (reason is not None) is busy


def test_it_tells_statefulset_and_daemonset_rollouts_in_progress():
    sts = {"metadata": {"generation": 1}, "spec": {"replicas": 2}}
    done = {"observedGeneration": 1, "updatedReplicas": 2, "currentRevision": "a", "updateRevision": "a"}
    assert busy_reason("StatefulSet", {**sts, "status": done}) is None
    assert "1 of 2" in busy_reason(
        "StatefulSet", {**sts, "status": {**done, "updatedReplicas": 1, "updateRevision": "b"}}
    )
    ds = {"metadata": {"generation": 1}, "spec": {}}
    ds_status = {"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2}
    assert busy_reason("DaemonSet", {**ds, "status": ds_status}) is None
    assert busy_reason("DaemonSet", {**ds, "status": {**ds_status, "updatedNumberScheduled": 1}}) is not None


@pytest.mark.parametrize(
    ("workload", "state", "words"),
    [
        # Right after the patch the status still shows the previous generation, complete: not ours yet.
        (deployment(status={**DONE, "observedGeneration": 1}), "in_progress", "waiting for the Deployment controller"),
        (deployment(status={**DONE, "updatedReplicas": 1, "replicas": 4}), "in_progress", "3 old pod(s) still to stop"),
        (deployment(status={**DONE, "replicas": 4}), "in_progress", "1 old pod(s)"),
        (deployment(status=DONE), "complete", "3 of 3 updated, 3 ready, 3 available"),
        (
            deployment(
                {"progressDeadlineSeconds": 30},
                {
                    **DONE,
                    "updatedReplicas": 1,
                    **progressing("ProgressDeadlineExceeded", "False", "RS web-2 timed out"),
                },
            ),
            "failed",
            "progress deadline exceeded (30s",
        ),
        (deployment({"paused": True}, {**DONE, "updatedReplicas": 1}), "paused", "resume it"),
    ],
    ids=["old-generation", "rolling", "old-pods-left", "complete", "deadline", "paused"],
)
def test_it_follows_a_deployment_rollout(workload, state, words):
    progress = progress_of("Deployment", workload, generation=2)
    assert progress.state == state
    assert words in progress.message
    assert progress.desired == 3


def test_it_follows_statefulset_and_daemonset_rollouts():
    sts = {"spec": {"replicas": 2}, "status": {"observedGeneration": 2, "updatedReplicas": 1, "readyReplicas": 2}}
    sts["status"] |= {"currentRevision": "a", "updateRevision": "b"}
    assert progress_of("StatefulSet", sts, 2).state == "in_progress"
    sts["status"] |= {"updatedReplicas": 2, "currentRevision": "b"}
    assert progress_of("StatefulSet", sts, 2).state == "complete"
    ds = {"spec": {}, "status": {"observedGeneration": 3, "desiredNumberScheduled": 2, "updatedNumberScheduled": 1}}
    ds["status"] |= {"numberReady": 2, "numberAvailable": 2}
    assert progress_of("DaemonSet", ds, 3).state == "in_progress"
    ds["status"]["updatedNumberScheduled"] = 2
    done = progress_of("DaemonSet", ds, 3)
    assert (done.state, done.desired, done.updated, done.available) == ("complete", 2, 2, 2)


@pytest.mark.parametrize(
    ("labels", "annotations", "words"),
    [
        ({"argocd.argoproj.io/instance": "shop"}, {}, "Argo CD (application shop)"),
        (
            {"app.kubernetes.io/instance": "shop"},
            {"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:x/web"},
            "Argo CD (application shop)",
        ),
        (
            {"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"},
            {},
            "Flux (Kustomization flux-system/apps)",
        ),
        ({"helm.toolkit.fluxcd.io/name": "shop"}, {}, "Flux (HelmRelease shop)"),
    ],
    ids=["argo-label", "argo-tracking-annotation", "flux-kustomization", "flux-helm"],
)
def test_it_warns_that_gitops_tools_will_see_the_annotation_as_drift(labels, annotations, words):
    warning = gitops_warning(deployment(labels=labels, annotations=annotations), KEY)
    assert words in warning
    assert KEY in warning
    assert "driftwatch" in warning  # the field manager to tell it by
    if "Argo CD" in words:
        assert "managedFieldsManagers: [driftwatch]" in warning
        assert "RespectIgnoreDifferences=true" in warning
    else:
        assert "server-side apply" in warning


@pytest.mark.parametrize(
    ("references", "owner"),
    [
        ([], None),
        ([{"kind": "Service", "name": "web", "controller": False}], None),
        ([{"kind": "Revision", "name": "web-00001", "controller": True}], "Revision/web-00001"),
    ],
)
def test_a_workload_another_controller_owns_is_refused_with_the_owner_named(references, owner):
    workload = deployment()
    workload["metadata"]["ownerReferences"] = references
    assert controller_owner(workload) == owner
    reason = owned_reason("Deployment", workload)
    if owner is None:
        assert reason is None
    else:
        assert f"owned by {owner}; it would revert the change" in reason


def test_it_does_not_warn_for_helm_alone():
    # app.kubernetes.io/instance is also Helm's label: without an Argo CD annotation it says nothing.
    assert gitops_warning(deployment(labels={"app.kubernetes.io/instance": "shop"}), KEY) is None


@pytest.mark.parametrize(
    ("workload", "words"),
    [
        (deployment(annotations={"reloader.stakater.com/auto": "true"}), "Reloader (reloader.stakater.com/auto)"),
        (
            deployment(spec={"template": {"metadata": {"annotations": {"checksum/config": "abc"}}}}),
            "Helm checksum (checksum/config)",
        ),
        (deployment(annotations={"wave.pusher.com/update-on-config-change": "true"}), "Wave"),
    ],
    ids=["reloader", "helm-checksum-on-the-template", "wave"],
)
def test_it_says_a_manual_rollout_adds_a_restart_to_the_restart_tools(workload, words):
    warning = restart_tool_warning(workload)
    assert words in warning and "one more restart" in warning


def test_it_says_nothing_of_restart_tools_where_there_is_none():
    assert restart_tool_warning(deployment(annotations={"reloader.stakater.com/auto": "false"})) is None
    assert restart_tool_warning(deployment()) is None


def test_it_spells_label_selectors_like_the_api():
    selector = {
        "matchLabels": {"app": "web", "tier": "front"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["a", "b"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "zone", "operator": "NotIn", "values": ["z"]},
            {"key": "owner", "operator": "Exists"},
        ],
    }
    assert selector_string(selector) == "app=web,tier=front,env in (a,b),!canary,zone notin (z),owner"


def test_it_finds_every_source_a_pod_template_reads():
    template = {
        "spec": {
            "initContainers": [{"name": "init", "envFrom": [{"secretRef": {"name": "db"}}]}],
            "containers": [
                {
                    "name": "app",
                    "envFrom": [{"configMapRef": {"name": "env-config"}}],
                    "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "other", "key": "x"}}}],
                    "volumeMounts": [{"name": "conf", "mountPath": "/etc/conf"}],
                }
            ],
            "volumes": [
                {"name": "conf", "configMap": {"name": "env-config"}},
                {"name": "unused", "secret": {"secretName": "nope"}},
            ],
        }
    }
    assert referenced_sources(template) == [("ConfigMap", "env-config"), ("ConfigMap", "other"), ("Secret", "db")]


def test_the_config_hash_depends_on_content_only():
    one = config_hash({("ConfigMap", "a"): "h1", ("Secret", "b"): "h2"})
    assert one == config_hash({("Secret", "b"): "h2", ("ConfigMap", "a"): "h1"})
    assert one != config_hash({("ConfigMap", "a"): "h1-changed", ("Secret", "b"): "h2"})
    assert config_hash({("ConfigMap", "a"): None}) != config_hash({})
    assert len(one) == 64


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("Pod", "Delete it and create it again"),
        ("Job", "Delete the Job and create it again"),
        ("CronJob", "kubectl -n shop create job --from=cronjob/nightly nightly-now"),
        ("ReplicaSet", "Restart its stale pods only"),
        ("Node", "the kubelet recreates an evicted mirror without restarting its containers"),
        ("Cluster", "Cluster/nightly is none of them: an operator owns its pods"),
        ("Widget", "Restart its stale pods only (the eviction action): Widget/nightly is expected to replace"),
    ],
)
def test_it_explains_what_works_instead_for_kinds_it_cannot_roll_out(kind, words):
    assert words in not_rollable_reason(Target(kind, "shop", "nightly"))


@pytest.mark.parametrize(
    ("kind", "rules", "template", "evict", "reads_its_object"),
    [
        ("Deployment", "Deployment", True, True, True),
        ("ReplicaSet", "ReplicaSet", False, True, True),
        ("Rollout", "ArgoRollout", True, False, True),
        ("CronJob", "CronJob", False, False, True),
        # Kinds Driftwatch does not know, named by their pods as their controller: their operator replaces an
        # evicted pod, found by its owner's UID; the object itself is never read.
        ("Cluster", "OperatorOwned", False, True, False),  # CNPG's postgresql.cnpg.io Cluster
        ("StrimziPodSet", "OperatorOwned", False, True, False),
        ("ReplicationController", "OperatorOwned", False, True, False),
        # Nothing replaces an evicted bare pod; a Job's pods are not served; a static pod's mirror is recreated by
        # the kubelet without restarting anything.
        ("Pod", "NotRestarted", False, False, True),
        ("Job", "NotRestarted", False, False, True),
        ("Node", "NotRestarted", False, False, True),
        ("", "NotRestarted", False, False, True),
    ],
)
def test_every_kind_has_rules_even_those_driftwatch_does_not_know(kind, rules, template, evict, reads_its_object):
    from drift.rollout.kinds import offers, rules_of

    found = rules_of(kind)
    assert type(found).__name__ == rules
    assert offers(kind, "template") is template and found.offers("evict") is evict
    assert found.reads_its_object is reads_its_object
    caveat = found.replacement_caveat(Target("Widget", "shop", "db"), 120)
    if rules == "OperatorOwned":
        assert "Widget/db is expected to replace each evicted pod" in caveat
        assert "stuck at the cluster's rollout deadline (120s)" in caveat
    else:
        assert caveat is None


@pytest.mark.parametrize(
    ("references", "owners", "uid"),
    [
        ([{"kind": "Cluster", "name": "db", "uid": "u-db", "controller": True}], {}, "u-db"),
        ([{"kind": "StatefulSet", "name": "db", "uid": "u-sts", "controller": True}], {}, "u-sts"),
        # Reached through its ReplicaSet: the pod names the ReplicaSet, not the Deployment.
        ([{"kind": "ReplicaSet", "name": "web-1", "uid": "u-rs", "controller": True}],
         {"u-rs": ("Deployment", "web")}, ""),
        ([{"kind": "ReplicaSet", "name": "web-1", "uid": "u-rs", "controller": True}],
         {"u-rs": ("ReplicaSet", "web-1")}, "u-rs"),
        ([{"kind": "Cluster", "name": "db", "uid": "u-db"}], {}, ""),  # not its controller
        ([], {}, ""),  # a bare pod
    ],
)  # fmt: skip
def test_the_owner_uid_is_that_of_the_workload_the_pods_name_as_their_controller(references, owners, uid):
    from drift.podspec import owner_uid

    assert owner_uid({"name": "db-1", "ownerReferences": references}, owners) == uid


@pytest.mark.parametrize(
    "name",
    ["../../victim/deployments/target", "..", "a/b", "Web", "web_1", "-web", "web-", "", "a" * 254, "web%2F..", "w b"],
)
def test_a_target_refuses_names_kubernetes_would_refuse(name):
    with pytest.raises(InvalidName):
        Target("Deployment", "shop", name)
    with pytest.raises(InvalidName):
        Target("Deployment", name if name else "", "web")


@pytest.mark.parametrize(
    ("namespace", "valid"),
    [("shop", True), ("a" * 63, True), ("a" * 64, False), ("shop.eu", False), ("1shop", True), ("Shop", False)],
)
def test_namespaces_are_dns_labels_and_names_dns_subdomains(namespace, valid):
    if valid:
        assert validate_namespace(namespace) == namespace
    else:
        with pytest.raises(InvalidName):
            validate_namespace(namespace)
    assert validate_name("web.v2-blue") == "web.v2-blue"


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("Deployment", "/apis/apps/v1/namespaces/shop/deployments/web"),
        ("StatefulSet", "/apis/apps/v1/namespaces/shop/statefulsets/web"),
        ("DaemonSet", "/apis/apps/v1/namespaces/shop/daemonsets/web"),
    ],
)
def test_each_kind_builds_its_own_path_and_permission(kind, path):
    target = Target(kind, "shop", "web")
    assert target.path() == path == workload_path("apps/v1", path.split("/")[-2], "shop", "web")
    assert target.permission("patch") == f"patch {path.split('/')[-2]}.apps in shop"


def test_core_paths_quote_every_segment():
    assert core_path("configmaps", "shop", "app.config") == "/api/v1/namespaces/shop/configmaps/app.config"
    assert core_path("pods", "shop") == "/api/v1/namespaces/shop/pods"
    with pytest.raises(InvalidName):
        core_path("secrets", "shop", "../kube-system/secrets/token")


@pytest.mark.parametrize(
    ("kind", "age", "state", "stuck"),
    [
        ("StatefulSet", 61, "in_progress", True),
        ("DaemonSet", 61, "in_progress", True),
        ("StatefulSet", 59, "in_progress", False),
        ("StatefulSet", 61, "complete", False),
        ("Deployment", 61, "in_progress", False),  # its controller's progressDeadlineSeconds decides
    ],
)
def test_a_rollout_past_the_clusters_deadline_is_stuck(kind, age, state, stuck):
    from datetime import timedelta

    from django.utils import timezone

    from drift.models import Cluster, Rollout
    from drift.rollout import Progress
    from drift.rollout.follow import past_deadline

    rollout = Rollout(
        cluster=Cluster(name="local", rollout_deadline_seconds=60),
        kind=kind,
        namespace="shop",
        name="web",
        patched_at=timezone.now() - timedelta(seconds=age),
    )
    found = past_deadline(rollout, Progress(state, 3, 1, 1, 1, "1 of 3 updated"))
    assert (found is not None) is stuck
    if stuck:
        assert found.state == "stuck"
        assert "not complete 60s after the patch" in found.message and "1 of 3 updated" in found.message


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet"])
def test_each_kind_owns_where_its_template_lives_and_how_to_patch_it(kind):
    rules = KINDS[kind]
    workload = {"spec": {"template": {"metadata": {"annotations": {"a": "1"}}, "spec": {"containers": []}}}}
    assert rules.pod_template(workload) == workload["spec"]["template"]
    assert rules.pod_template({}) == {}
    assert rules.restart_patch("k", "v") == {"spec": {"template": {"metadata": {"annotations": {"k": "v"}}}}}
    assert rules.offers("template") and rules.offers("evict")


def test_a_cron_job_owns_its_template_under_its_job_template_and_offers_run_now_only():
    from drift.rollout.kinds import RUNNABLE_KINDS

    rules = KINDS["CronJob"]
    template = {"metadata": {"labels": {"app": "report"}}, "spec": {"containers": []}}
    assert rules.pod_template({"spec": {"jobTemplate": {"spec": {"template": template}}}}) == template
    assert rules.offers("run_now") and not rules.offers("template") and not rules.offers("evict")
    assert {"CronJob"} == RUNNABLE_KINDS
    assert Target("CronJob", "shop", "nightly").path() == "/apis/batch/v1/namespaces/shop/cronjobs/nightly"
    assert "CronJob" not in ROLLABLE_KINDS


def test_the_rollable_kinds_are_read_from_the_kinds_themselves():
    assert {"Deployment", "StatefulSet", "DaemonSet", "Rollout"} == ROLLABLE_KINDS
    assert not Target("ReplicaSet", "shop", "web").rollable
    assert kinds_text() == "Deployments, StatefulSets, DaemonSets and Argo Rollouts"


# An Argo Rollout (argoproj.io/v1alpha1) as its controller writes it: status.observedGeneration is a string.
RESTART_AT = "2026-12-01T09:00:00Z"


def argo_rollout(spec=None, status=None, generation=2, annotations=None):
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "shop", "generation": generation, "annotations": annotations or {}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"annotations": {KEY: "old"}}, "spec": {"containers": []}},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "10s"}}]}},
            **(spec or {}),
        },
        "status": {"observedGeneration": str(generation), **(status or {})},
    }


BY_TEMPLATE = {"driftwatch.io/restart-by": "template"}
TIMED_PAUSE = {
    "phase": "Paused", "message": "CanaryPauseStep", "currentStepIndex": 1,
    "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": RESTART_AT}],
}  # fmt: skip
INDEFINITE = {"strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}}
HEALTHY = {"phase": "Healthy", "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}


def test_an_argo_rollout_owns_its_api_group_its_patch_and_where_its_template_lives():
    rules = KINDS["Rollout"]
    target = Target("Rollout", "shop", "web")
    assert target.path() == "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/web"
    assert target.permission("patch") == "patch rollouts.argoproj.io in shop"
    assert rules.patch_content_type == "application/merge-patch+json"  # a custom resource: no strategic merge
    assert rules.offers("template") and not rules.offers("evict")
    workload = argo_rollout()
    assert rules.pod_template(workload) == workload["spec"]["template"]
    assert rules.template_owner(workload) is None


@pytest.mark.parametrize(
    ("annotations", "spec", "patch", "carried"),
    [
        # By default spec.restartAt, whole seconds in UTC; the hash on the Rollout's own annotations.
        ({}, {}, {"metadata": {"annotations": {KEY: "new"}}, "spec": {"restartAt": RESTART_AT}}, None),
        ({KEY: "new"}, {}, {"metadata": {"annotations": {KEY: "new"}}, "spec": {"restartAt": RESTART_AT}}, "new"),
        # Asked for: the template annotation, so that the controller runs its canary steps.
        (BY_TEMPLATE, {}, {"spec": {"template": {"metadata": {"annotations": {KEY: "new"}}}}}, "old"),
        # With a workloadRef there is no template of its own to patch: restartAt, whatever it asks.
        (
            BY_TEMPLATE,
            {"template": None, "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web-base"}},
            {"metadata": {"annotations": {KEY: "new"}}, "spec": {"restartAt": RESTART_AT}},
            None,
        ),
    ],
)
def test_an_argo_rollout_restarts_by_restart_at_unless_it_asks_for_its_steps(annotations, spec, patch, carried):
    rules = KINDS["Rollout"]
    workload = argo_rollout(spec=spec, annotations=annotations)
    now = datetime.fromisoformat("2026-12-01T10:00:00.987654+01:00")  # an hour east of UTC, with microseconds
    assert rules.restart_patch(KEY, "new", workload, now=now) == patch
    assert rules.restarted_with(workload, KEY) == carried


def test_an_argo_rollouts_workload_ref_names_the_deployment_whose_template_it_runs():
    reference = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web-base"}
    owner = KINDS["Rollout"].template_owner(argo_rollout(spec={"template": None, "workloadRef": reference}))
    assert owner == Target("Deployment", "shop", "web-base")
    assert KINDS["Rollout"].template_owner(argo_rollout(spec={"workloadRef": {"kind": "Pod", "name": "x"}})) is None


@pytest.mark.parametrize(
    ("spec", "status", "generation", "state", "words"),
    [
        ({}, {"observedGeneration": "2", **HEALTHY}, 3, "in_progress", "waiting for the Argo Rollouts controller"),
        # Seen, but the controller has not replaced every pod created before restartAt yet: still Healthy.
        ({"restartAt": RESTART_AT}, HEALTHY, 2, "in_progress", "still to be replaced"),
        ({"restartAt": RESTART_AT}, {**HEALTHY, "restartedAt": RESTART_AT}, 2, "complete", "complete: Healthy"),
        ({}, {**HEALTHY, "phase": "Progressing", "updatedReplicas": 1}, 2, "in_progress", "1 of 2 updated"),
        ({}, {**HEALTHY, "availableReplicas": 1}, 2, "in_progress", "1 available"),
        ({}, {**HEALTHY, "phase": "Paused", "message": "CanaryPauseStep"}, 2, "paused", "CanaryPauseStep"),
        # A timed pause step (its second, `pause: {duration: 10s}`) goes on by itself: under way, not paused.
        ({}, {**HEALTHY, **TIMED_PAUSE}, 2, "in_progress", "paused 10s at a canary step"),
        # An indefinite one (`pause: {}`) waits for a person.
        (INDEFINITE, {**HEALTHY, **TIMED_PAUSE}, 2, "paused", "CanaryPauseStep"),
        (
            {},
            {**HEALTHY, "phase": "Degraded", "message": "ProgressDeadlineExceeded: timed out"},
            2,
            "failed",
            "ProgressDeadlineExceeded",
        ),
        ({}, HEALTHY, 2, "complete", "2 of 2 updated, 2 ready, 2 available"),
    ],
)
def test_an_argo_rollouts_progress_is_read_from_its_status(spec, status, generation, state, words):
    progress = progress_of("Rollout", argo_rollout(spec=spec, status=status, generation=2), generation)
    assert progress.state == state
    assert words in progress.message


@pytest.mark.parametrize(
    ("spec", "status", "busy", "paused"),
    [
        ({}, HEALTHY, None, None),
        ({}, {**HEALTHY, "observedGeneration": "1"}, "not yet acted on the latest change", None),
        ({"restartAt": RESTART_AT}, HEALTHY, "a restart is in progress", None),
        ({"restartAt": RESTART_AT}, {**HEALTHY, "restartedAt": RESTART_AT}, None, None),
        ({}, {**HEALTHY, "phase": "Progressing", "message": "more replicas need to be updated"}, "more replicas", None),
        ({"paused": True}, HEALTHY, None, "kubectl argo rollouts -n shop promote web"),
        ({}, {**HEALTHY, "phase": "Paused", "pauseConditions": [{"reason": "CanaryPauseStep"}]}, None, "is paused"),
        ({}, {**HEALTHY, **TIMED_PAUSE}, "paused 10s at a canary step, then it goes on", None),
        (INDEFINITE, {**HEALTHY, **TIMED_PAUSE}, None, "is paused"),
    ],
)
def test_an_argo_rollout_is_busy_or_paused_as_its_status_says(spec, status, busy, paused):
    workload = argo_rollout(spec=spec, status=status)
    found_busy, found_paused = busy_reason("Rollout", workload), paused_reason("Rollout", workload)
    assert (found_busy is None) if busy is None else (busy in found_busy)
    assert (found_paused is None) if paused is None else (paused in found_paused)


@pytest.mark.parametrize(
    ("annotations", "spec", "words"),
    [
        ({}, {}, "restartAt: the Argo Rollouts controller evicts every pod created before the restart time"),
        (BY_TEMPLATE, {}, "canary: a new ReplicaSet, through its 2 step(s)"),
        (BY_TEMPLATE, {"strategy": {"blueGreen": {"autoPromotionEnabled": False}}}, "promoted by hand"),
    ],
)
def test_an_argo_rollouts_strategy_says_how_its_pods_will_be_replaced(annotations, spec, words):
    strategy, refusal = update_strategy("Rollout", argo_rollout(spec=spec, annotations=annotations))
    assert words in strategy and refusal is None


def test_the_argo_cd_advice_names_the_api_group_of_the_kind():
    labels = {"argocd.argoproj.io/instance": "shop"}
    workload = argo_rollout() | {"metadata": {"name": "web", "labels": labels}}
    assert "group: argoproj.io, kind: Rollout" in gitops_warning(workload, KEY)


@pytest.mark.django_db
def test_going_means_patching_or_in_progress_and_nothing_else():
    from drift.models import Cluster, Rollout

    cluster = Cluster.objects.create(name="c", kubeconfig_path="/nonexistent")
    for status in Rollout.Status.values:
        Rollout.objects.create(cluster=cluster, kind="Deployment", namespace="shop", name=status.replace("_", "-"),
                               requested_by="olga", annotation_key="k", status=status)  # fmt: skip
    going = set(Rollout.objects.going().values_list("status", flat=True))
    assert going == {"patching", "in_progress"}
    assert {r.status for r in Rollout.objects.all() if r.going} == going
    assert Rollout.objects.of(cluster, "Deployment", "shop", "patching").going().count() == 1


T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _pod(name, uid, minutes=-5, ready=True):
    return {"name": name, "uid": uid, "created": T0 + timedelta(minutes=minutes), "ready": ready}


A, B, C = {"name": "web-a", "uid": "a"}, {"name": "web-b", "uid": "b"}, {"name": "web-c", "uid": "c"}
FRESH = _pod("web-f", "f")  # fresh before the rollout started: never evicted, never counted as a replacement


@pytest.mark.parametrize(
    ("planned", "evicted", "live", "at_once", "evict", "done", "replaced"),
    [
        ([A, B], [], [_pod("web-a", "a"), _pod("web-b", "b"), FRESH], 1, ["a"], False, 0),
        ([A, B], [], [_pod("web-a", "a"), _pod("web-b", "b"), FRESH], 2, ["a", "b"], False, 0),
        # a's replacement not Ready yet: wait
        ([A, B], [A], [_pod("web-x", "x", 1, ready=False), _pod("web-b", "b"), FRESH], 1, [], False, 0),
        # a replaced and Ready: b next
        ([A, B], [A], [_pod("web-x", "x", 1), _pod("web-b", "b"), FRESH], 1, ["b"], False, 1),
        # a StatefulSet's replacement keeps the name, with a new UID
        (
            [A],
            [A],
            [{"name": "web-a", "uid": "a2", "created": T0 + timedelta(minutes=1), "ready": True}],
            1,
            [],
            True,
            1,
        ),
        ([A, B], [A, B], [_pod("web-x", "x", 1), _pod("web-y", "y", 2), FRESH], 1, [], True, 2),
        # c vanished (someone deleted it): not evicted, but its replacement is awaited
        ([A, C], [], [_pod("web-a", "a"), FRESH], 1, [], False, 0),
        ([A, C], [], [_pod("web-a", "a"), _pod("web-z", "z", 1), FRESH], 1, ["a"], False, 1),
        # the API server's creationTimestamp has whole seconds: a replacement of the same second counts
        ([A], [A], [_pod("web-x", "x", 0)], 1, [], True, 1),
    ],
    ids=[
        "first",
        "two-at-once",
        "waiting",
        "next",
        "same-name",
        "done",
        "vanished-wait",
        "vanished-replaced",
        "same-second",
    ],
)
def test_the_eviction_steps_wait_for_each_replacement_and_leave_fresh_pods_alone(
    planned, evicted, live, at_once, evict, done, replaced
):
    step = next_step(planned, evicted, live, T0 + timedelta(microseconds=700_000), at_once)
    assert [pod["uid"] for pod in step.evict] == evict
    assert "f" not in [pod["uid"] for pod in step.evict]
    assert (step.done, step.replaced) == (done, replaced)
