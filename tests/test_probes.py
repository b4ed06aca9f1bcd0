"""Probe commands and parsing: what an exec read becomes hashes, and nothing else."""

from datetime import UTC, datetime

import pytest

from drift.probes import (
    EnvExpectation,
    ValueHasher,
    files_command,
    observed_env_hashes,
    parse_data_dir,
    parse_environ,
    parse_files_output,
)

HASHER = ValueHasher("test-key")


def test_values_are_keyed_hashes():
    assert HASHER.value("INFO") == HASHER.value(b"INFO")
    assert HASHER.value("INFO") != ValueHasher("another-key").value("INFO"), "no offline guessing without the key"
    assert len(HASHER.value("x" * 1_000_000)) == 64
    assert ValueHasher.content({"a": "1", "b": "2"}) == ValueHasher.content({"b": "2", "a": "1"})
    assert ValueHasher.content({"a": "1"}) != ValueHasher.content({"a": "1"}, binary_keys=["a"])


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            "PATH=/bin\0log_level=INFO\0MULTI=line1\nline2\0",
            {"PATH": "/bin", "log_level": "INFO", "MULTI": "line1\nline2"},
        ),
        ("PATH=/bin\nlog_level=INFO\n", {"PATH": "/bin", "log_level": "INFO"}),
        ("A=x=y\0EMPTY=\0", {"A": "x=y", "EMPTY": ""}),
    ],
    ids=["proc-environ", "env-fallback", "equals-in-values"],
)
def test_parse_environ(output, expected):
    assert parse_environ(output) == expected


def test_env_hashes_follow_names_prefixes_and_shadowing():
    environment = {"LEVEL": "INFO", "APP_mode": "override", "APP_log_level": "DEBUG"}
    key_ref = EnvExpectation(mode="env", env_names={"LEVEL": "log_level", "MISSING": "gone"})
    assert observed_env_hashes(key_ref, environment, (), HASHER) == {"log_level": HASHER.value("INFO"), "gone": None}
    env_from = EnvExpectation(mode="envFrom", env_names={}, prefix="APP_", shadowed=frozenset({"APP_mode"}))
    observed = observed_env_hashes(env_from, environment, ["log_level", "mode", "removed"], HASHER)
    assert observed == {"log_level": HASHER.value("DEBUG"), "removed": None}


def test_files_round_trip_with_multibyte_text_and_missing_files():
    body = 'server_name "ünï"; if ($cookie ~* "x") {}\n'
    size = len(body.encode())
    output = f"nginx.conf\n{size}\n{body}gone\n-1\n\n..data=..2026_11_25_12_30_01.123456789\n"
    read = parse_files_output(output)
    assert read.contents == {"nginx.conf": body, "gone": None}
    assert read.data_dir_written_at == datetime(2026, 11, 25, 12, 30, 1, tzinfo=UTC)


def test_files_command_passes_paths_as_arguments_not_code():
    command = files_command("/etc/config", ["a; rm -rf /", "$(x)"])
    assert command[:2] == ["sh", "-c"]
    assert command[-2:] == ["a; rm -rf /", "$(x)"]
    assert "rm -rf" not in command[2]


@pytest.mark.parametrize(
    ("target", "expected"),
    [("..2026_01_02_03_04_05.999", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)), ("", None), ("..data", None)],
)
def test_parse_data_dir(target, expected):
    assert parse_data_dir(target) == expected
