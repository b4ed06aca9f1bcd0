"""DRIFTWATCH_URLS: which URLs one process serves. `all` (one process for everything, as `make demo` and compose
run it), `dashboard` (everything but the audit receiver: the chart's web pods, behind the public ingress) and
`audit` (the receiver and the probes only: the chart's audit receiver, on its own Service and port)."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings
from django.urls import Resolver404, resolve

from dashboard import env

RECEIVER = "/kubernetes-audit/local"


@pytest.mark.parametrize(
    ("urlconf", "served", "not_served"),
    [
        ("dashboard.urls", ["/", "/admin/", "/metrics", "/healthz", RECEIVER], []),
        ("dashboard.urls_dashboard", ["/", "/admin/", "/metrics", "/healthz", "/readyz"], [RECEIVER]),
        ("dashboard.urls_audit", [RECEIVER, "/healthz", "/readyz"], ["/", "/admin/", "/metrics", "/login/"]),
    ],
)
def test_each_url_set_serves_its_urls_and_no_other(urlconf, served, not_served):
    for path in served:
        resolve(path, urlconf=urlconf)
    for path in not_served:
        with pytest.raises(Resolver404):
            resolve(path, urlconf=urlconf)


@pytest.mark.django_db
@override_settings(ROOT_URLCONF="dashboard.urls_audit")
def test_the_audit_receiver_answers_404_to_a_dashboard_url_and_never_redirects_to_a_login_it_has_not():
    client = Client(enforce_csrf_checks=True)
    assert client.get("/", secure=True).status_code == 404
    assert client.get("/admin/", secure=True).status_code == 404
    assert client.get("/healthz", secure=True).status_code == 200
    refused = client.post(RECEIVER, data="{}", content_type="application/json", secure=True)
    assert refused.status_code in (401, 404), refused.content  # the receiver's own answer: no such cluster or token


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, "dashboard.urls"), ("all", "dashboard.urls"), ("dashboard", "dashboard.urls_dashboard"),
     ("audit", "dashboard.urls_audit")],
)  # fmt: skip
def test_the_setting_names_a_url_set(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv("DRIFTWATCH_URLS", raising=False)
    else:
        monkeypatch.setenv("DRIFTWATCH_URLS", raw)
    assert env.env_urlconf("DRIFTWATCH_URLS") == expected


def test_an_unknown_url_set_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv("DRIFTWATCH_URLS", "everything")
    with pytest.raises(ImproperlyConfigured, match="all, dashboard or audit"):
        env.env_urlconf("DRIFTWATCH_URLS")
