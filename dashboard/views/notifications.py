"""Notification channels and rules: everyone logged in sees them (a failing channel stands out, with its last
error); operators add, enable/disable and delete them (POST, audited); viewers get 403."""

import secrets

from django.core.exceptions import PermissionDenied
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from dashboard.access import may_roll_out, role_of
from drift import audit
from drift.models import AuditEvent, Channel, Notice, NotificationRule, Role


class ChannelForm(ModelForm):
    class Meta:
        model = Channel
        fields = ["name", "kind", "url", "email_to"]


class RuleForm(ModelForm):
    class Meta:
        model = NotificationRule
        fields = ["name", "channel", "event", "for_minutes", "cluster", "namespace", "workload", "reminder_minutes",
                  "quiet_start", "quiet_end"]  # fmt: skip


def _require_operator(request: HttpRequest) -> None:
    if role_of(request.user) != Role.OPERATOR and not request.user.is_superuser:
        audit.record(
            request.user.get_username(), AuditEvent.Action.ACCESS_DENIED,
            f"{request.user.get_username()} may not manage notifications: {request.method} {request.path}",
        )  # fmt: skip
        raise PermissionDenied("Only operators manage notifications.")


def _require_scope(request: HttpRequest, rule: NotificationRule) -> None:
    """A rule acts on what its selectors cover (blank: every cluster or namespace): an operator may add or delete
    it only within their scopes, as for a rollout (`local/demo` cannot touch a rule for every namespace)."""
    if request.user.is_superuser or may_roll_out(request.user, rule.cluster, rule.namespace):
        return
    where = f"{rule.cluster or '*'}/{rule.namespace or '*'}"
    audit.record(
        request.user.get_username(), AuditEvent.Action.ACCESS_DENIED,
        f"{request.user.get_username()} may not manage notification rule {rule.name!r} on {where}",
    )  # fmt: skip
    raise PermissionDenied(f"Your scopes do not cover {where}.")


def _audit(request: HttpRequest, what: str, name: str) -> None:
    audit.record(
        request.user.get_username(), AuditEvent.Action.CHANNEL_CHANGED, f"{request.user.get_username()} {what} {name}",
        object_kind=what.split()[0].title(), object_name=name,
    )  # fmt: skip


def _page(request: HttpRequest, channel_form: ChannelForm, rule_form: RuleForm, status: int = 200) -> HttpResponse:
    ctx = {
        "channels": Channel.objects.all(),
        "rules": NotificationRule.objects.select_related("channel"),
        "notices": Notice.objects.select_related("rule")[:50],
        "channel_form": channel_form,
        "rule_form": rule_form,
        "may_manage": role_of(request.user) == Role.OPERATOR or request.user.is_superuser,
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


@require_POST
def delete_channel(request: HttpRequest, pk: int) -> HttpResponse:
    _require_operator(request)
    channel = get_object_or_404(Channel, pk=pk)
    _audit(request, "deleted channel", channel.name)
    channel.delete()
    return redirect("notifications")


@require_POST
def delete_rule(request: HttpRequest, pk: int) -> HttpResponse:
    _require_operator(request)
    rule = get_object_or_404(NotificationRule, pk=pk)
    _require_scope(request, rule)
    _audit(request, "deleted rule", rule.name)
    rule.delete()
    return redirect("notifications")
