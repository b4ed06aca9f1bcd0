"""Who may do what. Everyone logged in reads everything; rolling out takes an operator membership for the
namespace. A refused attempt is audited before the 403, because a forged POST is worth knowing about."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from drift.models import AuditEvent, Membership, Role


def membership_of(user: AbstractBaseUser | AnonymousUser) -> Membership | None:
    if not user.is_authenticated:
        return None
    try:
        return user.membership
    except Membership.DoesNotExist:
        return None


def role_of(user: AbstractBaseUser | AnonymousUser) -> str:
    """A user without a membership (e.g. made with createsuperuser) is a viewer."""
    membership = membership_of(user)
    return membership.role if membership else Role.VIEWER


def may_roll_out(user: AbstractBaseUser | AnonymousUser, namespace: str) -> bool:
    membership = membership_of(user)
    return membership is not None and membership.may_roll_out(namespace)


def require_rollout_permission(request: HttpRequest, cluster: str, namespace: str, kind: str, name: str) -> None:
    """Raise PermissionDenied (403) unless the user may roll out in `namespace`, and audit the attempt."""
    if may_roll_out(request.user, namespace):
        return
    username = request.user.get_username()
    role = role_of(request.user)
    AuditEvent.objects.create(
        actor=username,
        action=AuditEvent.Action.ACCESS_DENIED,
        cluster_name=cluster[:63],
        namespace=namespace[:253],
        object_kind=kind[:32],
        object_name=name[:253],
        message=f"{username} ({role}) may not roll out in namespace {namespace}: {request.method} {request.path} "
        "refused with 403",
        detail={"method": request.method, "path": request.path, "role": role},
    )
    raise PermissionDenied(f"Your role ({role}) may not roll out in namespace {namespace}.")
