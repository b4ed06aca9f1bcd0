"""drift.diffs: the side-by-side line diff stays correct on the file shapes that made difflib quadratic
(identical repeated `server { ... }` blocks), and values past the caps are summarised instead of diffed.
Times are measured by bench/diff.py, not here."""

from __future__ import annotations

import pytest

from drift.diffs import MAX_DIFF_BYTES, MAX_DIFF_LINES, DiffRow, key_diffs, line_opcodes, side_by_side


def server_blocks(count: int, port: int = 80, marker: str = "") -> list[str]:
    lines = ["worker_processes 1;", "http {"]
    for number in range(count):
        lines += ["    server {", f"        listen {port};", "        server_name example.com;",
                  f"        # block {number}{marker}" if marker and number % 100 == 50 else "        location / {",
                  "            proxy_pass http://backend;", "        }", "    }", ""]  # fmt: skip
    return [*lines, "}"]


def sides(rows: list[DiffRow]) -> tuple[list[str], list[str]]:
    """Both texts rebuilt from the rows (unfolded): a correct diff loses and invents no line."""
    left = [row.left for row in rows if row.left_number is not None]
    right = [row.right for row in rows if row.right_number is not None]
    assert [row.left_number for row in rows if row.left_number is not None] == list(range(1, len(left) + 1))
    assert [row.right_number for row in rows if row.right_number is not None] == list(range(1, len(right) + 1))
    return left, right


def test_a_4000_line_nginx_file_of_repeated_blocks_diffs_correctly():
    old = server_blocks(500)  # 4,003 lines, no line unique but the first, second and last
    new = list(old)
    new[1_000] = "        listen 8080;"
    new.insert(2_000, "        proxy_read_timeout 30s;")
    del new[3_500]
    assert len(old) > 4_000
    rows = side_by_side("\n".join(old), "\n".join(new), context=None)
    assert sides(rows) == (old, new)
    changes = [row for row in rows if row.tag != "equal"]
    assert changes == [
        DiffRow("changed", 1_001, old[1_000], 1_001, "        listen 8080;"),
        DiffRow("added", right_number=2_001, right="        proxy_read_timeout 30s;"),
        DiffRow("removed", 3_500, old[3_499]),
    ]
    assert sum(row.tag == "equal" for row in rows) == len(old) - 2


def test_every_block_changed_still_gives_both_texts_and_marks_every_changed_line():
    old, new = server_blocks(500), server_blocks(500, port=8080)
    rows = side_by_side("\n".join(old), "\n".join(new), context=None)
    assert sides(rows) == (old, new)
    changed = [row for row in rows if row.tag != "equal"]
    assert len(changed) == 500
    assert all(row.left == "        listen 80;" and row.right == "        listen 8080;" for row in changed)


@pytest.mark.parametrize(
    ("old", "new", "opcodes"),
    [
        ([], [], []),
        (["a"], ["a"], [("equal", 0, 1, 0, 1)]),
        (["a", "b"], ["a"], [("equal", 0, 1, 0, 1), ("delete", 1, 2, 1, 1)]),
        (["a"], ["x", "a"], [("insert", 0, 0, 0, 1), ("equal", 0, 1, 1, 2)]),
        (["a", "b", "c"], ["a", "x", "c"], [("equal", 0, 1, 0, 1), ("replace", 1, 2, 1, 2), ("equal", 2, 3, 2, 3)]),
        # Repeated lines: the unique `u` anchors, the shortest edit handles what is around it.
        (["r", "r", "u", "r"], ["r", "u", "r", "r"],
         [("equal", 0, 1, 0, 1), ("delete", 1, 2, 1, 1), ("equal", 2, 3, 1, 2), ("insert", 3, 3, 2, 3),
          ("equal", 3, 4, 3, 4)]),
        # Moved block: the longest order both sides agree on stays equal.
        (["a", "b", "c", "d"], ["c", "d", "a", "b"],
         [("delete", 0, 2, 0, 0), ("equal", 2, 4, 0, 2), ("insert", 4, 4, 2, 4)]),
    ],
)  # fmt: skip
def test_line_opcodes(old: list[str], new: list[str], opcodes: list[tuple[str, int, int, int, int]]):
    assert line_opcodes(old, new) == opcodes


def test_values_past_the_caps_are_summarised_not_diffed():
    big = "x = 1\n" * (MAX_DIFF_LINES + 1)
    wide = "y" * (MAX_DIFF_BYTES + 1)
    diffs = {
        diff.key: diff
        for diff in key_diffs(
            {"long": "h1", "wide": "h2", "small": "h3"},
            {"long": "h4", "wide": "h5", "small": "h6"},
            {"long": big, "wide": "y", "small": "a"},
            {"long": big + "x = 2\n", "wide": wide, "small": "b"},
        )
    }
    assert diffs["long"].rows == () and diffs["long"].too_large is not None
    assert diffs["long"].too_large.new_lines == MAX_DIFF_LINES + 2
    assert diffs["wide"].too_large is not None and diffs["wide"].too_large.new_bytes == MAX_DIFF_BYTES + 1
    assert diffs["small"].too_large is None
    assert [row.tag for row in diffs["small"].rows] == ["changed"]


def test_secrets_have_no_values_and_no_summary():
    [diff] = key_diffs({"password": "h1"}, {"password": "h2"}, None, None)
    assert diff.hidden and diff.rows == () and diff.too_large is None
