"""Key-level and line-level differences between two contents of a ConfigMap or Secret. Pure: no ORM.

A Secret's values are never stored (only their hashes), so for Secrets only the keys and whether each one
changed are known; the functions here take values only when there are some to show."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class DiffRow:
    """One row of a side-by-side diff. `tag`: equal, changed, removed, added, or skipped (a run of
    `skipped` unchanged lines folded away)."""

    tag: str
    left_number: int | None = None
    left: str = ""
    right_number: int | None = None
    right: str = ""
    skipped: int = 0


@dataclass(frozen=True)
class KeyDiff:
    key: str
    status: str  # added, removed, changed, unchanged
    rows: tuple[DiffRow, ...] = ()
    binary: bool = False
    hidden: bool = False  # a Secret: values are not known, only whether they changed


def side_by_side(old: str, new: str, context: int | None = 3) -> list[DiffRow]:
    """Line-by-line, side by side; runs of unchanged lines longer than 2*context+1 are folded (None: never)."""
    left, right = old.splitlines(), new.splitlines()
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows.extend(_equal_run(left, i1, i2, j1, context, first=not rows, last=i2 == len(left)))
        elif tag == "replace":
            for offset in range(max(i2 - i1, j2 - j1)):
                i, j = i1 + offset, j1 + offset
                rows.append(
                    DiffRow(
                        "changed",
                        i + 1 if i < i2 else None,
                        left[i] if i < i2 else "",
                        j + 1 if j < j2 else None,
                        right[j] if j < j2 else "",
                    )
                )
        elif tag == "delete":
            rows.extend(DiffRow("removed", i + 1, left[i]) for i in range(i1, i2))
        else:
            rows.extend(DiffRow("added", right_number=j + 1, right=right[j]) for j in range(j1, j2))
    return rows


def _equal_run(
    lines: list[str], i1: int, i2: int, j1: int, context: int | None, first: bool, last: bool
) -> list[DiffRow]:
    def row(i: int) -> DiffRow:
        return DiffRow("equal", i + 1, lines[i], j1 + (i - i1) + 1, lines[i])

    if context is None:
        return [row(i) for i in range(i1, i2)]
    keep_before = 0 if first else context  # lines after the previous change
    keep_after = 0 if last else context  # lines before the next change
    if i2 - i1 <= keep_before + keep_after + 1:
        return [row(i) for i in range(i1, i2)]
    head = [row(i) for i in range(i1, i1 + keep_before)]
    tail = [row(i) for i in range(i2 - keep_after, i2)]
    return [*head, DiffRow("skipped", skipped=i2 - i1 - keep_before - keep_after), *tail]


def key_diffs(
    old_hashes: Mapping[str, str],
    new_hashes: Mapping[str, str],
    old_values: Mapping[str, str] | None,
    new_values: Mapping[str, str] | None,
    binary_keys: frozenset[str] = frozenset(),
    context: int | None = 3,
) -> list[KeyDiff]:
    """Every key of either content with its status; values (ConfigMaps only) diffed line by line.
    Pass `old_values`/`new_values` as None for a Secret: then nothing but keys and statuses comes out.
    `context` None keeps every unchanged line."""
    hidden = old_values is None or new_values is None
    diffs: list[KeyDiff] = []
    for key in sorted(set(old_hashes) | set(new_hashes)):
        before, after = old_hashes.get(key), new_hashes.get(key)
        if before is None:
            status = "added"
        elif after is None:
            status = "removed"
        else:
            status = "changed" if before != after else "unchanged"
        binary = key in binary_keys
        rows: tuple[DiffRow, ...] = ()
        if not hidden and not binary and status != "unchanged":
            old_text, new_text = (old_values or {}).get(key, ""), (new_values or {}).get(key, "")
            rows = tuple(side_by_side(old_text, new_text, context=context))
        diffs.append(KeyDiff(key, status, rows, binary=binary, hidden=hidden))
    return diffs


def changed_keys(old_hashes: Mapping[str, str], new_hashes: Mapping[str, str]) -> dict[str, list[str]]:
    """Key names only, as the timeline shows what each version changed."""
    return {
        "added": sorted(set(new_hashes) - set(old_hashes)),
        "removed": sorted(set(old_hashes) - set(new_hashes)),
        "changed": sorted(k for k in set(old_hashes) & set(new_hashes) if old_hashes[k] != new_hashes[k]),
    }
