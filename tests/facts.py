"""Facts as a snapshot records them, written straight to Postgres, for view tests that need no cluster.

Times are relative to one `now` so verdicts come out as the rules decide them: a container started after a
version appeared and before the next one runs the older one (stale), after the last one the current one."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from drift.models import (
    Cluster,
    Consumption,
    ContainerInstance,
    Membership,
    Pod,
    SnapshotRun,
    Source,
    SourceVersion,
    Workload,
)

PASSWORD = "correct horse battery staple"


def user(username: str, role: str = "", namespaces: list[str] | None = None, password: str | None = None):
    """A user with a role; without a password (tests log in with force_login, and hashing one takes a second).
    An operator given no scopes may roll out everywhere, said explicitly as `*/*`."""
    account = get_user_model().objects.create_user(username, password=password)
    if role:
        if namespaces is None:
            namespaces = ["*/*"] if role == "operator" else []
        Membership.objects.create(user=account, role=role, namespaces=namespaces)
    return account


def value_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class Facts:
    cluster: Cluster
    now: datetime = field(default_factory=timezone.now)

    @classmethod
    def for_cluster(cls, name: str = "local") -> Facts:
        return cls(Cluster.objects.create(name=name, kubeconfig_path="/nonexistent/kubeconfig"))

    def at(self, minutes_ago: float) -> datetime:
        return self.now - timedelta(minutes=minutes_ago)

    def run(
        self, status: str = "succeeded", minutes_ago: float = 0.5, error: str = "", counts: dict | None = None
    ) -> SnapshotRun:
        started = self.at(minutes_ago)
        return SnapshotRun.objects.create(
            cluster=self.cluster,
            started_at=started,
            finished_at=started + timedelta(seconds=2),
            status=status,
            error=error,
            verdict_counts=counts or {},
        )

    def source(
        self,
        name: str,
        *versions: tuple[float, dict[str, str]],
        kind: str = "ConfigMap",
        namespace: str = "demo",
        deleted_minutes_ago: float | None = None,
    ) -> Source:
        """A lineage with versions given as (minutes ago, data); a Secret's values are kept as hashes only."""
        first = versions[0][0]
        source = Source.objects.create(
            cluster=self.cluster,
            kind=kind,
            namespace=namespace,
            name=name,
            uid=str(uuid.uuid4()),
            first_seen=self.at(first),
            deleted_at=self.at(deleted_minutes_ago) if deleted_minutes_ago is not None else None,
        )
        for minutes_ago, data in versions:
            hashes = {key: value_hash(value) for key, value in data.items()}
            SourceVersion.objects.create(
                source=source,
                content_hash=value_hash(repr(sorted(hashes.items()))),
                # resourceVersions count up across every object, as the API server's do: 100, 101, ...
                resource_version=str(100 + SourceVersion.objects.count()),
                first_seen=self.at(minutes_ago),
                key_hashes=hashes,
                data=data if kind == "ConfigMap" else {},
            )
        return source

    def pod(
        self,
        workload: str,
        name: str,
        consumes: list[dict],
        started_minutes_ago: float = 30,
        namespace: str = "demo",
        kind: str = "Deployment",
        container: str = "app",
    ) -> Pod:
        """A running pod whose container consumes sources; each item of `consumes` holds Consumption fields
        (source_kind defaults to ConfigMap, mode to envFrom)."""
        owner, _ = Workload.objects.get_or_create(
            cluster=self.cluster, kind=kind, namespace=namespace, name=workload, defaults={"first_seen": self.at(120)}
        )
        started = self.at(started_minutes_ago)
        pod = Pod.objects.create(
            cluster=self.cluster,
            workload=owner,
            namespace=namespace,
            name=name,
            uid=str(uuid.uuid4()),
            node_name="node-000000",
            started_at=started,
            first_seen=started,
        )
        instance = ContainerInstance.objects.create(
            pod=pod, name=container, container_id=f"{pod.uid}/{container}", started_at=started, running=True
        )
        for item in consumes:
            Consumption.objects.create(container=instance, **{"source_kind": "ConfigMap", "mode": "envFrom", **item})
        return pod
