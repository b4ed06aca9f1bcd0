"""Single sign-on: the group mapping as a table, then logins through a real OpenID Connect provider (Dex on
127.0.0.1, tests/oidc_provider.py): the browser's part at the provider is played with HTTP requests against
Dex's own login form, Driftwatch's part with Django's test client."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from dashboard.sso import Grant, SsoRefused, account_name, connector_of, grant_for, parse_group_roles
from drift.models import AuditEvent, Membership, Role, SsoIdentity
from tests.facts import PASSWORD, user
from tests.oidc_provider import GROUP_ROLES, Dex, DexUser

GRANTS = parse_group_roles(
    json.dumps({"release-managers": {"role": "operator", "scopes": ["*/prod"]}} | GROUP_ROLES["local"])
).for_connector(None)
CALLBACK = "http://testserver/sso/callback/"
ALICE = "alice@example.com"


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        (["platform-leads"], Grant(Role.OPERATOR, ("local/demo",))),
        (["developers"], Grant(Role.VIEWER)),
        # The highest role wins; a viewer group adds no scope to it.
        (["developers", "platform-leads"], Grant(Role.OPERATOR, ("local/demo",))),
        # Operator groups add their scopes together, each once.
        (["release-managers", "platform-leads", "platform-leads"], Grant(Role.OPERATOR, ("*/prod", "local/demo"))),
        (["marketing", "developers"], Grant(Role.VIEWER)),
        (["marketing"], None),
        ([], None),
        # Group names are matched exactly: no case folding, no prefixes.
        (["Platform-Leads", "platform"], None),
    ],
)
def test_groups_map_to_a_role_and_scopes(groups: list[str], expected: Grant | None) -> None:
    assert grant_for(groups, GRANTS) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "is not JSON"),
        ('["platform-leads"]', "must be a JSON object"),
        ('{"ops": {"role": "admin"}}', "has role 'admin'"),
        ('{"ops": {"role": "operator"}}', "needs scopes"),
        ('{"ops": {"role": "operator", "scopes": ["demo"]}}', "must name the cluster"),
        ('{"ops": {"role": "viewer", "scopes": ["local/demo"]}}', "cannot have scopes"),
        ('{"ops": {"role": "viewer", "namespaces": []}}', "must map to"),
        ('{"ops": {"role": "operator", "scopes": "local/demo"}}', "must be a list of strings"),
    ],
)
def test_a_bad_group_mapping_is_refused_with_what_to_fix(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_group_roles(raw)


def test_no_mapping_means_no_group_grants_anything() -> None:
    assert parse_group_roles("").for_connector(None) == {}


# Dex's connectors: its password database ("local") and GitHub, each naming groups its own way.
QUALIFIED = parse_group_roles(
    json.dumps(
        {
            "local": {
                "platform-leads": {"role": "operator", "scopes": ["local/demo"]},
                "developers": {"role": "viewer"},
            },
            "github": {"acme:release": {"role": "operator", "scopes": ["*/prod"]}},
        }
    )
)


@pytest.mark.parametrize(
    ("connector", "groups", "expected"),
    [
        ("local", ["platform-leads"], Grant(Role.OPERATOR, ("local/demo",))),
        ("github", ["acme:release"], Grant(Role.OPERATOR, ("*/prod",))),
        # The same group name asserted by another connector maps nothing: anyone can name a GitHub team so.
        ("github", ["platform-leads", "developers"], None),
        ("local", ["acme:release"], None),
        # A connector the mapping does not name grants nothing.
        ("ldap", ["platform-leads"], None),
    ],
)
def test_a_group_counts_only_for_the_connector_configured_for_it(connector, groups, expected) -> None:
    assert grant_for(groups, QUALIFIED.for_connector(connector)) == expected


def test_the_unqualified_form_serves_a_provider_without_connectors_and_is_refused_for_one_with_them() -> None:
    unqualified = parse_group_roles(json.dumps({"developers": {"role": "viewer"}}))

    assert grant_for(["developers"], unqualified.for_connector(None)) == Grant(Role.VIEWER)
    with pytest.raises(SsoRefused, match=r'connector \'local\'.*qualify them by connector, e.g. \{"local": \{"group"'):
        unqualified.for_connector("local")
    with pytest.raises(SsoRefused, match="did not say which connector"):
        QUALIFIED.for_connector(None)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"local": {"ops": {"role": "admin"}}}', "connector 'local': group 'ops' has role 'admin'"),
        ('{"local": ["ops"]}', "connector 'local' must map groups to grants"),
        ('{"local": {"ops": {"role": "viewer"}}, "devs": {"role": "viewer"}}', "mixes"),
        ('{"local": {"ops": {"role": "operator"}}}', "needs scopes"),
    ],
)
def test_a_bad_qualified_mapping_is_refused_with_what_to_fix(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_group_roles(raw)


@pytest.mark.parametrize(
    ("subject", "federated", "connector"),
    [
        # Dex's subject: its user ID and connector ID, as protobuf fields, base64url without padding.
        ("CgcyMzQyNzQ5EgZnaXRodWI", None, "github"),
        ("ChRpZC1hbGljZUBleGFtcGxlLmNvbRIFbG9jYWw", None, "local"),
        ("CgcyMzQyNzQ5EgZnaXRodWI", {"connector_id": "github", "user_id": "2342749"}, "github"),
        # Other providers' subjects name no connector.
        ("f81d4fae-7dec-11d0-a765-00a0c91e6bf6", None, None),
        ("248289761001", None, None),
        ("alice", None, None),
    ],
)
def test_the_connector_is_read_from_dex_federated_claims_or_its_subject(subject, federated, connector) -> None:
    claims = {"sub": subject} | ({"federated_claims": federated} if federated else {})
    assert connector_of(claims) == connector


def test_a_federated_claim_that_contradicts_the_subject_is_refused() -> None:
    with pytest.raises(SsoRefused, match="contradict"):
        connector_of({"sub": "CgcyMzQyNzQ5EgZnaXRodWI", "federated_claims": {"connector_id": "local"}})


@pytest.mark.parametrize(
    ("claims", "name"),
    [
        ({"sub": "S1", "email": "Alice@Example.COM", "email_verified": True}, "alice@example.com"),
        # Unverified, or verified in words only: never the e-mail (anyone could claim the admin's).
        ({"sub": "S1", "email": "alice@example.com", "email_verified": False}, "sso:s1"),
        ({"sub": "S1", "email": "alice@example.com"}, "sso:s1"),
        ({"sub": "S1", "email": "alice@example.com", "email_verified": "true"}, "sso:s1"),
        ({"sub": "S1", "preferred_username": "admin", "name": "admin"}, "sso:s1"),
        # A verified address too long for an account name is not cut (two could then share one).
        ({"sub": "S1", "email": "a" * 150 + "@example.com", "email_verified": True}, "sso:s1"),
    ],
)
def test_an_account_is_named_after_a_verified_email_only(claims, name) -> None:
    assert account_name(claims) == name


def test_a_subject_too_long_for_an_account_name_is_refused_not_cut() -> None:
    with pytest.raises(SsoRefused, match="too long"):
        account_name({"sub": "s" * 147})


@pytest.fixture
def sso(dex: Dex, settings, plain_http: None) -> Dex:
    """Dex with three users, and Driftwatch configured for it; a test restarts Dex to change their groups."""
    dex.redirect_uris = [CALLBACK]
    dex.start(
        [
            DexUser(ALICE, ["platform-leads"]),
            DexUser("bob@example.com", ["developers"]),
            DexUser("carol@example.com", ["marketing"]),
        ]
    )
    for name, value in dex.settings().items():
        setattr(settings, name, value)
    return dex


def sso_login(client: Client, dex: Dex, email: str, next_url: str = ""):
    """Driftwatch's start page, the provider's login form, Driftwatch's callback: the response of the callback."""
    start = client.get(reverse("sso-start") + (f"?next={next_url}" if next_url else ""))
    assert start.status_code == 302
    assert start["Location"].startswith(dex.issuer)
    back = dex.log_in(start["Location"], email, CALLBACK)
    parts = urlsplit(back)
    return client.get(f"{parts.path}?{parts.query}")


def shown_messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def membership_of(email: str) -> Membership:
    return Membership.objects.get(user__username=email)


@pytest.mark.django_db
def test_first_login_creates_the_user_with_the_role_and_scope_of_its_group(sso: Dex, client: Client) -> None:
    response = sso_login(client, sso, ALICE, next_url="/audit/")

    assert response.status_code == 302 and response["Location"] == "/audit/"
    account = get_user_model().objects.get(username=ALICE)
    assert not account.has_usable_password()
    assert (account.membership.role, account.membership.namespaces) == (Role.OPERATOR, ["local/demo"])
    assert SsoIdentity.objects.get(user=account).issuer == sso.issuer
    assert client.get(reverse("overview")).status_code == 200

    created = AuditEvent.objects.get(action=AuditEvent.Action.USER_CREATED, object_name=ALICE)
    assert created.message == "created by single sign-on as operator on local/demo"
    login = AuditEvent.objects.get(action=AuditEvent.Action.LOGIN, actor=ALICE)
    assert login.message == "logged in with single sign-on as operator on local/demo"
    assert login.detail["groups"] == ["platform-leads"] and login.detail["issuer"] == sso.issuer


@pytest.mark.django_db
def test_a_later_login_applies_the_groups_the_provider_sends_then(sso: Dex, client: Client) -> None:
    sso_login(client, sso, ALICE)
    assert membership_of(ALICE).role == Role.OPERATOR

    sso.restart([DexUser(ALICE, ["developers"])])
    response = sso_login(Client(), sso, ALICE)

    assert response.status_code == 302 and response["Location"] == reverse("overview")
    assert get_user_model().objects.filter(username=ALICE).count() == 1
    assert (membership_of(ALICE).role, membership_of(ALICE).namespaces) == (Role.VIEWER, [])
    changed = AuditEvent.objects.get(action=AuditEvent.Action.ROLE_CHANGED, object_name=ALICE)
    assert changed.message == "role set by single sign-on: operator on local/demo -> viewer"

    sso.restart([DexUser(ALICE, ["developers", "platform-leads"])])
    sso_login(Client(), sso, ALICE)
    assert (membership_of(ALICE).role, membership_of(ALICE).namespaces) == (Role.OPERATOR, ["local/demo"])


@pytest.mark.django_db
def test_a_user_whose_groups_were_all_removed_loses_access_and_its_open_session(sso: Dex, client: Client) -> None:
    sso_login(client, sso, ALICE)
    assert client.get(reverse("overview")).status_code == 200

    sso.restart([DexUser(ALICE, ["marketing"])])
    response = sso_login(Client(), sso, ALICE)

    assert response["Location"] == reverse("login")
    assert shown_messages(response) == [
        "Single sign-on refused: none of your groups (marketing) gives access to Driftwatch; "
        "ask an administrator to map one of them."
    ]
    account = get_user_model().objects.get(username=ALICE)
    assert not account.is_active
    assert (account.membership.role, account.membership.namespaces) == (Role.VIEWER, [])
    # The session opened before the groups changed is over.
    assert client.get(reverse("overview"))["Location"].startswith(reverse("login"))
    assert AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_FAILED, actor=ALICE).count() == 1
    withdrawn = AuditEvent.objects.get(action=AuditEvent.Action.ROLE_CHANGED, object_name=ALICE)
    assert withdrawn.message == "access withdrawn by single sign-on: no group maps to a role any more"

    sso.restart([DexUser(ALICE, ["developers"])])
    sso_login(Client(), sso, ALICE)
    account.refresh_from_db()
    assert account.is_active and account.membership.role == Role.VIEWER


@pytest.mark.django_db
def test_a_user_without_a_mapped_group_is_refused_with_a_clear_message(sso: Dex, client: Client) -> None:
    response = sso_login(client, sso, "carol@example.com")

    assert response["Location"] == reverse("login")
    page = client.get(reverse("login"))
    assert "none of your groups (marketing) gives access to Driftwatch" in page.content.decode()
    assert not get_user_model().objects.filter(username="carol@example.com").exists()
    refused = AuditEvent.objects.get(action=AuditEvent.Action.LOGIN_FAILED)
    assert refused.actor == "carol@example.com"
    assert refused.detail["groups"] == ["marketing"]
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN).exists()
    assert client.get(reverse("overview"))["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_single_sign_on_never_takes_over_a_local_account_of_the_same_name(sso: Dex, client: Client) -> None:
    local = user(ALICE, "viewer")

    response = sso_login(client, sso, ALICE)

    assert response["Location"] == reverse("login")
    assert "an account named 'alice@example.com' exists and is not linked" in shown_messages(response)[0]
    local.refresh_from_db()
    assert local.is_active and local.membership.role == Role.VIEWER
    assert not SsoIdentity.objects.exists()


@pytest.mark.django_db
def test_a_callback_that_does_not_belong_to_the_session_is_refused_with_a_message(sso: Dex, client: Client) -> None:
    client.get(reverse("sso-start"))

    response = client.get(reverse("sso-callback") + "?code=forged&state=forged")

    assert response["Location"] == reverse("login")
    assert "does not belong to this browser session" in shown_messages(response)[0]
    assert AuditEvent.objects.get(action=AuditEvent.Action.LOGIN_FAILED).message.startswith("single sign-on failed")


@pytest.mark.django_db
def test_the_provider_refusing_is_said_on_the_login_page(sso: Dex, client: Client) -> None:
    state = parse_qs(urlsplit(client.get(reverse("sso-start"))["Location"]).query)["state"][0]

    response = client.get(reverse("sso-callback") + f"?error=access_denied&state={state}")

    assert response["Location"] == reverse("login")
    assert shown_messages(response) == ["Single sign-on failed: the identity provider answered 'access_denied'."]


@pytest.mark.django_db
def test_local_passwords_stay_for_break_glass_beside_single_sign_on(sso: Dex, client: Client) -> None:
    user("breakglass", "operator", password=PASSWORD)

    page = client.get(reverse("login")).content.decode()
    assert "Log in with single sign-on" in page and "break-glass" in page
    response = client.post(reverse("login"), {"username": "breakglass", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == reverse("overview")


@pytest.mark.django_db
def test_password_login_switched_off_refuses_every_password_and_ends_password_sessions(
    sso: Dex, client: Client, settings
) -> None:
    user("breakglass", "operator", password=PASSWORD)
    assert client.login(username="breakglass", password=PASSWORD)
    settings.DRIFTWATCH_PASSWORD_LOGIN = False

    assert client.get(reverse("overview"))["Location"].startswith(reverse("login"))
    page = client.get(reverse("login")).content.decode()
    assert "Log in with single sign-on" in page and 'name="password"' not in page
    response = client.post(reverse("login"), {"username": "breakglass", "password": PASSWORD})
    assert shown_messages(response) == ["Password login is switched off here: log in with single sign-on."]
    assert not Client().login(username="breakglass", password=PASSWORD)
    admin_login = client.post("/admin/login/", {"username": "breakglass", "password": PASSWORD})
    assert admin_login.status_code == 200  # the form again, not a redirect into the admin

    assert sso_login(client, sso, ALICE)["Location"] == reverse("overview")


@pytest.mark.django_db
def test_without_single_sign_on_configured_its_pages_do_not_exist(client: Client, plain_http: None) -> None:
    assert client.get(reverse("sso-start")).status_code == 404
    assert client.get(reverse("sso-callback") + "?code=x&state=y").status_code == 404
    assert "single sign-on" not in client.get(reverse("login")).content.decode()


@pytest.mark.django_db
def test_an_id_token_from_another_issuer_is_refused(sso: Dex, client: Client, settings) -> None:
    settings.DRIFTWATCH_OIDC_ISSUER = "http://127.0.0.1:1/not-this-provider"

    response = sso_login(client, sso, ALICE)

    assert response["Location"] == reverse("login")
    assert "did not verify" in shown_messages(response)[0]
    assert not get_user_model().objects.filter(username=ALICE).exists()


SSO_ENVIRONMENT = {
    "DRIFTWATCH_OIDC_ISSUER": "https://id.example.com",
    "DRIFTWATCH_OIDC_CLIENT_ID": "driftwatch",
    "DRIFTWATCH_OIDC_CLIENT_SECRET": "s3cret",
    "DRIFTWATCH_OIDC_AUTHORIZATION_ENDPOINT": "https://id.example.com/auth",
    "DRIFTWATCH_OIDC_TOKEN_ENDPOINT": "https://id.example.com/token",
    "DRIFTWATCH_OIDC_JWKS_ENDPOINT": "https://id.example.com/keys",
    "DRIFTWATCH_OIDC_GROUP_ROLES": json.dumps(GROUP_ROLES),
}


def manage_check(**environment: str) -> subprocess.CompletedProcess:
    """`manage.py check` with the test suite's key and the given environment, in a process of its own."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("DRIFTWATCH_OIDC_")}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=Path(__file__).resolve().parent.parent,
        env={**clean, "SECRET_KEY": "k" * 50, **environment},
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        (SSO_ENVIRONMENT, None),
        (SSO_ENVIRONMENT | {"DRIFTWATCH_PASSWORD_LOGIN": "false"}, None),
        (
            {"DRIFTWATCH_OIDC_ISSUER": "https://id.example.com"},
            "single sign-on needs DRIFTWATCH_OIDC_CLIENT_ID, DRIFTWATCH_OIDC_CLIENT_SECRET",
        ),
        ({"DRIFTWATCH_PASSWORD_LOGIN": "false"}, "nobody could log in"),
        (SSO_ENVIRONMENT | {"DRIFTWATCH_OIDC_GROUP_ROLES": '{"ops": {"role": "root"}}'}, "has role 'root'"),
    ],
)
def test_single_sign_on_settings_are_checked_when_a_process_starts(environment: dict, message: str | None) -> None:
    result = manage_check(**environment)
    if message is None:
        assert result.returncode == 0, result.stderr[-2000:]
    else:
        assert result.returncode != 0
        assert message in result.stderr


@pytest.mark.django_db
def test_a_password_login_carrying_a_code_and_state_is_only_a_password_login(sso: Dex, client: Client) -> None:
    user("breakglass", "operator", password=PASSWORD)

    wrong = client.post(reverse("login") + "?code=forged&state=forged", {"username": "breakglass", "password": "no"})
    right = client.post(
        reverse("login") + "?code=forged&state=forged", {"username": "breakglass", "password": PASSWORD}
    )

    assert wrong.status_code == 200 and "Wrong user name or password." in wrong.content.decode()
    assert right.status_code == 302 and right["Location"] == reverse("overview")


@pytest.mark.django_db
def test_a_provider_gone_before_the_token_exchange_gives_a_message_not_an_error(sso: Dex, client: Client) -> None:
    start = client.get(reverse("sso-start"))
    back = urlsplit(sso.log_in(start["Location"], ALICE, CALLBACK))
    sso.stop()

    response = client.get(f"{back.path}?{back.query}")

    assert response["Location"] == reverse("login")
    assert shown_messages(response) == [
        "Single sign-on failed: the identity provider could not be asked (ConnectionError)."
    ]
    assert not get_user_model().objects.filter(username=ALICE).exists()


@pytest.fixture
def signing_key(settings):
    """An RSA key of the test's own, standing in for the provider's: a token's times are then the test's to set."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    settings.OIDC_RP_SIGN_ALGO = "RS256"
    settings.OIDC_OP_JWKS_ENDPOINT = "http://127.0.0.1:9/keys"  # never asked: the key is handed over
    settings.DRIFTWATCH_OIDC_CLOCK_SKEW_SECONDS = 30
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("issued", "expires", "error"),
    [
        # The provider's clock 2 minutes ahead of ours: issued "in the future".
        (120, 3600, "is not valid yet (iat/nbf)"),
        (-3600, -120, "has expired (exp)"),
        # Within the allowed skew: accepted.
        (10, 3600, None),
        (-3600, -10, None),
    ],
)
def test_an_id_token_outside_its_times_is_told_apart_from_a_bad_signature(signing_key, issued, expires, error) -> None:
    import jwt

    from dashboard.sso import DriftwatchOIDCBackend, SsoTokenTime

    now = int(time.time())
    token = jwt.encode({"sub": "s", "iat": now + issued, "exp": now + expires}, signing_key, algorithm="RS256")
    backend = DriftwatchOIDCBackend()
    if error is None:
        assert backend._verify_jws(token.encode(), signing_key.public_key())["sub"] == "s"
    else:
        with pytest.raises(SsoTokenTime, match=re.escape(error)):
            backend._verify_jws(token.encode(), signing_key.public_key())
