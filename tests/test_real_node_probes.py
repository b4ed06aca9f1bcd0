"""Probes on real files, on the real node, through `manage.py snapshot` and `driftreport`: odd key names,
a file the container's user cannot read, a container without a shell, and a probe that fails for a passing
reason and is retried. One odd pod never stops the others from being observed."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import call_command
from kubernetes.client.rest import ApiException

from drift.models import Observation
from tests.kube_helpers import deployment
from tests.test_real_node import on_real_node, running_pod, toolbox
from tests.test_real_node_seed import cluster, snapshot  # noqa: F401 (a fixture, used by name)

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]

PAUSE = "driftwatch.local/pause:1"
ODD = {"-n": "dash n", "--help": "dash dash help", "a.b.c": "dotted", "unicode": "ünïcødé ✓\n", "spaced": "x"}
ITEMS = [  # keys are limited to [-._a-zA-Z0-9]; other names reach files through items[].path
    {"key": "-n", "path": "-n"},
    {"key": "--help", "path": "--help"},
    {"key": "a.b.c", "path": "a.b.c"},
    {"key": "unicode", "path": "ünïcødé.conf"},
    {"key": "spaced", "path": "a file with spaces.conf"},
]


def rows(namespace: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(workload, source, mode) -> the driftreport row."""
    out = io.StringIO()
    call_command("driftreport", "--json", "--cluster", "local", "--namespace", namespace, stdout=out)
    return {
        (row["workload"]["name"], row["source"]["name"], row["mode"]): row
        for row in json.loads(out.getvalue())
        if row["source"]["name"] != "kube-root-ca.crt"
    }


@pytest.fixture
def odd_pods(kube):
    """Three pods on the real node, each odd in its own way, all reading env-config through envFrom too."""
    kube.config_map("env-config", {"log_level": "INFO"})
    kube.config_map("odd", ODD)
    kube.config_map("locked", {"token": "only root may read this"})
    env_from = [{"configMapRef": {"name": "env-config"}}]

    odd_keys = toolbox(envFrom=env_from, volumeMounts=[{"name": "odd", "mountPath": "/etc/odd"}])
    volumes = [{"name": "odd", "configMap": {"name": "odd", "items": ITEMS}}]
    kube.create_deployment(on_real_node(deployment("odd-keys", [odd_keys], volumes=volumes)))

    # Files 0400 owned by root, the container running as uid 1000: the one volume cannot be read, the other can.
    locked = toolbox(
        envFrom=env_from,
        volumeMounts=[{"name": "locked", "mountPath": "/etc/locked"}, {"name": "open", "mountPath": "/etc/open"}],
    )
    volumes = [
        {"name": "locked", "configMap": {"name": "locked", "defaultMode": 0o400}},
        {"name": "open", "configMap": {"name": "env-config"}},
    ]
    manifest = on_real_node(deployment("locked", [locked], volumes=volumes))
    manifest["spec"]["template"]["spec"]["securityContext"] = {"runAsUser": 1000, "runAsNonRoot": True}
    kube.create_deployment(manifest)

    # The sandbox image: one static binary, no shell, no cat.
    no_shell = {
        "name": "app", "image": PAUSE, "imagePullPolicy": "Never", "command": ["/pause"], "envFrom": env_from,
        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/config"}],
    }  # fmt: skip
    volumes = [{"name": "cfg", "configMap": {"name": "env-config"}}]
    kube.create_deployment(on_real_node(deployment("no-shell", [no_shell], volumes=volumes)))
    for name in ("odd-keys", "locked", "no-shell"):
        running_pod(kube, name)
    return kube


def test_keys_with_spaces_are_refused_by_the_api_server(kube):
    for key in ("with space", "ünïcødé"):
        with pytest.raises(ApiException) as refused:
            kube.config_map("refused", {key: "x"})
        assert refused.value.status == 422


def test_odd_files_unreadable_files_and_a_shell_less_container_leave_the_rest_observed(cluster, odd_pods):  # noqa: F811
    namespace = odd_pods.namespace
    assert snapshot().startswith("local: succeeded")
    found = rows(namespace)
    verdicts = {key: (row["verdict"], row["evidence"]) for key, row in found.items()}
    assert verdicts == {
        ("odd-keys", "env-config", "envFrom"): ("fresh", "observed"),
        ("odd-keys", "odd", "volume"): ("fresh", "observed"),
        ("locked", "env-config", "envFrom"): ("fresh", "observed"),
        ("locked", "env-config", "volume"): ("fresh", "observed"),
        ("locked", "locked", "volume"): ("fresh", "inferred"),
        ("no-shell", "env-config", "envFrom"): ("fresh", "inferred"),
        ("no-shell", "env-config", "volume"): ("fresh", "inferred"),
    }
    assert found[("locked", "locked", "volume")]["reason"].startswith("not from the probe (file(s) unreadable: token")
    for mode in ("envFrom", "volume"):
        reason = found[("no-shell", "env-config", mode)]["reason"]
        assert reason.startswith("not from the probe (no shell in the container"), reason
    # Every odd name was read as a file and matched the recorded content, key by key.
    [odd] = Observation.objects.filter(consumption__source_name="odd", ok=True)
    assert set(odd.key_hashes) == set(ODD) and all(odd.key_hashes.values())

    # Permanent failures are not probed again on the next cycle; nothing else needs a probe either.
    before = Observation.objects.count()
    assert snapshot().startswith("local: succeeded")
    assert Observation.objects.count() == before
