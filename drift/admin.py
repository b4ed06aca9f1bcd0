from django.contrib import admin

from drift.models import AuditEvent, Cluster, Membership, SnapshotRun


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ["name", "kubeconfig_path", "context", "in_cluster", "snapshot_interval_seconds"]


@admin.register(SnapshotRun)
class SnapshotRunAdmin(admin.ModelAdmin):
    list_display = ["cluster", "started_at", "status", "api_calls", "exec_probes", "rows_written"]
    list_filter = ["cluster", "status"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "role", "namespaces"]


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
