"""Every audit entry goes through one door (drift.audit): no other module builds or writes AuditEvent rows, so
none can forget to bound a field or write one the door would refuse."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRITES = re.compile(r"\bAuditEvent\(|\bAuditEvent\.objects\.(create|bulk_create|get_or_create|update_or_create)\b")
DOOR = ROOT / "drift" / "audit.py"


def test_only_the_door_writes_audit_entries():
    writers = [
        f"{path.relative_to(ROOT)}:{number}"
        for package in ("drift", "dashboard")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != DOOR and "migrations" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if WRITES.search(line) and not line.lstrip().startswith("class ")
    ]
    assert writers == []
