"""Single sign-on in a real browser: Driftwatch's login page, the provider's own login page (Dex on 127.0.0.1),
and back to the overview, logged in with the role the provider's groups map to."""

import re

import pytest
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from drift.models import AuditEvent, Membership
from tests.browser.conftest import screenshot
from tests.oidc_provider import PASSWORD, Dex, DexUser

pytestmark = pytest.mark.browser


@pytest.mark.django_db(transaction=True)
def test_a_user_logs_in_through_the_providers_page_and_lands_on_the_overview(
    page: Page, live_server: LiveServer, dex: Dex, settings
) -> None:
    dex.redirect_uris = [f"{live_server.url}/sso/callback/"]
    dex.start([DexUser("lead@example.com", ["platform-leads"])])
    for name, value in dex.settings().items():
        setattr(settings, name, value)

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/"))
    screenshot(page, "sso-login")
    page.get_by_role("link", name="Log in with single sign-on").click()

    expect(page).to_have_url(re.compile(re.escape(dex.issuer)))
    page.get_by_label("Email Address").fill("lead@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    screenshot(page, "sso-provider")
    page.get_by_role("button", name="Login").click()

    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    expect(page.get_by_text("lead@example.com · operator")).to_be_visible()
    screenshot(page, "sso-overview")
    membership = Membership.objects.get(user__username="lead@example.com")
    assert membership.namespaces == ["local/demo"]
    assert AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN, actor="lead@example.com").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_session_ends_with_the_providers_id_token_and_the_login_page_says_why(
    page: Page, live_server: LiveServer, dex: Dex, settings
) -> None:
    dex.redirect_uris = [f"{live_server.url}/sso/callback/"]
    dex.options = {"expiry": {"idTokens": "4s"}}
    dex.start([DexUser("lead@example.com", ["platform-leads"])])
    for name, value in dex.settings().items():
        setattr(settings, name, value)
    settings.OIDC_RP_SCOPES = "openid email profile groups"  # no refresh token: nothing to renew the session with

    page.goto("/login/")
    page.get_by_role("link", name="Log in with single sign-on").click()
    page.get_by_label("Email Address").fill("lead@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Login").click()
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()

    page.wait_for_timeout(4500)
    page.reload()

    expect(page).to_have_url(re.compile(r"/login/"))
    expect(page.get_by_text("your session ended with the identity provider's ID token; log in again")).to_be_visible()
    screenshot(page, "sso-session-ended")
