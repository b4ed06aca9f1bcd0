"""Run now on the real stack: a CronJob whose Job's pod (on the real node, a locally built image) prints a
ConfigMap's env. After an edit of the ConfigMap, Run now through the web view creates a Job owned by the CronJob,
written by field manager driftwatch, whose pod prints the new value; the request is audited before the Job
exists. A viewer and an operator of another namespace get 403 and nothing is created; the CLI does the same
and exits non-zero with the reason when refused."""

import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models.signals import post_save
from django.test import Client
from django.urls import reverse
from kubernetes import client as k8s

from drift.models import AuditEvent, Cluster, Workload
from tests.facts import user
from tests.kube_helpers import grant, parse_env, service_account_kubeconfig, wait_until
from tests.test_real_node import REAL_NODE_LABEL, TOOLBOX, find_real_node

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.django_db,
    pytest.mark.usefixtures("plain_http", "private_celery_queue"),
]

HTMX = {"HX-Request": "true", "HX-Target": "rollout-panel"}
# Once a year at midnight on 1 January: the schedule never fires while the test runs, only Run now does.
SCHEDULE = "0 0 1 1 *"


@pytest.fixture
def cluster(kubeconfig, namespace):
    # Its snapshots read this test's namespace only: the shared cluster may hold thousands of other pods.
    return Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig), namespaces=[namespace])


def cron_job(name: str = "nightly", config: str = "job-config", **spec: object) -> dict:
    """A CronJob whose pod lands on the real node and prints the ConfigMap's LOG_LEVEL from its env."""
    key, value = REAL_NODE_LABEL
    pod_spec = {
        "restartPolicy": "Never",
        "nodeSelector": {key: value},
        "tolerations": [{"key": key, "operator": "Equal", "value": value, "effect": "NoSchedule"}],
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 2,
        "containers": [
            {
                "name": "report",
                "image": TOOLBOX,
                "imagePullPolicy": "Never",
                "command": ["sh", "-c", "echo LOG_LEVEL=$LOG_LEVEL"],
                "envFrom": [{"configMapRef": {"name": config}}],
            }
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": SCHEDULE,
            "jobTemplate": {"metadata": {"labels": {"app": name}}, "spec": {"backoffLimit": 0, "template": {
                "metadata": {"labels": {"app": name}}, "spec": pod_spec}}},
            **spec,
        },
    }  # fmt: skip


def jobs(kube_api, namespace) -> list[k8s.V1Job]:
    return k8s.BatchV1Api(kube_api).list_namespaced_job(namespace).items


def the_cron_job(kube_api, namespace, name="nightly") -> k8s.V1CronJob:
    return k8s.BatchV1Api(kube_api).read_namespaced_cron_job(name, namespace)


def workload_form(cluster: Cluster, namespace: str, name: str = "nightly") -> dict:
    # The row its Jobs' pods are filed under (drift.podspec.top_owner: a Job's pod belongs to its CronJob).
    workload, _ = Workload.objects.get_or_create(cluster=cluster, kind="CronJob", namespace=namespace, name=name)
    return {"workload": workload.pk}


def job_output(kube_api, namespace: str, job: str) -> str:
    core = k8s.CoreV1Api(kube_api)

    def finished():
        status = k8s.BatchV1Api(kube_api).read_namespaced_job(job, namespace).status
        return status.succeeded or status.failed

    wait_until(finished, timeout=120, interval=1, what=f"Job {job} to finish")
    [pod] = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    return core.read_namespaced_pod_log(pod.metadata.name, namespace)


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_run_now_through_the_page_creates_a_job_that_reads_the_new_config(client, kube, kube_api, cluster):
    find_real_node(kube_api)
    kube.config_map("job-config", {"LOG_LEVEL": "INFO"})
    k8s.BatchV1Api(kube_api).create_namespaced_cron_job(kube.namespace, cron_job())
    owner = the_cron_job(kube_api, kube.namespace)
    kube.edit_config_map("job-config", {"LOG_LEVEL": "DEBUG"})
    client.force_login(user("olga", "operator", namespaces=[f"local/{kube.namespace}"]))

    plan = client.post(reverse("run-now-plan"), workload_form(cluster, kube.namespace), headers=HTMX)
    assert plan.status_code == 200
    assert f"Run CronJob/nightly in {kube.namespace} of cluster local now?" in text(plan)
    assert "ConfigMap job-config" in text(plan)
    assert jobs(kube_api, kube.namespace) == [], "the plan is a dry run: it creates nothing"

    # What the cluster held when the request's audit entry was written: it must be written before the Job exists.
    jobs_when_audited: list[list[str]] = []

    def look(sender, instance, **kwargs):
        if instance.action == "job.run_requested":
            jobs_when_audited.append([job.metadata.name for job in jobs(kube_api, kube.namespace)])

    post_save.connect(look, sender=AuditEvent)
    try:
        done = client.post(reverse("run-now-start"), workload_form(cluster, kube.namespace), headers=HTMX)
    finally:
        post_save.disconnect(look, sender=AuditEvent)
    assert done.status_code == 200, text(done)
    assert jobs_when_audited == [[]]
    [job] = jobs(kube_api, kube.namespace)
    assert f'data-job="{job.metadata.name}"' in done.content.decode()
    assert re.fullmatch(r"nightly-manual-[a-z0-9]{5}", job.metadata.name)
    assert job.metadata.annotations["cronjob.kubernetes.io/instantiate"] == "manual"
    [reference] = job.metadata.owner_references
    assert (reference.kind, reference.name, reference.uid, reference.controller) == (
        "CronJob", "nightly", owner.metadata.uid, True,
    )  # fmt: skip
    assert "driftwatch" in {entry.manager for entry in job.metadata.managed_fields}
    assert parse_env(job_output(kube_api, kube.namespace, job.metadata.name)) == {"LOG_LEVEL": "DEBUG"}

    asked, created = AuditEvent.objects.filter(object_name="nightly", action__startswith="job.").order_by("id")
    assert (asked.action, asked.actor) == ("job.run_requested", "olga")
    assert created.action == "job.created" and job.metadata.name in created.message

    # The snapshot files the Job's pod under its CronJob and records the schedule: the page says the next run.
    out = io.StringIO()
    call_command("snapshot", "--cluster", "local", stdout=out)
    assert out.getvalue().startswith("local: succeeded"), out.getvalue()
    row = Workload.objects.get(cluster=cluster, kind="CronJob", namespace=kube.namespace, name="nightly")
    assert row.schedule == {"schedule": SCHEDULE, "timeZone": "", "suspend": False}
    assert row.pods.filter(name__startswith=job.metadata.name).exists()
    page = client.get(reverse("workload", args=["local", kube.namespace, "CronJob", "nightly"]))
    assert "its next Job will read the current config at 00:00" in text(page)
    assert "Run now" in text(page)


def test_a_viewer_and_an_operator_of_another_namespace_get_403_and_nothing_is_created(client, kube, kube_api, cluster):
    kube.config_map("job-config", {"LOG_LEVEL": "INFO"})
    k8s.BatchV1Api(kube_api).create_namespaced_cron_job(kube.namespace, cron_job())
    for who in (user("vera", "viewer"), user("oleg", "operator", namespaces=["local/elsewhere"])):
        client.force_login(who)
        for url in (reverse("run-now-plan"), reverse("run-now-start")):
            response = client.post(url, workload_form(cluster, kube.namespace), headers=HTMX)
            assert response.status_code == 403, (who, url, response.status_code)
    assert jobs(kube_api, kube.namespace) == []
    assert not AuditEvent.objects.filter(action__startswith="job.").exists()
    assert AuditEvent.objects.filter(action="access.denied", object_name="nightly").count() == 4


def test_run_now_is_post_only_and_needs_the_csrf_token(kube, kube_api, cluster):
    k8s.BatchV1Api(kube_api).create_namespaced_cron_job(kube.namespace, cron_job())
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user("olga", "operator"))
    form = workload_form(cluster, kube.namespace)
    assert browser.get(reverse("run-now-start"), form).status_code == 405
    assert browser.post(reverse("run-now-start"), form).status_code == 403
    assert jobs(kube_api, kube.namespace) == []


def test_the_cli_runs_a_cron_job_now_and_exits_non_zero_with_the_reason_when_refused(
    kube, kube_api, kubeconfig, cluster, tmp_path
):
    kube.config_map("job-config", {"LOG_LEVEL": "INFO"})
    k8s.BatchV1Api(kube_api).create_namespaced_cron_job(kube.namespace, cron_job(suspend=True))
    out = io.StringIO()
    call_command("rollout", "cronjob/nightly", "-n", kube.namespace, "--actor", "olga", stdout=out)
    [job] = jobs(kube_api, kube.namespace)
    assert f"created: Job {job.metadata.name} created from CronJob/nightly" in out.getvalue()
    assert "reads ConfigMap job-config" in out.getvalue()

    with pytest.raises(CommandError, match=r"CronJob/absent -n .* does not exist"):
        call_command("rollout", "cj/absent", "-n", kube.namespace, "--actor", "olga", stdout=io.StringIO())
    # An account that may read the CronJob but not create Jobs: refused with the permission named, nothing made.
    config = service_account_kubeconfig(kube_api, kubeconfig, kube.namespace, "reader", tmp_path / "reader.yaml")
    grant(kube_api, kube.namespace, kube.namespace, "reader",
          [{"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get"]}])  # fmt: skip
    cluster.kubeconfig_path = str(config)
    cluster.save()
    with pytest.raises(CommandError, match=r"missing permission: create jobs\.batch in " + kube.namespace):
        call_command("rollout", "cronjob/nightly", "-n", kube.namespace, "--actor", "olga", stdout=io.StringIO())
    assert len(jobs(kube_api, kube.namespace)) == 1
    assert AuditEvent.objects.filter(action="job.run_refused", object_name="nightly").count() == 1
