"""DRIFTWATCH_URLS=dashboard: every URL but the audit receiver (the Helm chart's web pods)."""

from dashboard.urls import dashboard_urls

urlpatterns = dashboard_urls
