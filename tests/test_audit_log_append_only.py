"""The audit history refuses UPDATE and DELETE in the database itself, not only through the ORM."""

import pytest
from django.db import DatabaseError, connection, transaction

from drift.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def event():
    return AuditEvent.objects.create(actor="alice", action=AuditEvent.Action.LOGIN, message="logged in")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE drift_auditevent SET actor = 'mallory' WHERE id = %s",
        "DELETE FROM drift_auditevent WHERE id = %s",
    ],
    ids=["update", "delete"],
)
def test_raw_sql_cannot_change_history(event, statement):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, [event.pk])
    event.refresh_from_db()
    assert event.actor == "alice"


def test_the_orm_cannot_change_history_either(event):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(actor="mallory")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        event.delete()
    assert AuditEvent.objects.filter(actor="alice").count() == 1


def test_appending_works(event):
    AuditEvent.objects.create(actor="bob", action=AuditEvent.Action.LOGIN)
    assert AuditEvent.objects.count() == 2


def test_the_time_of_an_entry_is_the_databases_not_the_callers():
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        [before] = cursor.fetchone()
        # Whoever writes a row, the database times it: no caller's clock is asked.
        cursor.execute(
            "INSERT INTO drift_auditevent (actor, action, cluster_name, namespace, object_kind, object_name, message,"
            " detail) VALUES ('psql', 'user.login', '', '', '', '', '', '{}') RETURNING at"
        )
        [raw_at] = cursor.fetchone()
    event = AuditEvent.objects.create(actor="alice", action=AuditEvent.Action.LOGIN)
    AuditEvent.objects.bulk_create([AuditEvent(actor="bob", action=AuditEvent.Action.LOGIN)])
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        [after] = cursor.fetchone()
    assert before <= raw_at <= after
    assert before <= event.at <= after  # known right after the insert, without reading the row again
    assert before <= AuditEvent.objects.get(actor="bob").at <= after
    assert not AuditEvent._meta.get_field("at").has_default()  # no Python-side clock to fall back on


def test_over_long_values_are_cut_to_their_column_and_marked():
    long_name = "m" * 10_000
    event = AuditEvent.objects.create(
        actor=long_name, action=AuditEvent.Action.LOGIN_FAILED, namespace=long_name, object_name=long_name,
        message=long_name, detail={"path": "/" + long_name},
    )  # fmt: skip
    AuditEvent.objects.bulk_create([AuditEvent(actor=long_name, action=AuditEvent.Action.ACCESS_DENIED)])
    event.refresh_from_db()
    assert len(event.actor) == 150 and event.actor.endswith("…[cut]")
    assert len(event.namespace) == 253 and event.namespace.endswith("…[cut]")
    assert len(event.message) == 4_000 and event.message.endswith("…[cut]")
    assert len(event.detail["path"]) == 1_000 and event.detail["path"].endswith("…[cut]")
    assert AuditEvent.objects.get(action=AuditEvent.Action.ACCESS_DENIED).actor.endswith("…[cut]")
    short = AuditEvent.objects.create(actor="alice", action=AuditEvent.Action.LOGIN, message="logged in")
    assert (short.actor, short.message) == ("alice", "logged in")
