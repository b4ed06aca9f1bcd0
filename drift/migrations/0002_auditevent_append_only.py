"""The audit history is append-only in the database itself, not only in Python: a trigger refuses
UPDATE and DELETE on its rows, whoever connects. TRUNCATE stays possible for the table's owner,
because Django's test flush and a deliberate wipe by an administrator both rely on it."""

from django.db import migrations

FORWARD = """
CREATE FUNCTION drift_auditevent_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit history is append-only: % on drift_auditevent is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER drift_auditevent_append_only
    BEFORE UPDATE OR DELETE ON drift_auditevent
    FOR EACH ROW EXECUTE FUNCTION drift_auditevent_refuse_change();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS drift_auditevent_append_only ON drift_auditevent;
DROP FUNCTION IF EXISTS drift_auditevent_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [("drift", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
