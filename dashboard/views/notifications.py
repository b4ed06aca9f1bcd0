"""Notification channels and rules: everyone logged in sees them (a failing channel stands out; a webhook shows its
host only, since its path can be a bearer secret, and only operators read the last error, which would map what
the host answers); operators add and delete them within their scopes (POST, audited); viewers get 403."""

import secrets
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dashboard.access import may_roll_out, role_of
from drift import audit
from drift.models import AuditEvent, Channel, Notice, NotificationRule, Role
from drift.notify.send import send_test


class ChannelForm(ModelForm):
    class Meta:
        model = Channel
        fields = ["name", "kind", "url", "email_to"]


class RuleForm(ModelForm):
    class Meta:
        model = NotificationRule
        fields = ["name", "channel", "event", "for_minutes", "cluster", "namespace", "workload", "reminder_minutes",
                  "quiet_start", "quiet_end"]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The zone the times are read in, by name (the model's help cannot know the installation's setting).
        self.fields["quiet_start"].help_text = f"Hold notices from this time ({settings.TIME_ZONE}, HH:MM)…"
        self.fields["quiet_end"].help_text = f"…until this time ({settings.TIME_ZONE}); they go out then."


def _may_manage(request: HttpRequest) -> bool:
    return role_of(request.user) == Role.OPERATOR or request.user.is_superuser


def _require_operator(request: HttpRequest) -> None:
    if not _may_manage(request):
        username = request.user.get_username()
        audit.record(
            username[:150], AuditEvent.Action.ACCESS_DENIED,
            f"{username} may not manage notifications: {request.method} {request.path[:253]}",
        )  # fmt: skip
        raise PermissionDenied("Only operators manage notifications.")


def _in_scope(request: HttpRequest, rule: NotificationRule) -> bool:
    return request.user.is_superuser or may_roll_out(request.user, rule.cluster, rule.namespace)


def _refuse_scope(request: HttpRequest, rule: NotificationRule, what: str = "") -> None:
    where = f"{rule.cluster or '*'}/{rule.namespace or '*'}"
    username = request.user.get_username()
    audit.record(
        username[:150], AuditEvent.Action.ACCESS_DENIED,
        f"{username} may not manage notification rule {rule.name!r} on {where}{what}",
    )  # fmt: skip
    raise PermissionDenied(f"Your scopes do not cover {where}.")


def _require_scope(request: HttpRequest, rule: NotificationRule) -> None:
    """A rule acts on what its selectors cover (blank: every cluster or namespace): an operator may add or delete
    it only within their scopes, as for a rollout (`local/demo` cannot touch a rule for every namespace)."""
    if not _in_scope(request, rule):
        _refuse_scope(request, rule)


def _audit(request: HttpRequest, what: str, name: str, more: str = "", detail: dict[str, Any] | None = None) -> None:
    username = request.user.get_username()
    audit.record(
        username[:150], AuditEvent.Action.CHANNEL_CHANGED, f"{username} {what} {name}{more}",
        object_kind=what.split()[1].title(), object_name=name[:253], detail=detail,
    )  # fmt: skip


def _page(request: HttpRequest, channel_form: ChannelForm, rule_form: RuleForm, status: int = 200) -> HttpResponse:
    ctx = {
        "channels": Channel.objects.all(),
        "rules": NotificationRule.objects.select_related("channel"),
        "notices": Notice.objects.select_related("rule")[:50],
        "channel_form": channel_form,
        "rule_form": rule_form,
        "may_manage": _may_manage(request),
    }
    return render(request, "dashboard/notifications.html", ctx, status=status)


@require_GET
def notifications(request: HttpRequest) -> HttpResponse:
    return _page(request, ChannelForm(), RuleForm())


@require_POST
def add_channel(request: HttpRequest) -> HttpResponse:
    _require_operator(request)
    form = ChannelForm(request.POST)
    if not form.is_valid():
        return _page(request, form, RuleForm(), status=400)
    channel = form.save(commit=False)
    if channel.kind == Channel.Kind.JSON:
        channel.signing_key = secrets.token_urlsafe(32)
    channel.save()
    _audit(request, "added channel", channel.name)
    return redirect("notifications")


@require_POST
def add_rule(request: HttpRequest) -> HttpResponse:
    _require_operator(request)
    form = RuleForm(request.POST)
    if not form.is_valid():
        return _page(request, ChannelForm(), form, status=400)
    rule = form.save(commit=False)
    _require_scope(request, rule)
    rule.save()
    _audit(request, "added rule", rule.name)
    return redirect("notifications")


def _confirm(request: HttpRequest, what: str, name: str, consequences: list[str]) -> HttpResponse:
    """The question before a delete, answered by a POST with `confirm` (no script needed, none allowed by the CSP).
    Only operators are asked; anyone else is refused without an audit entry (a GET changes nothing)."""
    if not _may_manage(request):
        raise PermissionDenied("Only operators manage notifications.")
    ctx = {"what": what, "name": name, "consequences": consequences, "action": request.path}
    return render(request, "dashboard/notification_delete.html", ctx)


@require_POST
def test_channel(request: HttpRequest, pk: int) -> HttpResponse:
    """A test notice to the channel the URL names, read from the database (never a URL the client sent)."""
    _require_operator(request)
    channel = get_object_or_404(Channel, pk=pk)
    link = settings.DRIFTWATCH_BASE_URL.rstrip("/") + reverse("notifications")
    reason = send_test(channel, request.user.get_username()[:150], link)
    if reason:
        messages.error(request, f"The test notice to {channel.name} failed: {reason}")
    else:
        messages.success(request, f"A test notice went to {channel.name} ({channel.where}).")
    return redirect("notifications")


@require_http_methods(["GET", "POST"])
def delete_channel(request: HttpRequest, pk: int) -> HttpResponse:
    """Deleting a channel deletes every rule on it: allowed only when the operator's scopes cover each of them.
    The channel row stays locked until the delete, so no rule can be added to it in between. A GET, or a POST
    without `confirm`, asks first."""
    if request.method == "POST":
        _require_operator(request)
    if not request.POST.get("confirm"):
        channel = get_object_or_404(Channel, pk=pk)
        carried = channel.rules.order_by("name").values_list("name", flat=True)
        return _confirm(request, "channel", channel.name, [f"its rule {name} is deleted with it" for name in carried])
    with transaction.atomic():
        channel = get_object_or_404(Channel.objects.select_for_update(), pk=pk)
        rules = list(channel.rules.order_by("name"))
        beyond = [rule for rule in rules if not _in_scope(request, rule)]
        if not beyond:
            names = [rule.name for rule in rules]
            removed = f" and its rules {', '.join(names)}" if names else ""
            _audit(request, "deleted channel", channel.name, removed, detail={"rules": names})
            channel.delete()
    if beyond:  # audited outside the transaction above, which the refusal would roll back
        _refuse_scope(request, beyond[0], f": channel {channel.name} carries it")
    return redirect("notifications")


@require_http_methods(["GET", "POST"])
def delete_rule(request: HttpRequest, pk: int) -> HttpResponse:
    if request.method == "POST":
        _require_operator(request)
    if not request.POST.get("confirm"):
        return _confirm(request, "rule", get_object_or_404(NotificationRule, pk=pk).name, [])
    rule = get_object_or_404(NotificationRule, pk=pk)
    _require_scope(request, rule)
    _audit(request, "deleted rule", rule.name)
    rule.delete()
    return redirect("notifications")
