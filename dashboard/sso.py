"""Single sign-on with OpenID Connect (mozilla-django-oidc): who may log in, and as what, is decided by the
provider's groups claim through DRIFTWATCH_OIDC_GROUP_ROLES, again at every login, so a group removed at the
provider takes its rights away at the next login. An account is tied to the provider's (issuer, subject), never
to a name or an email address the provider sends: a local break-glass account cannot be taken over by SSO."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import HttpRequest
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from drift import audit
from drift.models import AuditEvent, Membership, Role, SsoIdentity, parse_scope

SETTING = "DRIFTWATCH_OIDC_GROUP_ROLES"
# A role outranks those before it: a user in several mapped groups gets the highest role.
ROLE_ORDER = (Role.VIEWER, Role.OPERATOR)
GROUP_ROLES_FORM = (
    'a JSON object from group to grant, e.g. {"platform-leads": {"role": "operator", "scopes": ["local/demo"]}, '
    '"developers": {"role": "viewer"}}'
)


@dataclass(frozen=True)
class Grant:
    """What a login is given: a role, and for an operator the scopes it may roll out in."""

    role: str
    scopes: tuple[str, ...] = ()


class SsoRefused(Exception):
    """A login the provider vouched for but Driftwatch does not let in; the message is shown to the user. Raised
    through `authenticate()` to the callback view (dashboard.views.sso), after it is audited here."""


def parse_group_roles(raw: str) -> dict[str, Grant]:
    """DRIFTWATCH_OIDC_GROUP_ROLES as grants per group. ValueError says what is wrong and the expected form."""
    if not raw.strip():
        return {}
    try:
        loaded = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"{SETTING} is not JSON ({error.msg}); expected {GROUP_ROLES_FORM}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{SETTING} must be {GROUP_ROLES_FORM}")
    grants: dict[str, Grant] = {}
    for group, entry in loaded.items():
        if not group or not isinstance(entry, dict) or set(entry) - {"role", "scopes"}:
            raise ValueError(f"{SETTING}: group {group!r} must map to {{'role': ..., 'scopes': [...]}}")
        role = entry.get("role")
        if role not in Role.values:
            raise ValueError(f"{SETTING}: group {group!r} has role {role!r}; roles: {Role.values}")
        scopes = entry.get("scopes", [])
        if not isinstance(scopes, list) or not all(isinstance(scope, str) for scope in scopes):
            raise ValueError(f"{SETTING}: group {group!r}: scopes must be a list of strings")
        if role == Role.OPERATOR and not scopes:
            # An empty scope never means "everything": an operator group names where it may roll out.
            raise ValueError(f"{SETTING}: operator group {group!r} needs scopes (e.g. local/demo)")
        if role == Role.VIEWER and scopes:
            raise ValueError(f"{SETTING}: viewer group {group!r} cannot have scopes")
        for scope in scopes:
            try:
                parse_scope(scope)
            except ValueError as error:
                raise ValueError(f"{SETTING}: group {group!r}: {error}") from None
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


class DriftwatchOIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's code flow, with the claims taken from the verified ID token (its issuer and audience
    checked too), accounts found by (issuer, subject), and the role re-applied from the groups at every login."""

    def authenticate(self, request: HttpRequest | None, **credentials: Any) -> AbstractBaseUser | None:
        # Django asks every backend about every login: only the callback's (nonce, code verifier) is this one's.
        # A password login sent to /login/?code=...&state=... must not start a token exchange.
        if not settings.SSO_ENABLED or "nonce" not in credentials or "username" in credentials:
            return None
        user: AbstractBaseUser | None = super().authenticate(request, **credentials)
        return user

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
        try:
            with transaction.atomic():
                return super().get_or_create_user(access_token, id_token, payload)
        except SsoRefused as refusal:
            audit.record(
                self._name(payload),
                AuditEvent.Action.LOGIN_FAILED,
                f"single sign-on refused: {refusal}",
                object_kind="User",
                object_name=self._name(payload),
                detail=self._detail(payload),
            )
            # Withdraw what a linked account had: its open sessions end (get_user) and it keeps no scope.
            self._withdraw(payload)
            raise

    def create_user(self, claims: dict[str, Any]) -> AbstractBaseUser:
        grant = self._grant(claims)
        username = self._name(claims)
        users = get_user_model()
        if users.objects.filter(username=username).exists():
            raise SsoRefused(
                f"a local account named {username!r} exists and is not linked to this identity provider; "
                "an administrator has to rename or remove it first"
            )
        user = users.objects.create_user(username, email=str(claims.get("email", "")))
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
        self._note_login(user, claims, grant)
        return user

    def get_user(self, user_id: int) -> AbstractBaseUser | None:
        user = super().get_user(user_id)
        # A withdrawn account's sessions end; the library's own get_user would keep them.
        return user if user is not None and user.is_active else None

    def _grant(self, claims: dict[str, Any]) -> Grant:
        groups = claimed_groups(claims)
        grant = grant_for(groups, parse_group_roles(settings.DRIFTWATCH_OIDC_GROUP_ROLES))
        if grant is None:
            shown = ", ".join(groups[:20]) or "none"
            raise SsoRefused(
                f"none of your groups ({shown}) gives access to Driftwatch; ask an administrator to map one of them"
            )
        return grant

    def _withdraw(self, claims: dict[str, Any]) -> None:
        if not claims.get("sub"):
            return
        for user in self.filter_users_by_claims(claims).filter(is_active=True):
            user.is_active = False
            user.save(update_fields=["is_active"])
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

    @staticmethod
    def _name(claims: dict[str, Any]) -> str:
        """The account's name: the provider's email, else its preferred user name, else its subject."""
        for claim in ("email", "preferred_username", "sub"):
            value = claims.get(claim)
            if isinstance(value, str) and value:
                return value[:150]
        return ""

    @staticmethod
    def _grant_text(grant: Grant) -> str:
        return grant.role + (f" on {', '.join(grant.scopes)}" if grant.scopes else "")

    @staticmethod
    def _detail(claims: dict[str, Any]) -> dict[str, Any]:
        return {"method": "sso", "issuer": claims.get("iss", ""), "groups": claimed_groups(claims)[:50]}
