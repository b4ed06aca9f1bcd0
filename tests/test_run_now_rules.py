"""The Job Run now creates from a CronJob, as `kubectl create job --from=cronjob/NAME` makes it: a table."""

import pytest

from drift.rollout.run_now import JOB_NAME_MAX, job_from_cron_job, job_name

CRON_JOB = {
    "metadata": {"name": "nightly", "namespace": "shop", "uid": "u-1", "labels": {"team": "a"}},
    "spec": {
        "schedule": "0 0 * * *",
        "jobTemplate": {
            "metadata": {"labels": {"app": "report"}, "annotations": {"note": "kept"}},
            "spec": {"backoffLimit": 0, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
        },
    },
}


def test_the_job_is_the_templates_spec_marked_manual_and_owned_by_the_cron_job():
    job = job_from_cron_job(CRON_JOB, "bcd23")
    assert job["metadata"] == {
        "name": "nightly-manual-bcd23",
        "namespace": "shop",
        "labels": {"app": "report"},  # the template's, not the CronJob's own
        "annotations": {"note": "kept", "cronjob.kubernetes.io/instantiate": "manual"},
        # No blockOwnerDeletion: it would need the right to update the CronJob's finalizers.
        "ownerReferences": [
            {"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly", "uid": "u-1", "controller": True}
        ],
    }
    assert job["spec"] == CRON_JOB["spec"]["jobTemplate"]["spec"]
    assert job["kind"] == "Job" and job["apiVersion"] == "batch/v1"


@pytest.mark.parametrize(
    "cron_job, expected",
    [
        ("nightly", "nightly-manual-bcd23"),
        ("a" * 52, "a" * 50 + "-manual-bcd23"),  # a CronJob's longest name: cut to fit the job-name label
        ("a" * 49 + "-x", "a" * 49 + "-manual-bcd23"),  # never a name ending in "-" before the suffix
    ],
)
def test_the_job_name_fits_the_job_name_label(cron_job, expected):
    name = job_name(cron_job, "bcd23")
    assert name == expected
    assert len(name) <= JOB_NAME_MAX
