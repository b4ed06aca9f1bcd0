"""`manage.py notify channel add|list`, `notify rule add|list`, `notify test CHANNEL`."""

import re
import secrets
from argparse import ArgumentParser
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from drift import audit
from drift.models import AuditEvent, Channel, NotificationRule
from drift.notify.send import send_test

DURATION = re.compile(r"^(\d+)([mhd]?)$")
MINUTES = {"": 1, "m": 1, "h": 60, "d": 1440}


def minutes(value: str) -> int:
    """10m, 2h, 1d, or a bare number of minutes."""
    match = DURATION.match(value.strip())
    if not match:
        raise CommandError(f"cannot read the duration {value!r}: give e.g. 10m, 2h or 1d")
    return int(match.group(1)) * MINUTES[match.group(2)]


class Command(BaseCommand):
    help = "Manage notification channels and rules, and send a test notice."

    def add_arguments(self, parser: ArgumentParser) -> None:
        things = parser.add_subparsers(dest="thing", required=True)
        channel = things.add_parser("channel").add_subparsers(dest="action", required=True)
        add = channel.add_parser("add", help="add a channel (a JSON webhook gets a signing key, printed once)")
        add.add_argument("name")
        add.add_argument("--webhook", default="", help="the webhook URL (http or https)")
        add.add_argument("--kind", choices=[kind.value for kind in Channel.Kind], default=Channel.Kind.SLACK)
        add.add_argument("--email", default="", help="e-mail channels: comma-separated addresses")
        channel.add_parser("list")
        rule = things.add_parser("rule").add_subparsers(dest="action", required=True)
        add_rule = rule.add_parser("add", help="add a rule")
        add_rule.add_argument("name")
        add_rule.add_argument("--channel", required=True)
        add_rule.add_argument("--when", choices=["stale", "config_changed", "rollout_failed", "snapshots_failing"])
        add_rule.add_argument("--for", dest="duration", default="10m", help="e.g. 10m, 2h")
        add_rule.add_argument("--remind", default="4h", help="reminder interval while an episode lasts")
        add_rule.add_argument("--cluster", default="")
        add_rule.add_argument("--namespace", default="")
        add_rule.add_argument("--workload", default="")
        add_rule.add_argument("--quiet", default="", help="hold notices in these hours, e.g. 22:00-07:00")
        rule.add_parser("list")
        test = things.add_parser("test", help="send a test notice through a channel now")
        test.add_argument("name")
        test.add_argument("--actor", default="driftwatch", help="who to record in the audit history")

    def handle(self, *args: object, **options: Any) -> None:
        handler = getattr(self, f"_{options['thing']}_{options.get('action') or 'send'}")
        handler(options)

    def _channel_add(self, options: dict[str, Any]) -> None:
        kind = options["kind"]
        channel = Channel(name=options["name"], kind=kind, url=options["webhook"], email_to=options["email"])
        if kind == Channel.Kind.JSON:
            channel.signing_key = secrets.token_urlsafe(32)
        _save(channel)
        added = f"notification channel {channel.name} ({kind}) added"
        audit.record("driftwatch", AuditEvent.Action.CHANNEL_CHANGED, added, object_kind="Channel",
                     object_name=channel.name)  # fmt: skip
        self.stdout.write(f"added channel {channel.name} ({channel.get_kind_display()})")
        if channel.signing_key:
            self.stdout.write(f"signing key (verify X-Driftwatch-Signature with it): {channel.signing_key}")

    def _channel_list(self, options: dict[str, Any]) -> None:
        for channel in Channel.objects.all():
            state = f"FAILING: {channel.last_error}" if channel.failing else "ok"
            self.stdout.write(f"{channel.name}\t{channel.kind}\t{channel.url or channel.email_to}\t{state}")

    def _rule_add(self, options: dict[str, Any]) -> None:
        channel = Channel.objects.filter(name=options["channel"]).first()
        if channel is None:
            raise CommandError(f"no channel named {options['channel']!r} (manage.py notify channel list)")
        rule = NotificationRule(
            name=options["name"], channel=channel, event=options["when"] or NotificationRule.Event.STALE,
            for_minutes=minutes(options["duration"]), reminder_minutes=minutes(options["remind"]),
            cluster=options["cluster"], namespace=options["namespace"], workload=options["workload"],
        )  # fmt: skip
        if options["quiet"]:
            start, _, end = options["quiet"].partition("-")
            try:
                rule.quiet_start, rule.quiet_end = (datetime.strptime(t, "%H:%M").time() for t in (start, end))
            except ValueError as error:
                raise CommandError("--quiet takes HH:MM-HH:MM, e.g. 22:00-07:00") from error
        _save(rule)
        audit.record("driftwatch", AuditEvent.Action.CHANNEL_CHANGED, f"notification rule {rule.name} added",
                     object_kind="Rule", object_name=rule.name, detail={"channel": channel.name})  # fmt: skip
        self.stdout.write(f"added rule {rule.name}: {rule.summary} -> {channel}")

    def _rule_list(self, options: dict[str, Any]) -> None:
        for rule in NotificationRule.objects.select_related("channel"):
            scope = "/".join(part or "*" for part in (rule.cluster, rule.namespace, rule.workload))
            self.stdout.write(f"{rule.name}\t{rule.event}\t{rule.for_minutes} min\t{scope}\t-> {rule.channel}")

    def _test_send(self, options: dict[str, Any]) -> None:
        channel = Channel.objects.filter(name=options["name"]).first()
        if channel is None:
            raise CommandError(f"no channel named {options['name']!r}")
        # The same test notice as the page's "Send a test" (audited first, then through the outbound checks).
        reason = send_test(channel, str(options["actor"]), settings.DRIFTWATCH_BASE_URL)
        if reason:
            raise CommandError(f"channel {channel.name}: {reason}")
        self.stdout.write(f"sent a test notice to {channel.name}")


def _save(obj: Channel | NotificationRule) -> None:
    try:
        obj.full_clean()
    except ValidationError as error:
        messages = "; ".join(f"{field}: {' '.join(texts)}" for field, texts in error.message_dict.items())
        raise CommandError(messages) from error
    obj.save()
