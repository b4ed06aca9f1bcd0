"""Key-level and line-level differences between two contents of a ConfigMap or Secret. Pure: no ORM.

A Secret's values are never stored (only their hashes), so for Secrets only the keys and whether each one
changed are known; the functions here take values only when there are some to show.

The line diff must not let one viewer hang the server: difflib's SequenceMatcher is quadratic on files made
of repeated blocks (an nginx.conf of 4,000 lines took 29 s). Lines are compared as integers (one id per
distinct line), the common head and tail are peeled off, and what remains is cut at lines that occur once
on each side (patience diff), recursively; a region with no such anchor gets Myers' shortest edit script,
bounded by the number of edits. A budget of
lines visited bounds the whole: past it, what remains is shown as replaced, which is still a correct diff.
Values larger than MAX_DIFF_BYTES or MAX_DIFF_LINES are not diffed at all: the page shows a summary and
offers both versions for download."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

# Beyond either, a value is summarised (sizes, line counts) instead of diffed line by line.
MAX_DIFF_BYTES = 256 * 1024
MAX_DIFF_LINES = 10_000
# A region without a unique anchor (identical repeated blocks) gets Myers' shortest edit, whose cost grows with
# its size times the number of edits; at least this many edits are always tried.
MIN_EDITS = 64
# Lines visited across all regions before the rest is shown as replaced; a few times the input's size.
WORK_PER_LINE = 100


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
class SizeSummary:
    """What is shown instead of a line diff when the values are too large to diff on a page."""

    old_bytes: int
    new_bytes: int
    old_lines: int
    new_lines: int


@dataclass(frozen=True)
class KeyDiff:
    key: str
    status: str  # added, removed, changed, unchanged
    rows: tuple[DiffRow, ...] = ()
    binary: bool = False
    hidden: bool = False  # a Secret: values are not known, only whether they changed
    too_large: SizeSummary | None = None  # set when the values were summarised instead of diffed


def too_large(old: str, new: str) -> SizeSummary | None:
    """A summary when either value is past the caps, None when it may be diffed."""
    old_bytes, new_bytes = len(old.encode()), len(new.encode())
    old_lines, new_lines = _line_count(old), _line_count(new)
    if max(old_bytes, new_bytes) <= MAX_DIFF_BYTES and max(old_lines, new_lines) <= MAX_DIFF_LINES:
        return None
    return SizeSummary(old_bytes, new_bytes, old_lines, new_lines)


def _line_count(text: str) -> int:
    """As many as str.splitlines gives, without building the list."""
    return text.count("\n") + (0 if not text or text.endswith("\n") else 1)


def side_by_side(old: str, new: str, context: int | None = 3) -> list[DiffRow]:
    """Line-by-line, side by side; runs of unchanged lines longer than 2*context+1 are folded (None: never)."""
    left, right = old.splitlines(), new.splitlines()
    rows: list[DiffRow] = []
    for tag, i1, i2, j1, j2 in line_opcodes(left, right):
        if tag == "equal":
            rows.extend(_equal_run(left, i1, i2, j1, context, first=not rows, last=i2 == len(left)))
        elif tag == "replace":
            for offset in range(max(i2 - i1, j2 - j1)):
                i, j = i1 + offset, j1 + offset
                # Past the work budget a large region is paired line by line: say so where both sides agree.
                same = i < i2 and j < j2 and left[i] == right[j]
                rows.append(
                    DiffRow(
                        "equal" if same else "changed",
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


def line_opcodes(left: list[str], right: list[str]) -> list[tuple[str, int, int, int, int]]:
    """difflib-style opcodes (equal, replace, delete, insert) in near-linear time and bounded work."""
    ids: dict[str, int] = {}
    a = [ids.setdefault(line, len(ids)) for line in left]
    b = [ids.setdefault(line, len(ids)) for line in right]
    pairs = sorted(_matching_pairs(a, b, budget=WORK_PER_LINE * (len(a) + len(b)) + 1_000))
    opcodes: list[tuple[str, int, int, int, int]] = []
    i = j = 0
    index = 0
    while index <= len(pairs):
        next_i, next_j = pairs[index] if index < len(pairs) else (len(a), len(b))
        if next_i > i and next_j > j:
            opcodes.append(("replace", i, next_i, j, next_j))
        elif next_i > i:
            opcodes.append(("delete", i, next_i, j, j))
        elif next_j > j:
            opcodes.append(("insert", i, i, j, next_j))
        if index == len(pairs):
            break
        run = 1  # consecutive pairs on one diagonal make one equal run
        while index + run < len(pairs) and pairs[index + run] == (next_i + run, next_j + run):
            run += 1
        opcodes.append(("equal", next_i, next_i + run, next_j, next_j + run))
        i, j = next_i + run, next_j + run
        index += run
    return opcodes


def _matching_pairs(a: list[int], b: list[int], budget: int) -> list[tuple[int, int]]:
    """(i, j) with a[i] == b[j], increasing on both sides: the lines the diff keeps as equal."""
    pairs: list[tuple[int, int]] = []
    regions = [(0, len(a), 0, len(b))]
    while regions:
        a0, a1, b0, b1 = regions.pop()
        while a0 < a1 and b0 < b1 and a[a0] == b[b0]:
            pairs.append((a0, b0))
            a0, b0 = a0 + 1, b0 + 1
        while a0 < a1 and b0 < b1 and a[a1 - 1] == b[b1 - 1]:
            a1, b1 = a1 - 1, b1 - 1
            pairs.append((a1, b1))
        if a0 == a1 or b0 == b1:
            continue
        budget -= (a1 - a0) + (b1 - b0)
        if budget < 0:
            continue  # out of budget: the region stays a replace
        anchors = _unique_anchors(a, b, a0, a1, b0, b1)
        if anchors:
            starts = (a0, b0)
            for i, j in anchors:
                regions.append((starts[0], i, starts[1], j))
                pairs.append((i, j))
                starts = (i + 1, j + 1)
            regions.append((starts[0], a1, starts[1], b1))
        else:
            size = (a1 - a0) + (b1 - b0)
            found = _shortest_edit(a, b, a0, a1, b0, b1, max_edits=max(MIN_EDITS, budget // size))
            if found is not None:
                equal, edits = found
                budget -= edits * size
                pairs.extend(equal)
    return pairs


def _shortest_edit(
    a: list[int], b: list[int], a0: int, a1: int, b0: int, b1: int, max_edits: int
) -> tuple[list[tuple[int, int]], int] | None:
    """The equal lines of a shortest edit script between the two regions (Myers' greedy O((N+M)D) algorithm)
    and its number of edits, or None when it needs more than `max_edits` inserted and deleted lines."""
    n, m = a1 - a0, b1 - b0
    furthest: dict[int, int] = {1: 0}  # diagonal k = x - y -> furthest x reached on it
    trace: list[dict[int, int]] = []
    for edits in range(min(max_edits, n + m) + 1):
        trace.append(dict(furthest))
        for k in range(-edits, edits + 1, 2):
            if k == -edits or (k != edits and furthest[k - 1] < furthest[k + 1]):
                x = furthest[k + 1]  # down: an inserted line
            else:
                x = furthest[k - 1] + 1  # right: a deleted line
            y = x - k
            while x < n and y < m and a[a0 + x] == b[b0 + y]:
                x, y = x + 1, y + 1
            furthest[k] = x
            if x >= n and y >= m:
                return _walk_back(trace, n, m, a0, b0), edits
    return None


def _walk_back(trace: list[dict[int, int]], n: int, m: int, a0: int, b0: int) -> list[tuple[int, int]]:
    pairs: list[tuple[int, int]] = []
    x, y = n, m
    for edits in range(len(trace) - 1, -1, -1):
        furthest = trace[edits]
        k = x - y
        came_down = k == -edits or (k != edits and furthest.get(k - 1, -1) < furthest.get(k + 1, -1))
        previous_k = k + 1 if came_down else k - 1
        previous_x = furthest[previous_k]
        previous_y = previous_x - previous_k
        while x > previous_x and y > previous_y:
            x, y = x - 1, y - 1
            pairs.append((a0 + x, b0 + y))
        x, y = previous_x, previous_y
    return pairs


def _unique_anchors(a: list[int], b: list[int], a0: int, a1: int, b0: int, b1: int) -> list[tuple[int, int]]:
    """Lines that occur exactly once on each side of the region, in the longest order both sides agree on."""
    count_a = Counter(a[a0:a1])
    count_b = Counter(b[b0:b1])
    where_b = {line: j for j, line in enumerate(b[b0:b1], start=b0) if count_b[line] == 1}
    candidates = [
        (i, where_b[line]) for i, line in enumerate(a[a0:a1], start=a0) if count_a[line] == 1 and line in where_b
    ]
    return _longest_increasing(candidates)


def _longest_increasing(candidates: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest subsequence increasing in j of pairs already increasing in i (patience sorting)."""
    tails: list[int] = []  # j of the last pair of the best chain of each length
    tail_index: list[int] = []
    back: list[int] = []
    for index, (_, j) in enumerate(candidates):
        length = bisect_left(tails, j)
        if length == len(tails):
            tails.append(j)
            tail_index.append(index)
        else:
            tails[length] = j
            tail_index[length] = index
        back.append(tail_index[length - 1] if length else -1)
    chain: list[tuple[int, int]] = []
    index = tail_index[-1] if tail_index else -1
    while index >= 0:
        chain.append(candidates[index])
        index = back[index]
    return chain[::-1]


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
    """Every key of either content with its status; values (ConfigMaps only) diffed line by line, or summarised
    when past the caps.
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
        summary = None
        if not hidden and not binary and status != "unchanged":
            old_text, new_text = (old_values or {}).get(key, ""), (new_values or {}).get(key, "")
            summary = too_large(old_text, new_text)
            if summary is None:
                rows = tuple(side_by_side(old_text, new_text, context=context))
        diffs.append(KeyDiff(key, status, rows, binary=binary, hidden=hidden, too_large=summary))
    return diffs


def changed_keys(old_hashes: Mapping[str, str], new_hashes: Mapping[str, str]) -> dict[str, list[str]]:
    """Key names only, as the timeline shows what each version changed."""
    return {
        "added": sorted(set(new_hashes) - set(old_hashes)),
        "removed": sorted(set(old_hashes) - set(new_hashes)),
        "changed": sorted(k for k in set(old_hashes) & set(new_hashes) if old_hashes[k] != new_hashes[k]),
    }
