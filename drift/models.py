"""What Driftwatch knows: clusters, the versions of their ConfigMaps and Secrets, the pods and containers
that consume them, what we observed inside those containers, and an append-only audit history.

Facts are the record; verdicts are derived from them by drift.verdicts.rules. Pages read the verdicts stored by
drift.verdicts.store (StoredVerdict, WorkloadVerdicts, ClusterVerdicts): judged when the facts change, each valid
until the moment it would change on the clock alone (``expires_at``), re-judged when read after it."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone

from drift.authorship import shown_client
from drift.bounded import bound_fields, bounded, bounded_detail
from drift.ignoring import default_ignored_config_maps, validate_patterns
from drift.vocabulary import Mode, Reload, RolloutAction, SourceKind, choices

ROLLOUT_DEADLINE_MAX_SECONDS = 7 * 24 * 3600


def between(low: int, high: int, unit: str, why: str = "") -> list:
    """Validators with one message that says the allowed range (and why, when 0 would mean something odd)."""
    message = f"Give a value from {low} to {high} {unit}." + (f" {why}" if why else "")
    return [MinValueValidator(low, message), MaxValueValidator(high, message)]


def validate_namespace_list(value: object) -> None:
    """A JSON list of distinct namespace names (RFC 1123 labels)."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError('A JSON list of namespace names, e.g. ["demo", "shop"].')
    for item in value:
        if len(item) > 63 or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", item):
            raise ValidationError(f"{item[:80]!r} is not a namespace name (RFC 1123 label).")
    if len(set(value)) != len(value):
        raise ValidationError("A namespace is listed twice.")


class Cluster(models.Model):
    """A Kubernetes cluster Driftwatch reads; credentials stay in the kubeconfig file it points to."""

    name = models.SlugField(max_length=63, unique=True)
    kubeconfig_path = models.CharField(max_length=1024, blank=True)
    context = models.CharField(max_length=253, blank=True)
    in_cluster = models.BooleanField(default=False, help_text="Use the service account of the pod Driftwatch runs in.")
    read_only = models.BooleanField(
        default=False,
        help_text="Driftwatch may not exec into pods or patch workloads here (the Helm chart's read-only mode): "
        "verdicts are inferred from start and change times, and there is no Roll out.",
    )
    namespaces = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_namespace_list],
        help_text="The only namespaces Driftwatch reads (the Helm chart's namespaced mode: a Role in each, no "
        "cluster-wide list); empty: every namespace. A JSON list of names.",
    )
    snapshot_interval_seconds = models.PositiveIntegerField(
        default=30, validators=between(5, 86_400, "seconds", "Snapshots more often than every 5 s only load the API.")
    )
    propagation_window_seconds = models.PositiveIntegerField(
        default=120,
        help_text="How long the kubelet may take to rewrite a ConfigMap volume.",
        validators=between(1, 3_600, "seconds"),
    )
    exec_concurrency = models.PositiveIntegerField(
        default=4, validators=between(1, 64, "probes at once", "0 would probe nothing.")
    )
    exec_timeout_seconds = models.PositiveIntegerField(default=10, validators=between(1, 300, "seconds"))
    api_requests_per_second = models.PositiveIntegerField(
        default=20, validators=between(1, 1_000, "requests per second", "0 would mean no limit at all.")
    )
    reconcile_interval_seconds = models.PositiveIntegerField(
        default=600,
        validators=between(30, 86_400, "seconds"),
        help_text="While the watcher follows this cluster's pods (its heartbeat is recent), a full snapshot (LIST "
        "of everything) runs only this often, as a reconcile; without a watcher, every snapshot interval.",
    )

    class FileProbes(models.TextChoices):
        AUTO = "auto", "auto (not on simulated kwok nodes, which have no container files)"
        ALWAYS = "always"
        NEVER = "never"

    file_probes = models.CharField(
        max_length=8,
        choices=FileProbes.choices,
        default=FileProbes.AUTO,
        help_text="Read mounted ConfigMap/Secret files through exec. Env is always read.",
    )
    ignored_config_maps = models.JSONField(
        default=default_ignored_config_maps,
        blank=True,
        validators=[validate_patterns],
        help_text=(
            "ConfigMaps that change on their own (leader election, status): not recorded. Name patterns with "
            "*, ? and [...], or NAMESPACE/NAME patterns; a JSON list."
        ),
    )
    rollout_annotation = models.CharField(max_length=253, default="driftwatch.io/config-hash")
    rollout_batch_size = models.PositiveIntegerField(default=3, validators=between(1, 100, "workloads per batch"))
    rollout_deadline_seconds = models.PositiveIntegerField(
        default=1800,
        validators=between(1, ROLLOUT_DEADLINE_MAX_SECONDS, "seconds", "At most one week."),
        help_text="A rollout still in progress this long after its patch is marked stuck and stops blocking its "
        "batch (StatefulSets and DaemonSets have no progress deadline of their own). At most one week.",
    )
    reload_default = models.CharField(
        max_length=8,
        choices=[
            (Reload.UNKNOWN.value, "not known (a new file is not taken as new config)"),
            (Reload.HOT.value, "hot"),
        ],
        default=Reload.UNKNOWN.value,
        help_text="What Driftwatch assumes of an app whose config file the kubelet rewrote, where nothing else says "
        "whether it re-reads it (no file watch seen, no driftwatch.io/reload annotation, no setting on the workload, "
        "no reloader sidecar, no restart tool). 'hot' calls such a pod fresh; 'not known' says the file is new on disk "
        "only, and that a restart is the way to be sure.",
    )
    metrics_per_workload = models.BooleanField(
        default=True,
        help_text="Export /metrics per workload (namespace, workload kind and name as labels). Off: per namespace "
        "only, to bound the number of time series of a large cluster.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    server_version = models.CharField(max_length=64, blank=True)
    # host:port of its API server (from the credentials, kept current by each snapshot): two registrations of one
    # server are told apart, and one is warned of (`cluster add`).
    api_server = models.CharField(max_length=300, blank=True)
    last_contact_at = models.DateTimeField(null=True, blank=True)
    # When `manage.py watch` last heard from this cluster's API server (an event, a bookmark, a (re)connect).
    watch_heartbeat_at = models.DateTimeField(null=True, blank=True)
    # SHA-256 of the bearer token the API server's audit webhook sends; the token itself is never stored.
    audit_token_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(rollout_deadline_seconds__gte=1, rollout_deadline_seconds__lte=7 * 24 * 3600),
                name="cluster_rollout_deadline_range",
            ),
            # A token two clusters share would let either send events in the other's name.
            models.UniqueConstraint(
                fields=["audit_token_hash"], condition=~models.Q(audit_token_hash=""), name="cluster_audit_token_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # A form's emptied JSON field comes back as None: for these lists that means "none" (every namespace,
        # nothing ignored), not a NULL the database refuses with a 500.
        if self.namespaces is None:
            self.namespaces = []
        if self.ignored_config_maps is None:
            self.ignored_config_maps = []

    def credentials_label(self) -> str:
        modes = ", read-only" if self.read_only else ""
        modes += f", namespaces {','.join(self.namespaces)}" if self.namespaces else ""
        if self.in_cluster:
            return f"in-cluster service account{modes}"
        context = f" (context {self.context})" if self.context else ""
        return f"{self.kubeconfig_path}{context}{modes}"


class SnapshotRun(models.Model):
    """One collection cycle against one cluster: the only row an idle cycle writes."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        PARTIAL = "partial", "partial (some namespaces unreadable)"
        FAILED = "failed"

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="runs")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    error = models.TextField(blank=True)
    api_calls = models.PositiveIntegerField(default=0)
    exec_probes = models.PositiveIntegerField(default=0)
    rows_written = models.PositiveIntegerField(default=0)
    forbidden_namespaces = models.JSONField(default=list, blank=True)
    # Verdict counts at the end of the run, kept for the "stale pods over time" chart.
    verdict_counts = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["cluster", "-started_at"])]

    def __str__(self) -> str:
        return f"{self.cluster} {self.started_at:%Y-%m-%d %H:%M:%S} {self.status}"


class Source(models.Model):
    """One lineage of a ConfigMap or Secret: a delete and recreate (new uid) starts a new row."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="sources")
    kind = models.CharField(max_length=16, choices=choices(SourceKind))
    namespace = models.CharField(max_length=253)
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=64)
    immutable = models.BooleanField(default=False)
    first_seen = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["namespace", "name", "first_seen"]
        constraints = [models.UniqueConstraint(fields=["cluster", "uid"], name="source_unique_uid")]
        indexes = [models.Index(fields=["cluster", "kind", "namespace", "name"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


class SourceVersionQuerySet(models.QuerySet):
    def latest_per_source(self) -> SourceVersionQuerySet:
        """The current version of each source lineage: the last one seen (ties broken by id)."""
        return self.order_by("source_id", "-first_seen", "-id").distinct("source_id")


class SourceVersion(models.Model):
    """One content of a source lineage, from the moment it was seen until the next change; never updated.
    Content that comes back (INFO -> DEBUG -> INFO) is a new row with the same hash: the timeline matters."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="versions")
    content_hash = models.CharField(max_length=64)
    resource_version = models.CharField(max_length=32)
    first_seen = models.DateTimeField(default=timezone.now)
    # When the API server says the data last changed (managedFields); null when it does not say.
    modified_at = models.DateTimeField(null=True, blank=True)
    key_hashes = models.JSONField(default=dict)
    # ConfigMap values for diffs and file comparisons; always empty for Secrets (hashes only).
    data = models.JSONField(default=dict, blank=True)
    binary_keys = models.JSONField(default=list, blank=True)
    size_bytes = models.PositiveIntegerField(default=0)
    # Which hash key made content_hash and key_hashes (drift.hashing): a key rotation re-keys in place.
    hash_key_id = models.CharField(max_length=16, blank=True)
    # Who wrote it: the managedFields client (always, when the API says), and the person from the API server's
    # audit events when one joins (drift.authorship), with how sure that join is.
    client = models.CharField(max_length=128, blank=True)
    changed_by = models.CharField(max_length=253, blank=True)
    author_confidence = models.CharField(max_length=16, blank=True)
    recorded_by = models.CharField(max_length=16, blank=True, help_text="watch or snapshot")

    objects = SourceVersionQuerySet.as_manager()

    class Meta:
        ordering = ["source", "first_seen", "id"]
        indexes = [models.Index(fields=["source", "-first_seen"])]

    def __str__(self) -> str:
        return f"{self.source} rv={self.resource_version}"

    @property
    def client_shown(self) -> str:
        """The client as pages show it: a field manager Driftwatch does not know is quoted as unrecognised."""
        return shown_client(self.client) if self.client else ""

    def appeared_at(self, previous_seen: datetime | None = None) -> datetime:
        """When this content appeared. managedFields tells when the data last changed, more precisely
        than our polling; trust it only when it falls between the previous sighting and this one
        (another manager's later edit, or a skewed clock, can mislead). managedFields keeps whole seconds: a
        write in the same second as the previous sighting is still this content's, and since that sighting
        saw the old content, the content appeared after it (the previous sighting is the closer bound)."""
        if self.modified_at is None or self.modified_at > self.first_seen:
            return self.first_seen
        if previous_seen is None:
            return self.modified_at
        if self.modified_at + MANAGED_FIELDS_RESOLUTION <= previous_seen:
            return self.first_seen  # an older write's time: this content came later
        return max(self.modified_at, previous_seen)


# managedFields' `time` has whole seconds.
MANAGED_FIELDS_RESOLUTION = timedelta(seconds=1)


class Workload(models.Model):
    """The controller that owns pods (Deployment, StatefulSet, DaemonSet, CronJob, Job), or a bare Pod."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="workloads")
    kind = models.CharField(max_length=32)
    namespace = models.CharField(max_length=253)
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=64, blank=True)
    first_seen = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # A CronJob's spec.schedule, spec.timeZone and spec.suspend as the last snapshot listed them (its next run,
    # drift.schedules); empty for every other kind, and for a CronJob Driftwatch may not list.
    schedule = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["namespace", "kind", "name"]
        constraints = [
            models.UniqueConstraint(fields=["cluster", "kind", "namespace", "name"], name="workload_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.kind}/{self.name} -n {self.namespace}"


class ReloadSetting(models.Model):
    """An operator's word on whether a workload's app re-reads a rewritten config file: for every container
    (``container`` blank) or one. It counts as declared, like the driftwatch.io/reload annotation, over which it
    wins; who set it and when is shown with the verdicts it decides."""

    workload = models.ForeignKey(Workload, on_delete=models.CASCADE, related_name="reload_settings")
    container = models.CharField(max_length=253, blank=True)
    reload = models.CharField(max_length=8, choices=[(Reload.HOT.value, "hot"), (Reload.RESTART.value, "restart")])
    set_by = models.CharField(max_length=150)
    set_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["workload", "container"]
        constraints = [
            models.UniqueConstraint(fields=["workload", "container"], name="reload_setting_unique_container")
        ]

    def __str__(self) -> str:
        return f"{self.workload}: {self.container or 'every container'} {self.reload}"


class Pod(models.Model):
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="pods")
    workload = models.ForeignKey(Workload, on_delete=models.CASCADE, related_name="pods")
    namespace = models.CharField(max_length=253)
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=64)
    node_name = models.CharField(max_length=253, blank=True)
    # status.startTime: when the kubelet took the pod, and so set up its volumes.
    started_at = models.DateTimeField(null=True, blank=True)
    # The pod template's kubectl.kubernetes.io/restartedAt, as `kubectl rollout restart` writes it: a rollout that
    # did not come from Driftwatch, shown in the workload's rollout history.
    restarted_at = models.DateTimeField(null=True, blank=True)
    # The Reloader restart its template came from (drift.podspec.reloaded_by): "ConfigMap env-config @<template>".
    reloaded_by = models.CharField(max_length=256, blank=True)
    first_seen = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # metadata.deletionTimestamp: the pod is being deleted (a rollout's old pods, for their grace period). It is
    # left out of the verdicts and their counts at once, and pages show it as terminating.
    terminating_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["namespace", "name"]
        constraints = [models.UniqueConstraint(fields=["cluster", "uid"], name="pod_unique_uid")]
        # The timeline's reads of a namespace's pod starts, ends and `kubectl rollout restart`s (drift.timeline).
        indexes = [
            models.Index(fields=["cluster", "namespace", "started_at"], name="pod_started_in_namespace"),
            models.Index(
                fields=["cluster", "namespace", "deleted_at"], name="pod_ended_in_namespace",
                condition=models.Q(deleted_at__isnull=False),
            ),
            models.Index(
                fields=["cluster", "namespace", "restarted_at"], name="pod_restarted_in_namespace",
                condition=models.Q(restarted_at__isnull=False),
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class ContainerInstance(models.Model):
    """One run of one container: a restart (new container id) is a new row, since env is fixed per run."""

    pod = models.ForeignKey(Pod, on_delete=models.CASCADE, related_name="containers")
    name = models.CharField(max_length=253)
    init = models.BooleanField(default=False)
    container_id = models.CharField(max_length=255, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    running = models.BooleanField(default=False)
    first_seen = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    # What the pod says of whether this container's processes re-read a rewritten file (drift.podspec.reload_hints):
    # the driftwatch.io/reload annotation, a config-reloader sidecar, a restart tool (Reloader, Wave, Helm checksum).
    reload_hints = models.JSONField(default=dict, blank=True)
    # How this run ended, as the pod status says it: `state.terminated` while it is the container's last run,
    # `lastState.terminated` once the kubelet has started the next one (OOMKilled, Error, Completed; the exit
    # code; finishedAt). Empty while it runs, and for a run that ended unseen (its pod deleted).
    termination_reason = models.CharField(max_length=64, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The container's restartCount and its `state.waiting.reason` (CrashLoopBackOff, ...) as last seen while
    # this run was the container's latest.
    restart_count = models.PositiveIntegerField(default=0)
    waiting_reason = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["pod", "init", "name", "-first_seen"]
        constraints = [models.UniqueConstraint(fields=["pod", "name", "container_id"], name="container_unique_run")]
        # The timeline's terminations: per pod of the namespace, the runs that ended in the window.
        indexes = [
            models.Index(
                fields=["pod", "finished_at"], name="container_finished", condition=models.Q(finished_at__isnull=False)
            )
        ]

    def __str__(self) -> str:
        return f"{self.pod}/{self.name}"


class Consumption(models.Model):
    """One way one container consumes one ConfigMap or Secret."""

    container = models.ForeignKey(ContainerInstance, on_delete=models.CASCADE, related_name="consumptions")
    source_kind = models.CharField(max_length=16, choices=choices(SourceKind))
    source_name = models.CharField(max_length=253)
    mode = models.CharField(max_length=16, choices=choices(Mode))
    keys = models.JSONField(default=list, blank=True)
    # env var name -> key, for env.
    env_names = models.JSONField(default=dict, blank=True)
    # envFrom: variables are prefix + key, except those the container's own `env` overrides.
    env_prefix = models.CharField(max_length=253, blank=True)
    shadowed_env = models.JSONField(default=list, blank=True)
    # file path under the mount -> key, for volumes.
    paths = models.JSONField(default=dict, blank=True)
    mount_path = models.CharField(max_length=1024, blank=True)
    sub_path = models.CharField(max_length=1024, blank=True)
    optional = models.BooleanField(default=False)

    class Meta:
        ordering = ["container", "source_kind", "source_name", "mode", "mount_path"]

    def __str__(self) -> str:
        return f"{self.container} {self.mode} {self.source_kind}/{self.source_name}"


class ObservationQuerySet(models.QuerySet):
    def latest_per_consumption(self) -> ObservationQuerySet:
        """The last read of each consumption (ties broken by id): what its verdict rests on."""
        return self.order_by("consumption_id", "-observed_at", "-id").distinct("consumption_id")


class Observation(models.Model):
    """What a probe read inside a container for one consumption (hashes only), or why it could not read."""

    consumption = models.ForeignKey(Consumption, on_delete=models.CASCADE, related_name="observations")
    observed_at = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField()
    reason = models.CharField(max_length=255, blank=True)
    key_hashes = models.JSONField(default=dict, blank=True)
    volume_written_at = models.DateTimeField(null=True, blank=True)
    # What a file probe saw of the container's processes: a process watches the volume with inotify (True), none
    # of them does (False), or not every process could be read (None); and whether one holds an earlier file.
    watching = models.BooleanField(null=True, blank=True)
    holds_earlier_file = models.BooleanField(default=False)
    hash_key_id = models.CharField(max_length=16, blank=True)

    objects = ObservationQuerySet.as_manager()

    class Meta:
        ordering = ["consumption", "-observed_at"]
        get_latest_by = "observed_at"
        # Each consumption's last read, in index order: for latest_per_consumption and for probe planning, which
        # asks it of thousands of volumes right after their sources change.
        indexes = [models.Index(fields=["consumption", "-observed_at", "-id"], name="observation_last_read")]

    def __str__(self) -> str:
        return f"{self.consumption} {'ok' if self.ok else self.reason}"


class ClusterVerdicts(models.Model):
    """When a cluster's verdicts were last judged, on what basis, and until when they all hold.

    ``basis`` names what the verdicts rest on besides the facts (the moment judged at while snapshots fail,
    forbidden namespaces, the propagation window): a cycle whose basis differs re-judges the whole cluster.
    ``expires_at`` is when the cluster-wide basis changes on the clock alone (a measured refresh delay leaves
    its lookback); ``stamp`` grows whenever a stored verdict or summary of the cluster changes, so a page can
    tell a poller "nothing new"."""

    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE, primary_key=True, related_name="judged")
    judged_at = models.DateTimeField()
    basis = models.CharField(max_length=1024, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    stamp = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.cluster} judged at {self.judged_at}"


class StoredVerdict(models.Model):
    """The verdict drift.verdicts.rules gave one live consumption at ``judged_at``, true until ``expires_at`` (None:
    until the facts change). The reason's "... ago" is as of ``judged_at``."""

    consumption = models.OneToOneField(
        Consumption, on_delete=models.CASCADE, primary_key=True, related_name="stored_verdict"
    )
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="+")
    workload = models.ForeignKey(Workload, on_delete=models.CASCADE, related_name="+")
    pod = models.ForeignKey(Pod, on_delete=models.CASCADE, related_name="+")
    verdict = models.CharField(max_length=16)
    evidence = models.CharField(max_length=16)
    reason = models.TextField()
    running_version = models.CharField(max_length=32, blank=True)  # "": not known
    current_version = models.CharField(max_length=32, blank=True)  # "": the source does not exist
    stale_since = models.DateTimeField(null=True, blank=True)
    split = models.BooleanField(default=False)
    observed_at = models.DateTimeField(null=True, blank=True)
    judged_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["cluster", "workload"]), models.Index(fields=["cluster", "verdict"])]

    def __str__(self) -> str:
        return f"{self.consumption_id} {self.verdict}"


class VerdictChange(models.Model):
    """One change of one consumption's stored verdict (drift.verdicts.store), appended when it happens and never
    updated: what the timeline lists and its stale-pods chart replays. ``old_verdict`` "": the consumption was
    not judged before (a new pod); ``new_verdict`` "": no longer judged (its pod ended)."""

    # cluster and workload are the first columns of the indexes below: no index of their own.
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="+", db_index=False)
    namespace = models.CharField(max_length=253)
    workload = models.ForeignKey(Workload, on_delete=models.CASCADE, related_name="+", db_index=False)
    pod = models.ForeignKey(Pod, on_delete=models.CASCADE, related_name="+")
    consumption = models.ForeignKey(Consumption, on_delete=models.CASCADE, related_name="+")
    old_verdict = models.CharField(max_length=16, blank=True)
    new_verdict = models.CharField(max_length=16, blank=True)
    at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["cluster", "namespace", "at"], name="verdictchange_namespace_at"),
            models.Index(fields=["workload", "at"], name="verdictchange_workload_at"),
        ]

    def __str__(self) -> str:
        return f"{self.namespace} {self.old_verdict or '-'} -> {self.new_verdict or '-'} at {self.at}"


class WorkloadVerdicts(models.Model):
    """One workload's stored summary: pods per (worst) verdict, pods per mode and (worst) verdict through that
    mode, the stale sources and since when. ``attention`` is True when any pod is not fresh or its pods are split: the
    overview lists those first and counts the rest."""

    workload = models.OneToOneField(Workload, on_delete=models.CASCADE, primary_key=True, related_name="verdicts")
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="+")
    namespace = models.CharField(max_length=253)
    kind = models.CharField(max_length=32)
    name = models.CharField(max_length=253)
    pods = models.JSONField(default=dict)
    # ``pods`` again, one integer column per verdict (written with it, by drift.verdicts.store only): the overview
    # and /metrics add them up over every workload of every cluster, and summing integers is several times cheaper
    # than summing fields taken out of JSON.
    stale_pods = models.PositiveIntegerField(default=0)
    missing_pods = models.PositiveIntegerField(default=0)
    unreloaded_pods = models.PositiveIntegerField(default=0)
    propagating_pods = models.PositiveIntegerField(default=0)
    unknown_pods = models.PositiveIntegerField(default=0)
    fresh_pods = models.PositiveIntegerField(default=0)
    modes = models.JSONField(default=dict)
    split = models.BooleanField(default=False)
    attention = models.BooleanField(default=False)
    stale_sources = models.JSONField(default=list)
    stale_since = models.DateTimeField(null=True, blank=True)
    judged_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["cluster", "namespace", "kind", "name"]
        indexes = [
            models.Index(fields=["cluster", "attention", "namespace", "kind", "name"]),
            models.Index(fields=["expires_at"]),
            # The latest summary per cluster (drift.verdicts.as_of) without reading each of its workloads.
            models.Index(fields=["cluster", "judged_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind}/{self.name} -n {self.namespace}"

    @staticmethod
    def pods_field(verdict: str) -> str:
        """The integer column of pods whose worst verdict is ``verdict``."""
        return f"{verdict}_pods"


class AuditEventQuerySet(models.QuerySet):
    def bulk_create(self, objs: list[AuditEvent], *args: object, **kwargs: object) -> list[AuditEvent]:  # type: ignore[override]
        for event in objs:
            event.bound()
        return super().bulk_create(objs, *args, **kwargs)  # type: ignore[arg-type,return-value]


class AuditEvent(models.Model):
    """Append-only history. A database trigger refuses UPDATE and DELETE on this table.

    The time of an entry is the database's (`db_default=Now()`: callers do not pass it, and a skewed web or
    worker clock cannot misplace it). Every text field is cut to its column, marked as cut, before it is
    written, so an over-long value from a request can never turn into a database error."""

    class Action(models.TextChoices):
        # value: what is stored, filtered on and exported; label: what the audit page shows.
        CONFIG_CHANGED = "config.changed", "configuration changed"
        CONFIG_CREATED = "config.created", "configuration created"
        CONFIG_DELETED = "config.deleted", "configuration deleted"
        # The API server's audit events named who made a recorded change (actor: the Kubernetes user).
        CONFIG_AUTHOR = "config.changed_by", "author identified"
        CONFIG_ATTEMPT = "config.attempt_refused", "change attempt refused"
        AUDIT_BATCH_REFUSED = "audit_webhook.refused", "audit events refused"
        ROLLOUT_REQUESTED = "rollout.requested", "rollout requested"
        ROLLOUT_COMPLETED = "rollout.completed", "rollout completed"
        ROLLOUT_FAILED = "rollout.failed", "rollout failed"
        ROLLOUT_REFUSED = "rollout.refused", "rollout refused"
        ROLLOUT_NOOP = "rollout.noop", "rollout not needed"
        ROLLOUT_DRY_RUN = "rollout.dry_run", "rollout dry run"
        ROLLOUT_CANCELLED = "rollout.cancelled", "rollout cancelled"
        CLUSTER_ADDED = "cluster.added", "cluster added"
        CLUSTER_REMOVED = "cluster.removed", "cluster removed"
        SNAPSHOT_FAILED = "snapshot.failed", "snapshot failed"
        LOGIN = "user.login", "logged in"
        LOGIN_FAILED = "user.login_failed", "login failed"
        LOGIN_LOCKED_OUT = "user.locked_out", "locked out"
        USER_CREATED = "user.created", "user created"
        USER_CHANGED = "user.changed", "user changed"
        USER_DELETED = "user.deleted", "user deleted"
        ROLE_CHANGED = "user.role_changed", "role changed"
        CLUSTER_CHANGED = "cluster.changed", "cluster settings changed"
        ACCESS_DENIED = "access.denied", "access denied"
        CSRF_FAILED = "access.csrf_failed", "request refused (CSRF)"
        NOTIFICATION_SENT = "notification.sent", "notice sent"
        NOTIFICATION_FAILED = "notification.failed", "notice failed"
        NOTIFICATION_TEST = "notification.test", "test notice sent"
        CHANNEL_CHANGED = "notification.channel", "notifications changed"
        RELOAD_SET = "workload.reload_set", "reload setting changed"
        # A ConfigMap put back to an earlier version (drift.restore): asked (before the API call), done, refused.
        RESTORE_REQUESTED = "config.restore_requested", "restore requested"
        RESTORE_DRY_RUN = "config.restore_dry_run", "restore dry run"
        RESTORED = "config.restored", "version restored"
        RESTORE_REFUSED = "config.restore_refused", "restore refused"
        # Run now: a Job created from a CronJob's jobTemplate (drift.rollout.run_now): asked (before the API call),
        # created, refused.
        JOB_RUN_REQUESTED = "job.run_requested", "run now requested"
        JOB_CREATED = "job.created", "job created"
        JOB_RUN_REFUSED = "job.run_refused", "run now refused"

    at = models.DateTimeField(db_default=Now(), db_index=True)
    actor = models.CharField(max_length=150, help_text="User name, or 'driftwatch' for what the collector saw.")
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    cluster_name = models.CharField(max_length=63, blank=True)
    namespace = models.CharField(max_length=253, blank=True)
    object_kind = models.CharField(max_length=32, blank=True)
    object_name = models.CharField(max_length=253, blank=True)
    message = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        # The audit page joins a change to the entry naming its author by object (dashboard.pages.audit).
        indexes = [models.Index(fields=["object_name", "action"], name="audit_object_action")]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor}"

    def save(self, *args: object, **kwargs: object) -> None:
        self.bound()
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def bound(self) -> None:
        bound_fields(self, ["actor", "action", "cluster_name", "namespace", "object_kind", "object_name"])
        self.message = bounded(self.message, MESSAGE_MAX)
        self.detail = bounded_detail(self.detail)


class KubeAuditEvent(models.Model):
    """One write to a ConfigMap or Secret as the cluster's API server audited it (`Metadata` level: who,
    from where, when, with what result; never a body). Stored once per digest of the whole event (the auditID
    is the client's to choose), joined to the version it produced when one matches (drift.authorship.join).
    403/409/422 are attempts: they produced nothing. Pruned after DRIFTWATCH_AUDIT_EVENT_RETENTION_DAYS unless
    joined to a version still kept (drift.audit_webhook.prune_kube_audit_events)."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="kube_audit_events")
    audit_id = models.CharField(max_length=64)
    digest = models.CharField(max_length=64)
    verb = models.CharField(max_length=16)
    kind = models.CharField(max_length=16, choices=choices(SourceKind))
    namespace = models.CharField(max_length=253)
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=64, blank=True)
    replaced_resource_version = models.CharField(max_length=32, blank=True)
    username = models.CharField(max_length=253)
    groups = models.JSONField(default=list, blank=True)
    impersonated_user = models.CharField(max_length=253, blank=True)
    impersonated_groups = models.JSONField(default=list, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    # The last addresses of the event's sourceIPs (the connection's own, and the proxies nearest the API server);
    # the ones before them came from the client's X-Forwarded-For and are only counted, as claimed.
    source_ips = models.JSONField(default=list, blank=True)
    claimed_source_ips_count = models.PositiveIntegerField(default=0)
    status_code = models.PositiveSmallIntegerField()
    request_received_at = models.DateTimeField()
    completed_at = models.DateTimeField()
    field_manager = models.CharField(max_length=128, blank=True)
    dry_run = models.BooleanField(default=False)
    arrived_at = models.DateTimeField(default=timezone.now)
    version = models.ForeignKey(
        SourceVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    join_confidence = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["completed_at", "id"]
        constraints = [models.UniqueConstraint(fields=["cluster", "digest"], name="kube_audit_unique_digest")]
        indexes = [
            models.Index(fields=["cluster", "kind", "namespace", "name", "completed_at"]),
            models.Index(fields=["cluster", "audit_id"]),
            models.Index(fields=["arrived_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.verb} {self.kind} {self.namespace}/{self.name} by {self.author} ({self.status_code})"

    @property
    def author(self) -> str:
        return self.impersonated_user or self.username

    @property
    def attempt(self) -> bool:
        return self.status_code in (403, 409, 422)


class AuditWebhookRejection(models.Model):
    """Batches the audit webhook refused (unauthenticated, malformed, oversized, replayed), counted per cluster
    and reason: nothing of a refused batch is stored, and one counter row per (cluster, reason) keeps an
    unauthenticated flood from growing the table. Names that are no registered cluster count under ""."""

    cluster_name = models.CharField(max_length=63, blank=True)
    reason = models.CharField(max_length=32)
    status_code = models.PositiveSmallIntegerField()
    count = models.PositiveBigIntegerField(default=0)
    last_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["cluster_name", "reason"]
        constraints = [models.UniqueConstraint(fields=["cluster_name", "reason"], name="audit_rejection_unique_reason")]

    def __str__(self) -> str:
        return f"{self.cluster_name} {self.reason} ({self.status_code}): {self.count}"


class RefusedAttempt(models.Model):
    """Refusals anyone can cause at will, counted instead of listed: anonymous ones (CSRF failures, single
    sign-on callback errors, failed logins under unknown names) and a cluster identity's refused writes. One row
    per action, key and hour, however many came; only the first few of each hour also get an audit entry of
    their own (drift.audit.record_refusal). Pruned after DRIFTWATCH_AUDIT_EVENT_RETENTION_DAYS."""

    action = models.CharField(max_length=32)
    # What the counted refusals share: "" for anonymous ones ("sso" for single sign-on callback errors),
    # CLUSTER/USER for a cluster identity's refused writes.
    key = models.CharField(max_length=253, blank=True)
    hour = models.DateTimeField()
    count = models.PositiveBigIntegerField(default=0)
    last_at = models.DateTimeField(default=timezone.now)
    last_message = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-hour", "action", "key"]
        constraints = [models.UniqueConstraint(fields=["action", "key", "hour"], name="refused_attempt_unique_hour")]
        indexes = [models.Index(fields=["hour"])]

    def __str__(self) -> str:
        return f"{self.action} {self.key or 'anonymous'} {self.hour:%Y-%m-%d %H}h: {self.count}"

    @property
    def action_label(self) -> str:
        """The action as the audit log names it (its label), or as stored where it is not one of them."""
        try:
            return str(AuditEvent.Action(self.action).label)
        except ValueError:
            return self.action


# An audit message says what happened in a sentence; anything past this is a client's doing.
MESSAGE_MAX = 4_000


class Role(models.TextChoices):
    VIEWER = "viewer"
    OPERATOR = "operator"


SCOPE_FORM = "CLUSTER/NAMESPACE, CLUSTER/* or */* (e.g. local/demo)"


def parse_scope(scope: str) -> tuple[str, str]:
    """(cluster, namespace) of an operator scope; either may be "*". ValueError names the expected form."""
    from drift.kube import InvalidName, validate_namespace

    cluster, slash, namespace = scope.partition("/")
    if not slash or not cluster or not namespace:
        raise ValueError(f"operator scope {scope[:80]!r} must name the cluster: {SCOPE_FORM}")
    if cluster != "*" and not (len(cluster) <= 63 and re.fullmatch(r"[-a-zA-Z0-9_]+", cluster)):
        raise ValueError(f"operator scope {scope[:80]!r}: {cluster[:63]!r} is not a cluster name")
    if namespace != "*":
        try:
            validate_namespace(namespace)
        except InvalidName as error:
            raise ValueError(f"operator scope {scope[:80]!r}: {error}") from None
    return cluster, namespace


class Membership(models.Model):
    """A user's role; an operator may roll out only where one of its scopes says: `CLUSTER/NAMESPACE`,
    `CLUSTER/*` or `*/*`. An empty list allows nothing."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    namespaces = models.JSONField(
        default=list,
        blank=True,
        help_text=f"Operator scopes, each {SCOPE_FORM}. Empty: nowhere.",
    )

    def __str__(self) -> str:
        return f"{self.user} ({self.role})"

    def clean(self) -> None:
        if not isinstance(self.namespaces, list) or not all(isinstance(item, str) for item in self.namespaces):
            raise ValidationError({"namespaces": f"a list of scopes, each {SCOPE_FORM}"})
        for scope in self.namespaces:
            try:
                parse_scope(scope)
            except ValueError as error:
                raise ValidationError({"namespaces": str(error)}) from None

    def may_roll_out(self, cluster: str, namespace: str) -> bool:
        if self.role != Role.OPERATOR:
            return False
        for scope in self.namespaces:
            try:
                allowed_cluster, allowed_namespace = parse_scope(scope)
            except ValueError:
                continue  # a malformed scope allows nothing
            if allowed_cluster in ("*", cluster) and allowed_namespace in ("*", namespace):
                return True
        return False


class SsoIdentity(models.Model):
    """The identity provider's account behind a user created by single sign-on: the ID token's issuer and
    subject, which the provider keeps stable, unlike a name or an email address (dashboard.sso)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identity")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    # When single sign-on itself deactivated the account (no group maps to a role any more): only then may a
    # later login bring it back. An account an administrator deactivated stays so, whatever the provider says.
    access_withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="sso_identity_unique_subject")]

    def __str__(self) -> str:
        return f"{self.user} ({self.issuer})"


class RolloutQuerySet(models.QuerySet):
    def going(self) -> RolloutQuerySet:
        """Rollouts that may be changing their workload right now: `patching` (the patch or eviction is being
        sent, or its answer is unknown) or `in_progress` (sent; the controller is replacing pods). One of them
        blocks another rollout of the same workload, and the follower reads each of them again. Queued ones are
        not going: nothing has been sent for them yet."""
        return self.filter(status__in=Rollout.GOING)

    def of(self, cluster: Cluster | int, kind: str, namespace: str, name: str) -> RolloutQuerySet:
        """The rollouts of one workload (by kind and name, as Rollout rows store it)."""
        return self.filter(cluster=cluster, kind=kind, namespace=namespace, name=name)


class Rollout(models.Model):
    """A rollout Driftwatch was asked for: an annotation patch of a workload's pod template (action `template`),
    or the eviction of its stale pods only, one group at a time (action `evict`, drift.rollout.evict)."""

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress", "in progress"
        COMPLETE = "complete"
        FAILED = "failed"
        PAUSED = "paused"
        NOOP = "noop", "no change needed"
        REFUSED = "refused"
        DRY_RUN = "dry_run", "dry run"
        # Waiting for its turn in a bulk rollout (drift.rollout.batch starts it).
        QUEUED = "queued"
        # Recorded before the patch is sent; until its answer is recorded (or, after a crash or a timeout, until
        # the follower has read the workload again) nobody knows whether the patch was applied.
        PATCHING = "patching"
        # In progress for longer than the cluster's rollout deadline; no longer followed, no longer blocking.
        STUCK = "stuck"
        CANCELLED = "cancelled"

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="rollouts")
    kind = models.CharField(max_length=32)
    namespace = models.CharField(max_length=253)
    name = models.CharField(max_length=253)
    requested_by = models.CharField(max_length=150)
    requested_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    annotation_key = models.CharField(max_length=253)
    config_hash = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    message = models.TextField(blank=True)
    generation = models.BigIntegerField(null=True, blank=True)
    desired = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    ready = models.PositiveIntegerField(default=0)
    available = models.PositiveIntegerField(default=0)
    batch = models.UUIDField(null=True, blank=True, help_text="Rollouts requested together in one bulk action.")
    reason = models.CharField(max_length=500, blank=True, help_text="Why the operator asked for it (optional).")
    patched_at = models.DateTimeField(null=True, blank=True, help_text="When the patch was sent.")
    action = models.CharField(max_length=16, choices=choices(RolloutAction), default=RolloutAction.TEMPLATE.value)
    # The eviction action's own record: the stale pods chosen when it was confirmed ({name, uid}, in order), the
    # evictions sent so far ({name, uid, at}; each written here before it is sent), how many pods go at once, and
    # how many times a PodDisruptionBudget answered 429 (wait and retry).
    at_once = models.PositiveSmallIntegerField(default=1)
    pods_to_restart = models.JSONField(default=list, blank=True)
    evicted = models.JSONField(default=list, blank=True)
    disruption_waits = models.PositiveIntegerField(default=0)

    objects = RolloutQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["cluster", "namespace", "kind", "name", "-requested_at"])]

    def __str__(self) -> str:
        return f"{self.kind}/{self.name} -n {self.namespace} {self.status}"

    # Not ended yet: going (see RolloutQuerySet.going), or queued for its turn in a batch.
    GOING = (Status.IN_PROGRESS, Status.PATCHING)
    ACTIVE = (*GOING, Status.QUEUED)

    @property
    def finished(self) -> bool:
        return self.status not in self.ACTIVE

    @property
    def going(self) -> bool:
        """The row form of RolloutQuerySet.going."""
        return self.status in self.GOING


def validate_webhook_url(value: str) -> None:
    """http or https with a host: nothing else (file:, gopher:, javascript:...) is ever requested; a host written
    as an inward address is refused at once (a name is judged by what it resolves to when a notice is sent)."""
    from urllib.parse import urlsplit

    from drift.notify.outbound import literal_refusal

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("Give an http:// or https:// URL with a host.")
    if refusal := literal_refusal(parts.hostname):
        raise ValidationError(refusal[0].upper() + refusal[1:] + ".")


class Channel(models.Model):
    """Where notices go: a Slack-compatible incoming webhook, a JSON webhook signed with HMAC-SHA256, or e-mail
    through Django's mail settings. A failing channel keeps its last error (shown, audited); it never blocks a
    snapshot, since notices are sent by their own Celery tasks."""

    class Kind(models.TextChoices):
        SLACK = "slack", "Slack-compatible webhook"
        JSON = "json", "JSON webhook (HMAC-SHA256 signed)"
        EMAIL = "email", "e-mail"

    name = models.SlugField(max_length=63, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.SLACK)
    url = models.CharField(max_length=2048, blank=True, validators=[validate_webhook_url], help_text="Webhooks only.")
    email_to = models.CharField(max_length=1024, blank=True, help_text="E-mail only: comma-separated addresses.")
    # The key a receiver verifies X-Driftwatch-Signature with (JSON webhooks); not a Kubernetes Secret value.
    signing_key = models.CharField(max_length=128, blank=True)
    enabled = models.BooleanField(default=True)
    last_error = models.CharField(max_length=255, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.kind == self.Kind.EMAIL and not self.email_to:
            raise ValidationError({"email_to": "An e-mail channel needs at least one address."})
        if self.kind != self.Kind.EMAIL and not self.url:
            raise ValidationError({"url": "A webhook channel needs its URL."})

    @property
    def where(self) -> str:
        """What a page or the audit log may show of the destination: a webhook's host (its path and query can be
        a bearer secret, as Slack's are), or an e-mail channel's addresses."""
        from urllib.parse import urlsplit

        if self.kind == self.Kind.EMAIL:
            return self.email_to
        return urlsplit(self.url).hostname or ""

    @property
    def failing(self) -> bool:
        return self.last_failure_at is not None and (
            self.last_success_at is None or self.last_failure_at > self.last_success_at
        )


class NotificationRule(models.Model):
    """What to tell a channel: an event, for which clusters, namespaces and workloads (blank: any)."""

    class Event(models.TextChoices):
        STALE = "stale", "pods stale for longer than the minutes given"
        CONFIG_CHANGED = "config_changed", "config changed"
        ROLLOUT_FAILED = "rollout_failed", "rollout failed"
        SNAPSHOTS_FAILING = "snapshots_failing", "snapshots failing for longer than the minutes given"

    name = models.SlugField(max_length=63, unique=True)
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="rules")
    event = models.CharField(max_length=24, choices=Event.choices, default=Event.STALE)
    for_minutes = models.PositiveIntegerField(
        default=10,
        validators=between(0, 10_080, "minutes"),
        help_text="Stale pods and failing snapshots: how many minutes it lasts before a notice.",
    )
    cluster = models.CharField(max_length=63, blank=True, help_text="Blank: every cluster.")
    namespace = models.CharField(max_length=253, blank=True, help_text="Blank: every namespace.")
    workload = models.CharField(max_length=253, blank=True, help_text="Blank: every workload (a name).")
    reminder_minutes = models.PositiveIntegerField(
        default=240,
        validators=between(5, 10_080, "minutes"),
        help_text="While an episode lasts, remind this often (the first notice is sent once per episode).",
    )
    quiet_start = models.TimeField(
        null=True, blank=True, help_text="Hold notices from this time (Driftwatch's time zone)..."
    )
    quiet_end = models.TimeField(null=True, blank=True, help_text="...until this time; they go out then.")
    enabled = models.BooleanField(default=True)
    # Events already looked at (config changes: the last audit id; failed rollouts: the last rollout id).
    cursor = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def summary(self) -> str:
        """The event in words, with its minutes where it has some: 'pods stale for more than 10 min'."""
        if self.event == self.Event.STALE:
            return f"pods stale for more than {self.for_minutes} min"
        if self.event == self.Event.SNAPSHOTS_FAILING:
            return f"snapshots failing for more than {self.for_minutes} min"
        return str(self.get_event_display())

    def matches(self, cluster: str, namespace: str = "", workload: str = "") -> bool:
        return (
            self.cluster in ("", cluster)
            and (not self.namespace or self.namespace == namespace)
            and (not self.workload or self.workload == workload)
        )


class Notice(models.Model):
    """One episode of one rule (a workload stale, a cluster unreadable, one change, one failed rollout): one notice
    when it opens, reminders while it lasts, closed when it ends, so a new episode notifies again."""

    class Status(models.TextChoices):
        HELD = "held", "held (quiet hours)"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"

    rule = models.ForeignKey(NotificationRule, on_delete=models.CASCADE, related_name="notices")
    key = models.CharField(max_length=600, help_text="What the episode is about, e.g. CLUSTER/NAMESPACE/KIND/NAME.")
    cluster = models.CharField(max_length=63, blank=True)
    namespace = models.CharField(max_length=253, blank=True)
    workload = models.ForeignKey(Workload, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    subject = models.CharField(max_length=255)
    text = models.TextField()
    # The link to the rollout confirmation and the fields a JSON webhook receives (names and times only).
    detail = models.JSONField(default=dict, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.SENDING)
    sends = models.PositiveIntegerField(default=0, help_text="Notices sent for this episode (first plus reminders).")
    last_sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "key"], condition=models.Q(closed_at=None), name="one_open_episode")
        ]

    def __str__(self) -> str:
        return f"{self.rule} {self.key}"


class RolloutWindow(models.Model):
    """When rollouts may start in a cluster (or one of its namespaces). A cluster or namespace without windows may
    roll out at any time; with some, only inside one of them: Roll out says when the next opens, and bulk rollouts
    stay queued until then."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="rollout_windows")
    namespace = models.CharField(max_length=253, blank=True, help_text="Blank: every namespace of the cluster.")
    weekdays = models.CharField(
        max_length=7, default="0123456", help_text="Days it opens: 0 is Monday ... 6 is Sunday, e.g. 01234."
    )
    start = models.TimeField(help_text="Opens at (Driftwatch's time zone).")
    end = models.TimeField(help_text="Closes at; before `start` means the next day.")

    class Meta:
        ordering = ["cluster", "namespace", "start"]

    def __str__(self) -> str:
        return f"{self.cluster}/{self.namespace or '*'} {self.weekdays} {self.start:%H:%M}-{self.end:%H:%M}"

    def clean(self) -> None:
        if not self.weekdays or any(day not in "0123456" for day in self.weekdays):
            raise ValidationError({"weekdays": "Give days as digits 0 (Monday) to 6 (Sunday), e.g. 01234."})


class WatcherProcess(models.Model):
    """A running `manage.py watch` (drift.snapshot.leases): its row, renewed with its leases, says it is alive; the
    number of live ones sets each one's fair share of the clusters."""

    process_id = models.UUIDField(primary_key=True)
    host = models.CharField(max_length=253)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    renewed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.host} pid {self.pid}"


class ClusterLease(models.Model):
    """Which watcher process may watch (and record) the cluster, until `expires_at` unless it renews it. A free
    lease has no holder. `resume_from` keeps, per watched resource (by its watch's label: "configmaps", "secrets in
    NS"), the resourceVersion up to which the holder had recorded every event, so that the next holder resumes the
    watch there and misses no version in between: the one resume point, for a takeover and for a watcher killed
    and started again alike (only the holder can move it: every write is a compare-and-set on `holder_id`)."""

    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE, primary_key=True, related_name="lease")
    holder_id = models.UUIDField(null=True, blank=True)
    holder_host = models.CharField(max_length=253, blank=True)
    holder_pid = models.PositiveIntegerField(null=True, blank=True)
    acquired_at = models.DateTimeField(null=True, blank=True)
    renewed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    resume_from = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"{self.cluster_id} held by {self.holder_host or 'nobody'} pid {self.holder_pid}"

    def held_at(self, now: datetime) -> bool:
        return self.holder_id is not None and self.expires_at is not None and self.expires_at > now
