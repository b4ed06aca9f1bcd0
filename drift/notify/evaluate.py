"""Judging notification rules for one cluster: each rule's episodes open, remind and close here; the notices to
send are returned (their ids), and sent by Celery tasks, so a slow webhook never delays a snapshot.

An episode is one continuous condition: a workload stale for longer than the rule's minutes, a cluster whose
snapshots fail for longer, one config change, one failed rollout. It notifies once when it opens, then every
`reminder_minutes` while it lasts, and ends when the condition does, so a new episode notifies again."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from drift.models import AuditEvent, Cluster, Notice, NotificationRule, Rollout
from drift.notify.deliver import absolute
from drift.verdicts import WorkloadSummary, cluster_moment, workload_summaries
from drift.vocabulary import Verdict

Event = NotificationRule.Event


def in_quiet_hours(rule: NotificationRule, now: datetime) -> bool:
    if rule.quiet_start is None or rule.quiet_end is None or rule.quiet_start == rule.quiet_end:
        return False
    moment = timezone.localtime(now).time()
    return within(rule.quiet_start, rule.quiet_end, moment)


def within(start: time, end: time, moment: time) -> bool:
    """Whether `moment` falls in [start, end), a span that may cross midnight (22:00-07:00)."""
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end


def evaluate_cluster(cluster: Cluster, now: datetime | None = None) -> list[int]:
    """Open, remind or close the episodes of every enabled rule that covers the cluster; the notices to send."""
    now = now or timezone.now()
    rules = [rule for rule in NotificationRule.objects.filter(enabled=True).select_related("channel")
             if rule.cluster in ("", cluster.name) and rule.channel.enabled]  # fmt: skip
    to_send: list[int] = []
    summaries: list[WorkloadSummary] | None = None
    for rule in rules:
        if rule.event == Event.STALE:
            if summaries is None:
                summaries = workload_summaries(cluster, now=now)
            to_send += _stale(rule, cluster, summaries, now)
        elif rule.event == Event.SNAPSHOTS_FAILING:
            to_send += _snapshots_failing(rule, cluster, now)
        elif rule.event == Event.CONFIG_CHANGED:
            to_send += _config_changes(rule, cluster, now)
        elif rule.event == Event.ROLLOUT_FAILED:
            to_send += _failed_rollouts(rule, cluster, now)
    to_send += _held_until_now(rules, cluster, now)
    return to_send


def _open_or_remind(
    rule: NotificationRule, key: str, now: datetime, subject: str, text: str, detail: dict, **fields: object
) -> int | None:
    """The episode's notice to send now, if any: a new episode, or a reminder when its interval has passed."""
    quiet = in_quiet_hours(rule, now)
    current = rule.notices.filter(key=key, closed_at=None).first()
    if current is None:
        try:
            with transaction.atomic():
                notice = Notice.objects.create(
                    rule=rule, key=key[:600], subject=subject[:255], text=text, detail=detail, opened_at=now,
                    status=Notice.Status.HELD if quiet else Notice.Status.SENDING,
                    last_sent_at=None if quiet else now, **fields,
                )  # fmt: skip
        except IntegrityError:  # another evaluation opened it first
            return None
        return None if quiet else notice.pk
    due = current.last_sent_at is not None and now - current.last_sent_at >= timedelta(minutes=rule.reminder_minutes)
    if quiet or not due or current.status == Notice.Status.SENDING:
        return None
    reminder = {**detail, "reminder": True}
    # Compared and set: two evaluations at once (a snapshot's and the watcher's) remind once.
    reminded = Notice.objects.filter(pk=current.pk, last_sent_at=current.last_sent_at).update(
        subject=f"Reminder: {subject}"[:255], text=text, detail=reminder, status=Notice.Status.SENDING, last_sent_at=now
    )
    return current.pk if reminded else None


def _close(rule: NotificationRule, keys: set[str], now: datetime, cluster: Cluster) -> None:
    """End the rule's open episodes of `keys` in the cluster: the next time the condition holds is a new one."""
    rule.notices.filter(closed_at=None, cluster=cluster.name, key__in=keys).update(closed_at=now)


def _stale(rule: NotificationRule, cluster: Cluster, summaries: list[WorkloadSummary], now: datetime) -> list[int]:
    to_send, still_stale = [], set()
    threshold = timedelta(minutes=rule.for_minutes)
    for summary in summaries:
        if not rule.matches(cluster.name, summary.namespace, summary.name):
            continue
        key = f"{cluster.name}/{summary.namespace}/{summary.kind}/{summary.name}"
        since = summary.stale_since
        reason = "stale: " + ", ".join(summary.stale_sources)  # names only, never a value
        behind = summary.restart_needed_pod_count  # stale, or new on disk only: a restart brings both up to date
        if not behind or since is None:
            continue
        still_stale.add(key)
        if now - since < threshold:
            continue
        minutes = int((now - since).total_seconds() // 60)
        link = absolute(reverse("workload-confirm", args=[summary.workload_id]))
        subject = f"{summary.kind} {summary.namespace}/{summary.name} runs stale config ({cluster.name})"
        on_disk = summary.pods.get(Verdict.UNRELOADED, 0)
        new_file = f", {on_disk} of them with the new file on disk but not known to be re-read," if on_disk else ""
        text = (
            f"{behind} pod(s) of {summary.kind} {summary.namespace}/{summary.name} in "
            f"cluster {cluster.name}{new_file} have run stale configuration since "
            f"{since.isoformat(timespec='seconds')} ({minutes} min). Why: {reason}. "
            f"Review and confirm the rollout: {link}"
        )
        detail = {
            "event": rule.event, "rule": rule.name, "cluster": cluster.name, "namespace": summary.namespace,
            "workload": {"kind": summary.kind, "name": summary.name},
            "stale_pods": summary.stale_pod_count, "unreloaded_pods": on_disk, "stale_since": since.isoformat(),
            "reason": reason,
            "link": link,
        }  # fmt: skip
        notice = _open_or_remind(
            rule, key, now, subject, text, detail,
            cluster=cluster.name, namespace=summary.namespace, workload_id=summary.workload_id,
        )  # fmt: skip
        if notice:
            to_send.append(notice)
    ended = set(rule.notices.filter(closed_at=None, cluster=cluster.name).values_list("key", flat=True)) - still_stale
    _close(rule, ended, now, cluster)
    return to_send


def _snapshots_failing(rule: NotificationRule, cluster: Cluster, now: datetime) -> list[int]:
    key = f"{cluster.name}/snapshots"
    moment = cluster_moment(cluster, now)
    if moment.failing_since is None or now - moment.failing_since < timedelta(minutes=rule.for_minutes):
        if moment.failing_since is None:
            _close(rule, {key}, now, cluster)
        return []
    link = absolute(reverse("overview") + f"?cluster={cluster.name}")
    since = moment.failing_since.isoformat(timespec="seconds")
    text = f"Driftwatch cannot read cluster {cluster.name} since {since}: {moment.error}. Verdicts shown are those "
    text += f"of the last good snapshot. {link}"
    detail = {"event": rule.event, "rule": rule.name, "cluster": cluster.name, "failing_since": since,
              "error": moment.error, "link": link}  # fmt: skip
    notice = _open_or_remind(rule, key, now, f"Snapshots of {cluster.name} failing", text, detail, cluster=cluster.name)
    return [notice] if notice else []


def _config_changes(rule: NotificationRule, cluster: Cluster, now: datetime) -> list[int]:
    changes = AuditEvent.objects.filter(
        action=AuditEvent.Action.CONFIG_CHANGED, cluster_name=cluster.name, at__gte=rule.created_at, pk__gt=rule.cursor
    ).order_by("pk")
    if rule.namespace:
        changes = changes.filter(namespace=rule.namespace)
    to_send = []
    last = rule.cursor
    for change in changes[:100]:
        last = change.pk
        link = absolute(
            reverse("overview") + f"?cluster={cluster.name}&namespace={change.namespace}&source={change.object_name}"
        )
        # The audit message names the keys that changed, never their values.
        text = f"{change.message} in cluster {cluster.name}. Pods that read it: {link}"
        detail = {"event": rule.event, "rule": rule.name, "cluster": cluster.name, "namespace": change.namespace,
                  "source": {"kind": change.object_kind, "name": change.object_name}, "link": link}  # fmt: skip
        subject = f"{change.object_kind} {change.namespace}/{change.object_name} changed ({cluster.name})"
        notice = _open_or_remind(
            rule, f"{cluster.name}/audit/{change.pk}", now, subject, text, detail,
            cluster=cluster.name, namespace=change.namespace,
        )  # fmt: skip
        if notice:
            to_send.append(notice)
        # One change is a whole episode: it ends with its notice.
        rule.notices.filter(key=f"{cluster.name}/audit/{change.pk}", closed_at=None).update(closed_at=now)
    NotificationRule.objects.filter(pk=rule.pk, cursor__lt=last).update(cursor=last)
    return to_send


def _failed_rollouts(rule: NotificationRule, cluster: Cluster, now: datetime) -> list[int]:
    failed = Rollout.objects.filter(
        cluster=cluster, status__in=[Rollout.Status.FAILED, Rollout.Status.STUCK], finished_at__gte=rule.created_at
    )
    if rule.namespace:
        failed = failed.filter(namespace=rule.namespace)
    if rule.workload:
        failed = failed.filter(name=rule.workload)
    told = set(rule.notices.filter(cluster=cluster.name, key__contains="/rollout/").values_list("key", flat=True))
    to_send = []
    for rollout in failed.order_by("pk")[:100]:
        key = f"{cluster.name}/rollout/{rollout.pk}"
        if key in told:
            continue
        link = absolute(reverse("rollout", args=[rollout.pk]))
        subject = f"Rollout of {rollout.kind} {rollout.namespace}/{rollout.name} {rollout.status} ({cluster.name})"
        text = f"{subject}: {rollout.message} {link}"
        detail = {
            "event": rule.event, "rule": rule.name, "cluster": cluster.name, "namespace": rollout.namespace,
            "workload": {"kind": rollout.kind, "name": rollout.name}, "status": rollout.status, "link": link,
        }  # fmt: skip
        namespace = rollout.namespace
        notice = _open_or_remind(rule, key, now, subject, text, detail, cluster=cluster.name, namespace=namespace)
        if notice:
            to_send.append(notice)
        rule.notices.filter(key=key, closed_at=None).update(closed_at=now)
    return to_send


def _held_until_now(rules: list[NotificationRule], cluster: Cluster, now: datetime) -> list[int]:
    """Notices held by quiet hours go out when they end (closed ones too: the team should still hear of them)."""
    awake = [rule.pk for rule in rules if not in_quiet_hours(rule, now)]
    held = list(
        Notice.objects.filter(rule_id__in=awake, cluster=cluster.name, status=Notice.Status.HELD).values_list(
            "pk", flat=True
        )
    )
    # Each compared and set: two evaluations at once (a snapshot's and the watcher's) send it once.
    still_held = Notice.objects.filter(status=Notice.Status.HELD)
    return [pk for pk in held if still_held.filter(pk=pk).update(status=Notice.Status.SENDING, last_sent_at=now)]
