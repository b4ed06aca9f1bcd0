"""DRIFTWATCH_URLS=audit: the audit receiver and the probes only (the Helm chart's audit receiver). No login page
and no admin here: whatever else is asked for is a 404."""

from dashboard.urls import audit_receiver_urls, health_urls
from dashboard.views import kube_audit

urlpatterns = [*audit_receiver_urls, *health_urls]
handler404 = kube_audit.not_found
