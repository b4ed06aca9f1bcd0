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
