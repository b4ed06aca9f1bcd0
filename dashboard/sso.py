"""Single sign-on with OpenID Connect (mozilla-django-oidc): who may log in, and as what, follows the provider.

- The groups claim grants roles through DRIFTWATCH_OIDC_GROUP_ROLES, counted only for the connector that asserted
  them when the provider federates others (Dex names it in `federated_claims` and in its `sub`): a group of GitHub
  never maps a role configured for LDAP.
- The grant is applied at every login and again whenever the session is renewed: a session lasts no longer than
  its ID token (or DRIFTWATCH_OIDC_SESSION_SECONDS), then the refresh token brings fresh claims, or it ends
  (dashboard.middleware.SsoSessionMiddleware).
- An account is tied to the provider's (issuer, subject), never found by a name or an e-mail address the provider
  sends; it is named after the e-mail only when the provider says it verified it, else `sso:<subject>`. A local
  account is never taken over, and an account an administrator deactivated is never reactivated by a login."""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from drift import audit
from drift.models import AuditEvent, Membership, Role, SsoIdentity, parse_scope

SETTING = "DRIFTWATCH_OIDC_GROUP_ROLES"
# A role outranks those before it: a user in several mapped groups gets the highest role.
ROLE_ORDER = (Role.VIEWER, Role.OPERATOR)
GROUP_ROLES_FORM = (
    'a JSON object from connector to group to grant, e.g. {"ldap": {"platform-leads": {"role": "operator", '
    '"scopes": ["local/demo"]}, "developers": {"role": "viewer"}}}, or for a provider without connectors from '
    'group to grant, e.g. {"developers": {"role": "viewer"}}'
)
# The session key of a single sign-on session's renewal state (dashboard.middleware.SsoSessionMiddleware).
SESSION_KEY = "driftwatch_sso"
USERNAME_MAX = 150  # Django's User.username


@dataclass(frozen=True)
class Grant:
    """What a login is given: a role, and for an operator the scopes it may roll out in."""

    role: str
    scopes: tuple[str, ...] = ()


class SsoRefused(Exception):
    """A login the provider vouched for but Driftwatch does not let in; the message is shown to the user. Raised
    through `authenticate()` to the callback view (dashboard.views.sso), after it is audited here."""


class SsoTokenTime(Exception):
    """The provider's ID token is expired or not yet valid by this server's clock (its `exp`, `iat` or `nbf`)."""


@dataclass(frozen=True)
class GroupRoles:
    """DRIFTWATCH_OIDC_GROUP_ROLES: grants per group, either per connector (a provider that federates others, as
    Dex does) or unqualified (a provider that names no connector)."""

    by_connector: dict[str, dict[str, Grant]] = field(default_factory=dict)
    unqualified: dict[str, Grant] = field(default_factory=dict)

    def for_connector(self, connector: str | None) -> dict[str, Grant]:
        """The grants that count for groups asserted by `connector` (None: the provider named none)."""
        if connector is None:
            if self.by_connector:
                raise SsoRefused(
                    f"the identity provider did not say which connector asserted your groups, and {SETTING} maps "
                    "groups per connector; an administrator has to fix the mapping or the provider"
                )
            return self.unqualified
        if self.unqualified:
            example = json.dumps({connector: {"group": {"role": "viewer"}}})
            raise SsoRefused(
                f"the identity provider says connector {connector!r} asserted your groups, and {SETTING} does not "
                f"say which connector its groups are from; an administrator has to qualify them by connector, "
                f"e.g. {example}"
            )
        return self.by_connector.get(connector, {})


def parse_group_roles(raw: str) -> GroupRoles:
    """DRIFTWATCH_OIDC_GROUP_ROLES as grants per connector and group. ValueError says what is wrong and the form."""
    if not raw.strip():
        return GroupRoles()
    try:
        loaded = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"{SETTING} is not JSON ({error.msg}); expected {GROUP_ROLES_FORM}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{SETTING} must be {GROUP_ROLES_FORM}")
    # An entry whose value has a "role" is a group's grant (the unqualified form); otherwise a connector's groups.
    unqualified = {key: value for key, value in loaded.items() if isinstance(value, dict) and "role" in value}
    if unqualified and len(unqualified) != len(loaded):
        raise ValueError(f"{SETTING} mixes groups with and without a connector; expected {GROUP_ROLES_FORM}")
    if unqualified:
        return GroupRoles(unqualified=_parse_grants(unqualified, where=""))
    by_connector = {}
    for connector, groups in loaded.items():
        if not connector or not isinstance(groups, dict):
            raise ValueError(
                f"{SETTING}: connector {connector!r} must map groups to grants; expected {GROUP_ROLES_FORM}"
            )
        by_connector[connector] = _parse_grants(groups, where=f"connector {connector!r}: ")
    return GroupRoles(by_connector=by_connector)


def _parse_grants(loaded: dict[str, Any], where: str) -> dict[str, Grant]:
    grants: dict[str, Grant] = {}
    for group, entry in loaded.items():
        if not group or not isinstance(entry, dict) or set(entry) - {"role", "scopes"}:
            raise ValueError(f"{SETTING}: {where}group {group!r} must map to {{'role': ..., 'scopes': [...]}}")
        role = entry.get("role")
        if role not in Role.values:
            raise ValueError(f"{SETTING}: {where}group {group!r} has role {role!r}; roles: {Role.values}")
        scopes = entry.get("scopes", [])
        if not isinstance(scopes, list) or not all(isinstance(scope, str) for scope in scopes):
            raise ValueError(f"{SETTING}: {where}group {group!r}: scopes must be a list of strings")
        if role == Role.OPERATOR and not scopes:
            # An empty scope never means "everything": an operator group names where it may roll out.
            raise ValueError(f"{SETTING}: {where}operator group {group!r} needs scopes (e.g. local/demo)")
        if role == Role.VIEWER and scopes:
            raise ValueError(f"{SETTING}: {where}viewer group {group!r} cannot have scopes")
        for scope in scopes:
            try:
                parse_scope(scope)
            except ValueError as error:
                raise ValueError(f"{SETTING}: {where}group {group!r}: {error}") from None
        grants[group] = Grant(role=role, scopes=tuple(scopes))
    return grants


def grant_for(groups: list[str], grants: dict[str, Grant]) -> Grant | None:
    """The grant of a user in `groups`: the highest role of its mapped groups, with the scopes of every mapped
    group that has that role (a viewer group adds no scope to an operator). None when no group is mapped."""
    mapped = [grants[group] for group in groups if group in grants]
    if not mapped:
        return None
    role = max((grant.role for grant in mapped), key=ROLE_ORDER.index)
    scopes = sorted({scope for grant in mapped if grant.role == role for scope in grant.scopes})
    return Grant(role=role, scopes=tuple(scopes))


def claimed_groups(claims: dict[str, Any]) -> list[str]:
    """The groups claim as a list of names; a provider sending one group as a string is taken at its word."""
    value = claims.get(settings.DRIFTWATCH_OIDC_GROUPS_CLAIM, [])
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [group for group in value if isinstance(group, str)]
    return []


def dex_subject_connector(subject: str) -> str | None:
    """The connector in a Dex subject, which is its IDTokenSubject protobuf (user_id = 1, conn_id = 2, both
    strings) in unpadded base64url; None for a subject of any other shape (another provider's)."""
    try:
        data = base64.urlsafe_b64decode(subject + "=" * (-len(subject) % 4))
    except (binascii.Error, ValueError):
        return None
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode() != subject:
        return None  # not its canonical encoding: not something Dex wrote
    fields: dict[int, str] = {}
    position = 0
    while position < len(data):
        tag = data[position]
        position += 1
        if tag not in (0x0A, 0x12) or tag >> 3 in fields:  # field 1 or 2, length-delimited, each once
            return None
        length, shift = 0, 0
        while True:
            if position >= len(data) or shift > 28:
                return None
            byte = data[position]
            position += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if position + length > len(data):
            return None
        try:
            fields[tag >> 3] = data[position : position + length].decode()
        except UnicodeDecodeError:
            return None
        position += length
    return fields.get(2) or None


def connector_of(claims: dict[str, Any]) -> str | None:
    """The connector that asserted these claims, when the provider federates others (Dex): its `federated_claims`
    (asked with the `federated:id` scope) or its subject. None when the provider names none."""
    from_subject = dex_subject_connector(str(claims.get("sub", "")))
    federated = claims.get("federated_claims")
    if isinstance(federated, dict) and isinstance(federated.get("connector_id"), str) and federated["connector_id"]:
        if from_subject is not None and from_subject != federated["connector_id"]:
            raise SsoRefused("the ID token's federated_claims and subject contradict each other about the connector")
        return str(federated["connector_id"])
    return from_subject


def account_name(claims: dict[str, Any]) -> str:
    """The name of an account single sign-on creates: the e-mail, case-folded, when the provider says it verified
    it (`email_verified` true); else `sso:<subject>`, case-folded. A name longer than Django's is refused, not cut:
    two cut names could be the same."""
    email = claims.get("email")
    if claims.get("email_verified") is True and isinstance(email, str) and email:
        name = email.casefold()
        if len(name) <= USERNAME_MAX:
            return name
    name = f"sso:{claims.get('sub', '')}".casefold()
    if len(name) > USERNAME_MAX:
        raise SsoRefused(f"the identity provider's subject is too long for an account name ({len(name)} characters)")
    return name


class DriftwatchOIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's code flow, with the claims taken from the verified ID token (its issuer, audience and
    times checked too), accounts found by (issuer, subject), and the grant re-applied at every login and renewal."""

    def authenticate(self, request: HttpRequest | None, **credentials: Any) -> AbstractBaseUser | None:
        # Django asks every backend about every login: only the callback's (nonce, code verifier) is this one's.
        # A password login sent to /login/?code=...&state=... must not start a token exchange.
        if not settings.SSO_ENABLED or "nonce" not in credentials or "username" in credentials:
            return None
        user: AbstractBaseUser | None = super().authenticate(request, **credentials)
        return user

    def get_token(self, payload: dict[str, Any]) -> dict[str, Any]:
        token_info: dict[str, Any] = super().get_token(payload)
        # Kept for the session's renewal state (a refresh token, when the provider gave one).
        self.token_info = token_info
        return token_info

    def _verify_jws(self, payload: bytes, key: Any) -> dict[str, Any]:
        # The library's own check, with a settable allowance for clock skew and the time errors told apart
        # (PyJWT raises them as their own exceptions, which the library lets through as a server error).
        header = jwt.get_unverified_header(payload)
        if header.get("alg") != self.OIDC_RP_SIGN_ALGO:
            raise SuspiciousOperation(
                f"the ID token is signed with {header.get('alg')!r}, not {self.OIDC_RP_SIGN_ALGO}"
            )
        try:
            decoded: dict[str, Any] = jwt.decode(
                payload,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                options={"verify_aud": False, "require": ["exp", "iat"]},
                leeway=settings.DRIFTWATCH_OIDC_CLOCK_SKEW_SECONDS,
            )
        except jwt.ExpiredSignatureError:
            raise SsoTokenTime("the identity provider's ID token has expired (exp)") from None
        except (jwt.ImmatureSignatureError, jwt.InvalidIssuedAtError):
            raise SsoTokenTime("the identity provider's ID token is not valid yet (iat/nbf)") from None
        except jwt.InvalidTokenError as error:
            raise SuspiciousOperation(f"the ID token did not verify ({type(error).__name__})") from None
        return decoded

    def get_payload_data(self, token: bytes, key: Any) -> dict[str, Any]:
        payload: dict[str, Any] = super().get_payload_data(token, key)
        if payload.get("iss") != settings.DRIFTWATCH_OIDC_ISSUER:
            raise SuspiciousOperation("ID token from another issuer")
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if settings.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("ID token for another client")
        return payload

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        # The ID token is signed and was verified; it carries the groups when the `groups` scope was asked for.
        return payload

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return bool(claims.get("sub"))

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        return get_user_model().objects.filter(
            sso_identity__issuer=claims["iss"], sso_identity__subject=str(claims["sub"])
        )

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> AbstractBaseUser | None:
        user = self._refused_is_audited(payload, partial(super().get_or_create_user, access_token, id_token, payload))
        if user is not None:
            user.sso_session = session_state(payload, getattr(self, "token_info", {}))
        return user

    def verify_renewed(self, token: str, nonce: str) -> dict[str, Any]:
        """A refreshed ID token's claims, checked as at login; its nonce, if any, must be the login's."""
        key: Any
        if self.OIDC_RP_SIGN_ALGO.startswith(("RS", "ES")):
            key = self.OIDC_RP_IDP_SIGN_KEY or self.retrieve_matching_jwk(token)
        else:
            key = self.OIDC_RP_CLIENT_SECRET
        claims = self.get_payload_data(token.encode(), key)
        if claims.get("nonce") not in (None, "", nonce):
            raise SuspiciousOperation("the renewed ID token carries another login's nonce")
        return claims

    def renew(self, user: Any, claims: dict[str, Any]) -> AbstractBaseUser:
        """Apply refreshed claims to the account of this session (dashboard.middleware.SsoSessionMiddleware)."""
        identity = SsoIdentity.objects.filter(user=user).first()
        if identity is None or (identity.issuer, identity.subject) != (claims.get("iss"), str(claims.get("sub"))):
            raise SuspiciousOperation("the renewed ID token is of another identity")
        renewed: AbstractBaseUser = self._refused_is_audited(claims, partial(self.update_user, user, claims))
        return renewed

    def _refused_is_audited(self, claims: dict[str, Any], apply: Callable[[], Any]) -> Any:
        """`apply()` in a transaction; a refusal is audited and withdraws what a linked account had."""
        try:
            with transaction.atomic():
                return apply()
        except SsoRefused as refusal:
            name = self._actor(claims)
            audit.record(
                name,
                AuditEvent.Action.LOGIN_FAILED,
                f"single sign-on refused: {refusal}",
                object_kind="User",
                object_name=name,
                detail=self._detail(claims),
            )
            # Withdraw what a linked account had: its open sessions end (get_user) and it keeps no scope.
            self._withdraw(claims)
            raise

    def create_user(self, claims: dict[str, Any]) -> AbstractBaseUser:
        grant = self._grant(claims)
        username = account_name(claims)
        users = get_user_model()
        if users.objects.filter(username=username).exists():
            raise SsoRefused(
                f"an account named {username!r} exists and is not linked to this identity; "
                "an administrator has to rename or remove it first"
            )
        email = str(claims.get("email", "")) if claims.get("email_verified") is True else ""
        user = users.objects.create_user(username, email=email)
        SsoIdentity.objects.create(user=user, issuer=claims["iss"], subject=str(claims["sub"]))
        Membership.objects.create(user=user, role=grant.role, namespaces=list(grant.scopes))
        audit.record_user_change(
            username,
            username,
            AuditEvent.Action.USER_CREATED,
            f"created by single sign-on as {self._grant_text(grant)}",
            detail=self._detail(claims),
        )
        self._note_login(user, claims, grant)
        return user

    def update_user(self, user: Any, claims: dict[str, Any]) -> AbstractBaseUser:
        identity = SsoIdentity.objects.select_for_update().get(user=user)
        if not user.is_active and identity.access_withdrawn_at is None:
            # Deactivated by an administrator, not by single sign-on: no login brings it back.
            raise SsoRefused("your account was deactivated by an administrator; ask one to reactivate it")
        grant = self._grant(claims)
        membership, _ = Membership.objects.get_or_create(user=user)
        before = Grant(role=membership.role, scopes=tuple(membership.namespaces))
        if before != grant or not user.is_active:
            membership.role, membership.namespaces = grant.role, list(grant.scopes)
            membership.save(update_fields=["role", "namespaces"])
            user.is_active = True
            user.save(update_fields=["is_active"])
            audit.record_user_change(
                user.get_username(),
                user.get_username(),
                AuditEvent.Action.ROLE_CHANGED,
                f"role set by single sign-on: {self._grant_text(before)} -> {self._grant_text(grant)}",
                detail=self._detail(claims),
            )
        if identity.access_withdrawn_at is not None:
            identity.access_withdrawn_at = None
            identity.save(update_fields=["access_withdrawn_at"])
        self._note_login(user, claims, grant)
        return user

    def get_user(self, user_id: int) -> AbstractBaseUser | None:
        user = super().get_user(user_id)
        # A withdrawn account's sessions end; the library's own get_user would keep them.
        return user if user is not None and user.is_active else None

    def _grant(self, claims: dict[str, Any]) -> Grant:
        groups = claimed_groups(claims)
        grants = parse_group_roles(settings.DRIFTWATCH_OIDC_GROUP_ROLES).for_connector(connector_of(claims))
        grant = grant_for(groups, grants)
        if grant is None:
            shown = ", ".join(groups[:20]) or "none"
            raise SsoRefused(
                f"none of your groups ({shown}) gives access to Driftwatch; ask an administrator to map one of them"
            )
        return grant

    def _withdraw(self, claims: dict[str, Any]) -> None:
        if not claims.get("sub") or not claims.get("iss"):
            return
        for user in self.filter_users_by_claims(claims).filter(is_active=True):
            user.is_active = False
            user.save(update_fields=["is_active"])
            SsoIdentity.objects.filter(user=user).update(access_withdrawn_at=timezone.now())
            Membership.objects.filter(user=user).update(role=Role.VIEWER, namespaces=[])
            audit.record_user_change(
                user.get_username(),
                user.get_username(),
                AuditEvent.Action.ROLE_CHANGED,
                "access withdrawn by single sign-on: no group maps to a role any more",
                detail=self._detail(claims),
            )

    def _note_login(self, user: AbstractBaseUser, claims: dict[str, Any], grant: Grant) -> None:
        """What the login audit entry (dashboard.signals) records about this login."""
        detail = self._detail(claims) | {
            "grant": self._grant_text(grant),
            "role": grant.role,
            "scopes": list(grant.scopes),
        }
        user.sso_detail = detail  # type: ignore[attr-defined]

    def _actor(self, claims: dict[str, Any]) -> str:
        """Who a refusal is recorded as: the linked account, else the name an account would get."""
        linked = self.filter_users_by_claims(claims).first() if claims.get("iss") and claims.get("sub") else None
        if linked is not None:
            return str(linked.get_username())
        try:
            return account_name(claims)
        except SsoRefused:
            return "sso:?"

    @staticmethod
    def _grant_text(grant: Grant) -> str:
        return grant.role + (f" on {', '.join(grant.scopes)}" if grant.scopes else "")

    @staticmethod
    def _detail(claims: dict[str, Any]) -> dict[str, Any]:
        try:
            connector = connector_of(claims)
        except SsoRefused:
            connector = None
        return {
            "method": "sso",
            "issuer": claims.get("iss", ""),
            "connector": connector or "",
            "groups": claimed_groups(claims)[:50],
        }


def session_state(payload: dict[str, Any], token_info: dict[str, Any], previous: dict[str, Any] | None = None) -> dict:
    """What a single sign-on session keeps to end or renew itself: when its evidence runs out (the ID token's
    expiry, or DRIFTWATCH_OIDC_SESSION_SECONDS from now, whichever is sooner), the refresh token if the provider
    gave one (a rotated one replaces it), and the login's nonce, which a renewed ID token may repeat."""
    previous = previous or {}
    now = time.time()
    expires = float(payload.get("exp", now))
    return {
        "renew_at": min(expires, now + settings.DRIFTWATCH_OIDC_SESSION_SECONDS),
        "refresh_token": str(token_info.get("refresh_token") or previous.get("refresh_token") or ""),
        "nonce": str(previous.get("nonce") or payload.get("nonce") or ""),
    }


def renew_session(request: HttpRequest) -> str | None:
    """For a request of a session single sign-on opened: None while its ID token's time lasts, or once it is
    renewed with the refresh token (the groups in the renewed ID token applied again); otherwise why it ends."""
    state = request.session.get(SESSION_KEY)
    if not isinstance(state, dict):
        return "your session was opened before sessions followed the provider's tokens; log in again"
    if time.time() < float(state.get("renew_at", 0)):
        return None
    if not state.get("refresh_token"):
        return "your session ended with the identity provider's ID token; log in again"
    user = request.user
    backend = DriftwatchOIDCBackend()
    try:
        token_info = backend.get_token(
            {
                "client_id": settings.OIDC_RP_CLIENT_ID,
                "client_secret": settings.OIDC_RP_CLIENT_SECRET,
                "grant_type": "refresh_token",
                "refresh_token": state["refresh_token"],
            }
        )
        claims = backend.verify_renewed(str(token_info["id_token"]), nonce=str(state.get("nonce", "")))
        backend.renew(user, claims)
    except SsoRefused as refusal:  # audited by the backend
        return f"refused: {refusal}"
    except (requests.RequestException, SuspiciousOperation, SsoTokenTime, KeyError, ValueError) as error:
        reason = str(error) if isinstance(error, SsoTokenTime) else type(error).__name__
        audit.record(
            user.get_username(),
            AuditEvent.Action.LOGIN_FAILED,
            f"single sign-on session not renewed: {reason}",
            object_kind="User",
            object_name=user.get_username(),
            detail={"method": "sso"},
        )
        return f"the identity provider did not renew your session ({reason}); log in again"
    request.session[SESSION_KEY] = session_state(claims, token_info, previous=state)
    return None
