"""Django admin. Every add, change and delete of a user, a membership (role), a cluster, a rollout window, a
notification channel, rule or notice made here is written to the audit history too, with the admin user as
actor (drift.audit)."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from drift import audit
from drift.clusters import ClusterRegistrationError, audit_token_hash, checked_audit_token_hash, generate_audit_token
from drift.models import AuditEvent, Channel, Cluster, Membership, Notice, NotificationRule, RolloutWindow, SnapshotRun


class AuditedAdmin(admin.ModelAdmin):
    """Writes the admin's own log entry and an audit entry for every add, change and delete."""

    def log_addition(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        audit.record_admin_change(request.user.get_username(), obj, "added", message)
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        audit.record_admin_change(request.user.get_username(), obj, "changed", message)
        return super().log_change(request, obj, message)

    def log_deletions(self, request: HttpRequest, queryset: QuerySet) -> Any:
        for obj in queryset:
            audit.record_admin_change(request.user.get_username(), obj, "deleted", "")
        return super().log_deletions(request, queryset)


class ClusterForm(forms.ModelForm):
    """The cluster's fields, with its audit webhook token set here (checked like `cluster set-audit-token`:
    strong, and no other cluster's) or generated; the stored hash is never shown or edited."""

    new_audit_token = forms.CharField(
        required=False, strip=True, widget=forms.PasswordInput(render_value=False),
        help_text="Set a new audit webhook token (at least 32 characters); empty: keep the current one.",
    )  # fmt: skip
    generate_audit_token = forms.BooleanField(
        required=False, help_text="Generate a new token; it is shown once, after saving."
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        token = cleaned.get("new_audit_token") or ""
        if token and cleaned.get("generate_audit_token"):
            raise forms.ValidationError("Set a token or generate one, not both.")
        if token:
            try:
                cleaned["audit_token_hash"] = checked_audit_token_hash(token, self.instance.name or "")
            except ClusterRegistrationError as error:
                self.add_error("new_audit_token", str(error))
        return cleaned


@admin.register(Cluster)
class ClusterAdmin(AuditedAdmin):
    form = ClusterForm
    exclude = ["audit_token_hash"]
    list_display = ["name", "kubeconfig_path", "context", "in_cluster", "read_only", "snapshot_interval_seconds"]
    readonly_fields = ["audit_token"]

    @admin.display(description="audit webhook token")
    def audit_token(self, obj: Cluster) -> str:
        return "set (only its SHA-256 is stored)" if obj.audit_token_hash else "none: audit events are refused"

    def save_model(self, request: HttpRequest, obj: Cluster, form: Any, change: bool) -> None:
        if form.cleaned_data.get("generate_audit_token"):
            token = generate_audit_token()
            obj.audit_token_hash = audit_token_hash(token)
            messages.warning(request, f"The audit webhook token of {obj.name}, shown only this once: {token}")
        elif form.cleaned_data.get("audit_token_hash"):
            obj.audit_token_hash = form.cleaned_data["audit_token_hash"]
        super().save_model(request, obj, form, change)


@admin.register(SnapshotRun)
class SnapshotRunAdmin(admin.ModelAdmin):
    list_display = ["cluster", "started_at", "status", "api_calls", "exec_probes", "rows_written"]
    list_filter = ["cluster", "status"]


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    list_display = ["user", "role", "namespaces"]


class AuditedUserAdmin(AuditedAdmin, UserAdmin):
    """Django's own user admin (password forms included), audited."""


admin.site.unregister(get_user_model())
admin.site.register(get_user_model(), AuditedUserAdmin)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the table refuses changes anyway, so the admin does not offer them."""

    list_display = ["at", "actor", "action", "cluster_name", "namespace", "object_name", "message"]
    list_filter = ["action", "cluster_name"]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(Channel)
class ChannelAdmin(AuditedAdmin):
    list_display = ["name", "kind", "url", "email_to", "enabled", "last_error", "last_failure_at", "last_success_at"]
    readonly_fields = ["last_error", "last_failure_at", "last_success_at"]


@admin.register(NotificationRule)
class NotificationRuleAdmin(AuditedAdmin):
    list_display = ["name", "channel", "event", "for_minutes", "cluster", "namespace", "workload", "enabled"]
    exclude = ["cursor"]


@admin.register(Notice)
class NoticeAdmin(AuditedAdmin):
    list_display = ["opened_at", "rule", "key", "status", "sends", "attempts", "last_error", "closed_at"]
    list_filter = ["status", "rule"]


@admin.register(RolloutWindow)
class RolloutWindowAdmin(AuditedAdmin):
    list_display = ["cluster", "namespace", "weekdays", "start", "end"]
