"""Single sign-on that follows the identity provider, against a real one (Dex on 127.0.0.1, tests/oidc_provider.py):
an account an administrator deactivated stays so; a session lasts no longer than its ID token and its groups are
read again when it is renewed with the refresh token; accounts are named after verified e-mail addresses only;
a group counts only for the connector that asserted it; token time errors and links from other sites to the
callback end on the login page with a message, changing nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.urls import reverse

from drift.models import AuditEvent, Membership, Role, SsoIdentity
from tests.facts import user
from tests.oidc_provider import Dex, DexUser

CALLBACK = "http://testserver/sso/callback/"
ALICE = "alice@example.com"
LEADS = {"platform-leads": {"role": "operator", "scopes": ["local/demo"]}, "developers": {"role": "viewer"}}


def configure(dex: Dex, settings, group_roles: dict | None = None) -> None:
    for name, value in dex.settings().items():
        setattr(settings, name, value)
    if group_roles is not None:
        settings.DRIFTWATCH_OIDC_GROUP_ROLES = json.dumps(group_roles)


@pytest.fixture
def provider(dex: Dex, settings, plain_http: None) -> Dex:
    """Dex, not started yet: a test gives it its users and options, then `configure`s Driftwatch for it."""
    dex.redirect_uris = [CALLBACK]
    return dex


@pytest.fixture
def dex_database(django_db_blocker) -> Iterator[dict]:
    """A PostgreSQL database of its own for Dex's storage, dropped afterwards."""
    database = dict(connection.settings_dict)
    database["NAME"] = f"{database['NAME']}_dex"
    admin = {"host": database["HOST"], "port": database["PORT"], "user": database["USER"]}
    with psycopg.connect(**admin, password=database["PASSWORD"], dbname="postgres", autocommit=True) as server:
        server.execute(f'DROP DATABASE IF EXISTS "{database["NAME"]}" WITH (FORCE)')
        server.execute(f'CREATE DATABASE "{database["NAME"]}"')
    yield database
    with psycopg.connect(**admin, password=database["PASSWORD"], dbname="postgres", autocommit=True) as server:
        server.execute(f'DROP DATABASE IF EXISTS "{database["NAME"]}" WITH (FORCE)')


def sso_login(client: Client, dex: Dex, email: str, connector: str = ""):
    """Driftwatch's start page, the provider's login, Driftwatch's callback: the response of the callback."""
    start = client.get(reverse("sso-start"))
    assert start.status_code == 302 and start["Location"].startswith(dex.issuer)
    back = urlsplit(dex.log_in(start["Location"], email, CALLBACK, connector=connector))
    return client.get(f"{back.path}?{back.query}")


def shown_messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def is_logged_in(client: Client) -> bool:
    return client.get(reverse("overview")).status_code == 200


@pytest.mark.django_db
def test_a_login_never_reactivates_an_account_an_administrator_deactivated(provider: Dex, settings) -> None:
    provider.start([DexUser(ALICE, ["platform-leads"])])
    configure(provider, settings)
    sso_login(Client(), provider, ALICE)
    account = get_user_model().objects.get(username=ALICE)
    account.is_active = False  # what unticking "active" in the admin does
    account.save()

    response = sso_login(Client(), provider, ALICE)

    assert response["Location"] == reverse("login")
    assert shown_messages(response) == [
        "Single sign-on refused: your account was deactivated by an administrator; ask one to reactivate it."
    ]
    account.refresh_from_db()
    assert not account.is_active
    assert Membership.objects.get(user=account).role == Role.OPERATOR  # left as the administrator left it


@pytest.mark.django_db
def test_an_account_single_sign_on_withdrew_comes_back_with_a_mapped_group(provider: Dex, settings) -> None:
    provider.start([DexUser(ALICE, ["platform-leads"])])
    configure(provider, settings)
    sso_login(Client(), provider, ALICE)
    provider.restart([DexUser(ALICE, ["marketing"])])
    configure(provider, settings)
    sso_login(Client(), provider, ALICE)
    assert not get_user_model().objects.get(username=ALICE).is_active

    provider.restart([DexUser(ALICE, ["developers"])])
    configure(provider, settings)
    client = Client()
    sso_login(client, provider, ALICE)

    assert get_user_model().objects.get(username=ALICE).is_active and is_logged_in(client)


@pytest.mark.django_db
def test_an_unverified_email_never_names_an_account(provider: Dex, settings) -> None:
    # Whoever can make the provider carry an address unverified must not get an account named after it.
    provider.start([DexUser("admin@example.com", ["developers"], email_verified=False)])
    configure(provider, settings)

    response = sso_login(Client(), provider, "admin@example.com")

    assert response["Location"] == reverse("overview")
    identity = SsoIdentity.objects.get()
    assert identity.user.username == f"sso:{identity.subject}".casefold()
    assert identity.user.email == ""
    assert not get_user_model().objects.filter(username="admin@example.com").exists()


@pytest.mark.django_db
def test_a_verified_email_names_the_account_case_folded(provider: Dex, settings) -> None:
    provider.start([DexUser("Alice@Example.COM", ["developers"])])
    configure(provider, settings)

    sso_login(Client(), provider, "Alice@Example.COM")

    assert SsoIdentity.objects.get().user.username == "alice@example.com"


MOCK_CONNECTOR = {"connectors": [{"type": "mockCallback", "id": "mock", "name": "Mock"}]}


@pytest.mark.django_db
# The connector read from Dex's subject, and with the federated:id scope from its federated_claims as well.
@pytest.mark.parametrize("extra_scopes", ["", " federated:id"])
def test_a_group_asserted_by_one_connector_never_maps_a_role_configured_for_another(
    provider: Dex, settings, extra_scopes: str
) -> None:
    # Dex's mock connector logs in Kilgore Trout in group "authors"; a password user is put in "authors" too.
    provider.options = MOCK_CONNECTOR
    provider.start([DexUser("mallory@example.com", ["authors"])])
    configure(
        provider,
        settings,
        {
            "mock": {"authors": {"role": "operator", "scopes": ["local/demo"]}},
            "local": {"developers": {"role": "viewer"}},
        },
    )
    settings.OIDC_RP_SCOPES += extra_scopes

    mallory = sso_login(Client(), provider, "mallory@example.com", connector="local")
    kilgore = sso_login(Client(), provider, "", connector="mock")

    assert mallory["Location"] == reverse("login")
    assert "none of your groups (authors) gives access" in shown_messages(mallory)[0]
    assert not get_user_model().objects.filter(username="mallory@example.com").exists()
    assert kilgore["Location"] == reverse("overview")
    trout = Membership.objects.get(user__username="kilgore@kilgore.trout")
    assert (trout.role, trout.namespaces) == (Role.OPERATOR, ["local/demo"])
    login = AuditEvent.objects.get(action=AuditEvent.Action.LOGIN)
    assert login.detail["connector"] == "mock"


@pytest.mark.django_db
def test_groups_not_qualified_by_connector_are_refused_plainly_when_dex_names_one(provider: Dex, settings) -> None:
    provider.options = MOCK_CONNECTOR
    provider.start([DexUser("mallory@example.com", ["authors"])])
    configure(provider, settings, {"authors": {"role": "operator", "scopes": ["local/demo"]}})

    mallory = sso_login(Client(), provider, "mallory@example.com", connector="local")

    assert mallory["Location"] == reverse("login")
    assert shown_messages(mallory) == [
        "Single sign-on refused: the identity provider says connector 'local' asserted your groups, and "
        "DRIFTWATCH_OIDC_GROUP_ROLES does not say which connector its groups are from; an administrator has to "
        'qualify them by connector, e.g. {"local": {"group": {"role": "viewer"}}}.'
    ]
    assert not get_user_model().objects.filter(username="mallory@example.com").exists()


@pytest.mark.django_db
def test_without_a_refresh_token_the_session_ends_with_the_id_token(provider: Dex, settings) -> None:
    provider.options = {"expiry": {"idTokens": "3s"}}
    provider.start([DexUser(ALICE, ["platform-leads"])])
    configure(provider, settings)
    settings.OIDC_RP_SCOPES = "openid email profile groups"  # no offline_access: no refresh token
    client = Client()
    sso_login(client, provider, ALICE)
    assert is_logged_in(client)

    time.sleep(3.5)
    response = client.get(reverse("overview"))

    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert shown_messages(response) == [
        "Single sign-on: your session ended with the identity provider's ID token; log in again."
    ]


@pytest.mark.django_db
def test_the_session_is_renewed_with_the_refresh_token_and_its_groups_read_again(
    provider: Dex, settings, dex_database: dict
) -> None:
    provider.keep_storage_in(dex_database)  # refresh tokens outlive the restarts that change the groups
    provider.start([DexUser(ALICE, ["platform-leads"])])
    configure(provider, settings)
    settings.DRIFTWATCH_OIDC_SESSION_SECONDS = 1
    client = Client()
    sso_login(client, provider, ALICE)
    assert Membership.objects.get(user__username=ALICE).role == Role.OPERATOR

    provider.restart([DexUser(ALICE, ["developers"])])
    time.sleep(1.1)
    assert is_logged_in(client)  # renewed without a login
    membership = Membership.objects.get(user__username=ALICE)
    assert (membership.role, membership.namespaces) == (Role.VIEWER, [])
    changed = AuditEvent.objects.get(action=AuditEvent.Action.ROLE_CHANGED)
    assert changed.message == "role set by single sign-on: operator on local/demo -> viewer"

    provider.restart([DexUser(ALICE, ["marketing"])])
    time.sleep(1.1)
    response = client.get(reverse("overview"))

    assert response["Location"].startswith(reverse("login"))
    assert shown_messages(response) == [
        "Single sign-on: refused: none of your groups (marketing) gives access to Driftwatch; "
        "ask an administrator to map one of them."
    ]
    assert not get_user_model().objects.get(username=ALICE).is_active


@pytest.mark.django_db
def test_a_session_the_provider_does_not_renew_ends(provider: Dex, settings, dex_database: dict) -> None:
    provider.keep_storage_in(dex_database)
    provider.start([DexUser(ALICE, ["platform-leads"])])
    configure(provider, settings)
    settings.DRIFTWATCH_OIDC_SESSION_SECONDS = 1
    client = Client()
    sso_login(client, provider, ALICE)

    provider.restart([DexUser("someone-else@example.com", ["platform-leads"])])  # alice is gone at the provider
    time.sleep(1.1)
    response = client.get(reverse("overview"))

    assert response["Location"].startswith(reverse("login"))
    assert shown_messages(response) == [
        "Single sign-on: the identity provider did not renew your session (HTTPError); log in again."
    ]
    ended = AuditEvent.objects.get(action=AuditEvent.Action.LOGIN_FAILED)
    assert (ended.actor, ended.message) == (ALICE, "single sign-on session not renewed: HTTPError")


@pytest.mark.django_db
def test_an_expired_id_token_is_a_message_on_the_login_page_not_a_server_error(provider: Dex, settings) -> None:
    # Dex's ID token expires a millisecond after it is issued: expired on arrival, as with a clock far behind.
    provider.options = {"expiry": {"idTokens": "1ms"}}
    provider.start([DexUser(ALICE, ["platform-leads"])])
    configure(provider, settings)
    settings.DRIFTWATCH_OIDC_CLOCK_SKEW_SECONDS = 0

    response = sso_login(Client(), provider, ALICE)

    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert shown_messages(response) == [
        "Single sign-on failed: the identity provider's ID token has expired (exp); check that this server's "
        "clock and the provider's agree (allowed skew: 0 s)."
    ]
    assert not get_user_model().objects.filter(username=ALICE).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["?error=access_denied&state=forged", "?error=access_denied"])
def test_a_link_from_another_site_to_the_callback_does_not_log_the_user_out(provider: Dex, settings, query) -> None:
    provider.start([DexUser(ALICE, ["platform-leads"])])
    configure(provider, settings)
    client = Client()
    client.force_login(user("breakglass", "operator"), backend="dashboard.auth.PasswordBackend")

    response = client.get(reverse("sso-callback") + query)

    assert is_logged_in(client)
    assert response["Location"] == reverse("login")
    assert shown_messages(response) == [
        "Single sign-on failed: the login answer does not belong to this browser session or did not verify."
    ]
