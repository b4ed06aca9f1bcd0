from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import path, register_converter

from dashboard.views import (
    at,
    audit,
    health,
    kube_audit,
    metrics,
    notifications,
    overview,
    pods,
    rollouts,
    sources,
    sso,
    timeline,
    workloads,
)
from drift.vocabulary import SourceKind


class SourceKinds:
    """configmaps or secrets, as the API spells them in paths."""

    regex = "|".join(kind.plural for kind in SourceKind)

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(SourceKinds, "sourcekinds")

# The probes, served by every process that serves HTTP.
health_urls = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]

# Where a cluster's API server sends its audit events: the Helm chart serves it from a Deployment, Service and port
# of its own (dashboard.urls_audit), never through the public ingress.
audit_receiver_urls = [
    # Without a trailing slash: the API server's webhook client drops it, and a redirect would turn its POST into a GET.
    path("kubernetes-audit/<slug:cluster>", kube_audit.receive, name="kube-audit"),
]

# A cluster's objects live under /clusters/CLUSTER/NAMESPACE/..., named as Kubernetes names them.
dashboard_urls = [
    path("", overview.overview, name="overview"),
    path("source-names/", overview.source_names, name="source-names"),
    path(
        "clusters/<slug:cluster>/<str:namespace>/workloads/<str:kind>/<str:name>/", workloads.workload, name="workload"
    ),
    path(
        "clusters/<slug:cluster>/<str:namespace>/workloads/<str:kind>/<str:name>/timeline/",
        timeline.workload_timeline,
        name="workload-timeline",
    ),
    path("clusters/<slug:cluster>/<str:namespace>/pods/<str:name>/", pods.pod, name="pod"),
    path("clusters/<slug:cluster>/<str:namespace>/timeline/", timeline.namespace_timeline, name="timeline"),
    path("clusters/<slug:cluster>/<str:namespace>/", at.namespace, name="namespace"),
    path(
        "clusters/<slug:cluster>/<str:namespace>/<sourcekinds:kinds>/<str:name>/",
        sources.source,
        name="source",
    ),
    path(
        "clusters/<slug:cluster>/<str:namespace>/<sourcekinds:kinds>/<str:name>/effects/<int:number>/",
        sources.effects,
        name="source-effects",
    ),
    path(
        "clusters/<slug:cluster>/<str:namespace>/configmaps/<str:name>/versions/<int:version>/restore/",
        sources.restore_version,
        name="source-restore",
    ),
    path(
        "clusters/<slug:cluster>/<str:namespace>/configmaps/<str:name>/versions/<int:version>/<str:key>",
        sources.download,
        name="source-download",
    ),
    path("audit/", audit.audit_log, name="audit"),
    path("audit.csv", audit.audit_csv, name="audit-csv"),
    path("rollouts/plan/", rollouts.plan, name="rollout-plan"),
    path("workloads/<int:pk>/confirm/", rollouts.confirm, name="workload-confirm"),
    path("workloads/<int:pk>/reload/", workloads.set_reload_setting, name="workload-reload"),
    path("rollouts/", rollouts.start, name="rollout-start"),
    path("rollouts/stale-pods/plan/", rollouts.evict_plan, name="evict-plan"),
    path("rollouts/stale-pods/", rollouts.evict_start, name="evict-start"),
    path("rollouts/run-now/plan/", rollouts.run_now_plan, name="run-now-plan"),
    path("rollouts/run-now/", rollouts.run_now_start, name="run-now-start"),
    path("rollouts/list/", rollouts.rollout_list, name="rollouts"),
    path("rollouts/<int:pk>/", rollouts.progress, name="rollout"),
    path("rollouts/<int:pk>/cancel/", rollouts.cancel, name="rollout-cancel"),
    path("rollouts/bulk/plan/", rollouts.bulk_plan, name="rollout-bulk-plan"),
    path("rollouts/bulk/", rollouts.bulk_start, name="rollout-bulk-start"),
    path("rollouts/batches/<uuid:batch_id>/", rollouts.batch, name="rollout-batch"),
    path("rollouts/batches/<uuid:batch_id>/cancel/", rollouts.batch_cancel, name="rollout-batch-cancel"),
    path("notifications/", notifications.notifications, name="notifications"),
    path("notifications/channels/", notifications.add_channel, name="notification-channel-add"),
    path("notifications/channels/<int:pk>/delete/", notifications.delete_channel, name="notification-channel-delete"),
    path("notifications/channels/<int:pk>/test/", notifications.test_channel, name="notification-channel-test"),
    path("notifications/rules/", notifications.add_rule, name="notification-rule-add"),
    path("notifications/rules/<int:pk>/delete/", notifications.delete_rule, name="notification-rule-delete"),
    path("login/", sso.LoginView.as_view(), name="login"),
    path("sso/start/", login_not_required(sso.SsoStart.as_view()), name="sso-start"),
    path("sso/callback/", login_not_required(sso.SsoCallback.as_view()), name="sso-callback"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("metrics", metrics.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    *health_urls,
]

# Everything, in one process (`make demo`, docker compose, the tests); DRIFTWATCH_URLS picks a part
# (dashboard.urls_dashboard, dashboard.urls_audit).
urlpatterns = [*dashboard_urls, *audit_receiver_urls]
