"""Probe commands and parsing: what an exec read becomes hashes, and nothing else."""

import os
import shutil
import subprocess
import sys
import threading
from datetime import UTC, datetime

import pytest

from drift.probes import (
    EnvExpectation,
    ProbeOutputError,
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


def test_the_recipe_is_unchanged_for_an_unchanged_key():
    """Hashes already stored (and rollout annotations already applied) stay valid across releases."""
    assert HASHER.value("INFO") == "f94e01ba67fd08e5c04dfee42ca6dfade43b9280b74fad9ea66f94090d247949"
    content = ValueHasher.content({"a": HASHER.value("1")}, ["b"])
    assert content == "a6643927e37cf11997d0a8e83fa2c12254568f80e2419b0812d26f1c181e55dd"


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
    b = "--b--"
    output = f"{b}F nginx.conf\n{body}{b}E ok\n{b}F gone\n{b}E absent\n{b}D ..2026_11_25_12_30_01.123456789\n"
    read = parse_files_output(output, b)
    assert read.contents == {"nginx.conf": body, "gone": None}
    assert read.data_dir_written_at == datetime(2026, 11, 25, 12, 30, 1, tzinfo=UTC)


def test_the_files_script_reads_each_file_once_in_a_real_shell(tmp_path):
    """A key named like an option is a file; an unreadable path is marked, the others still read."""
    (tmp_path / "-n").write_text("line one\nline two")  # no final newline: bytes come back as they are
    (tmp_path / "log_level").write_text("INFO\n")
    (tmp_path / "a-directory").mkdir()
    (tmp_path / "..2026_01_02_03_04_05.1").mkdir()
    (tmp_path / "..data").symlink_to("..2026_01_02_03_04_05.1")
    command = files_command(str(tmp_path), ["-n", "log_level", "gone", "a-directory"], "--boundary--")
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=10).stdout
    read = parse_files_output(output, "--boundary--")
    assert read.contents == {"-n": "line one\nline two", "log_level": "INFO\n", "gone": None}
    assert read.unreadable == {"a-directory"}
    assert read.data_dir_written_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert not read.swapped


SECRET = "s3cr3t-value"


@pytest.mark.parametrize(
    "output",
    [
        # What the old script printed for a key named -n (`cat "-n"` read nothing): sizes and bodies out of step.
        f"-n\n12\ntoken\n12\n{SECRET}\n\n..data=..2026_11_25_12_30_01.1\n",
        f"--b--F token\n{SECRET}",  # cut short: an exec that stopped midway
        f"--b--F token\n{SECRET}--b--E maybe\n--b--D \n",  # a trailer that is not ours
        f"{SECRET}--b--F token\n--b--E ok\n--b--D \n",  # bytes before the first record
        "",
    ],
    ids=["old-format", "cut-short", "bad-trailer", "leading-bytes", "empty"],
)
def test_a_malformed_files_output_is_refused_without_quoting_it(output):
    with pytest.raises(ProbeOutputError) as raised:
        parse_files_output(output, "--b--")
    assert SECRET not in str(raised.value)
    assert "token" not in str(raised.value)


def test_files_command_passes_paths_as_arguments_not_code():
    command = files_command("/etc/config", ["a; rm -rf /", "$(x)"])
    assert 'cat -- "$f"' in command[2], "a key named like an option (-n) is a file name"
    assert command[:2] == ["sh", "-c"]
    assert command[-2:] == ["a; rm -rf /", "$(x)"]
    assert "rm -rf" not in command[2]


@pytest.mark.parametrize(
    ("target", "expected"),
    [("..2026_01_02_03_04_05.999", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)), ("", None), ("..data", None)],
)
def test_parse_data_dir(target, expected):
    assert parse_data_dir(target) == expected


def test_a_volume_swapped_by_the_kubelet_during_the_read_is_flagged_in_a_real_shell(tmp_path):
    """The kubelet re-points ..data between two files of one read: the read may mix two contents. A FIFO as the
    first key lets the test swap ..data exactly while `cat` reads it."""
    for folder, level in (("..2026_01_02_03_04_05.1", "INFO\n"), ("..2026_01_02_03_05_00.2", "DEBUG\n")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "log_level").write_text(level)
    (tmp_path / "..data").symlink_to("..2026_01_02_03_04_05.1")
    (tmp_path / "log_level").symlink_to("..data/log_level")
    os.mkfifo(tmp_path / "first")

    def swap_while_read() -> None:
        with open(tmp_path / "first", "w") as fifo:  # blocks until `cat` opens it
            (tmp_path / "..data.tmp").symlink_to("..2026_01_02_03_05_00.2")
            os.rename(tmp_path / "..data.tmp", tmp_path / "..data")  # the kubelet's atomic swap
            fifo.write("old half\n")

    writer = threading.Thread(target=swap_while_read)
    writer.start()
    command = files_command(str(tmp_path), ["first", "log_level"], "--boundary--")
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=10).stdout
    writer.join(timeout=10)
    read = parse_files_output(output, "--boundary--")
    assert read.contents == {"first": "old half\n", "log_level": "DEBUG\n"}  # a mix: the old read, the new one
    assert read.swapped
    assert read.data_dir_written_at == datetime(2026, 1, 2, 3, 5, 0, tzinfo=UTC)


# A process that holds an inotify watch on a folder, as configmap-reload or inotifywait does.
INOTIFY_WATCHER = (
    "import ctypes, sys, time\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "fd = libc.inotify_init()\n"
    "assert libc.inotify_add_watch(fd, sys.argv[1].encode(), 0x80 | 0x100) > 0\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)
# A process that read its config at start and keeps the file open, as some apps keep a certificate.
HOLDS_OPEN = "import sys, time\nf = open(sys.argv[1])\nprint('ready', flush=True)\ntime.sleep(60)\n"


def kubelet_volume(root, generation="..2026_01_02_03_04_05.1", level="INFO\n"):
    """A volume laid out as the kubelet's atomic writer lays it: a timestamped folder, ..data, key links."""
    (root / generation).mkdir()
    (root / generation / "log_level").write_text(level)
    link = root / "..data.tmp"
    link.symlink_to(generation)
    os.rename(link, root / "..data")
    if not (root / "log_level").is_symlink():
        (root / "log_level").symlink_to("..data/log_level")


def started(code, *arguments):
    process = subprocess.Popen([sys.executable, "-c", code, *arguments], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    return process


def expected_without_watch(processes):
    return False if processes.readable == processes.seen else None


def probe_processes(root):
    command = files_command(str(root), ["log_level"], "--boundary--")
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    return parse_files_output(output, "--boundary--")


def test_a_process_watching_the_volume_is_seen_in_a_real_shell(tmp_path):
    kubelet_volume(tmp_path)
    before = probe_processes(tmp_path)
    assert before.processes is not None
    assert before.processes.seen >= 1
    # None watches this folder; False only where every process was readable (a process of another user
    # namespace, such as a sandbox's init, is not even to root).
    assert before.processes.watching is expected_without_watch(before.processes)
    watcher = started(INOTIFY_WATCHER, str(tmp_path))
    try:
        read = probe_processes(tmp_path)
    finally:
        watcher.kill()
    assert read.contents == {"log_level": "INFO\n"}
    assert read.processes is not None
    assert read.processes.watching is True
    assert not read.processes.holds_earlier_file


def test_a_process_holding_a_file_the_kubelet_swapped_away_is_seen_in_a_real_shell(tmp_path):
    kubelet_volume(tmp_path)
    holder = started(HOLDS_OPEN, str(tmp_path / "log_level"))
    try:
        kubelet_volume(tmp_path, "..2026_01_02_03_05_00.2", "DEBUG\n")
        shutil.rmtree(tmp_path / "..2026_01_02_03_04_05.1")  # the kubelet removes the earlier generation
        read = probe_processes(tmp_path)
    finally:
        holder.kill()
    assert read.contents == {"log_level": "DEBUG\n"}
    assert read.processes is not None
    assert read.processes.holds_earlier_file
    assert read.processes.watching is expected_without_watch(read.processes)


def test_a_process_holding_a_file_of_another_folder_is_not_this_volumes(tmp_path):
    volume, elsewhere = tmp_path / "volume", tmp_path / "elsewhere"
    volume.mkdir()
    elsewhere.mkdir()
    kubelet_volume(volume)
    kubelet_volume(elsewhere)
    holder = started(HOLDS_OPEN, str(elsewhere / "log_level"))
    try:
        kubelet_volume(elsewhere, "..2026_01_02_03_05_00.2", "DEBUG\n")
        shutil.rmtree(elsewhere / "..2026_01_02_03_04_05.1")
        read = probe_processes(volume)
    finally:
        holder.kill()
    assert read.processes is not None
    assert not read.processes.holds_earlier_file


B = "--b--"
FILES = f"{B}F log_level\nINFO\n{B}E ok\n{B}D ..2026_11_25_12_30_01.1\n"
DEV = os.makedev(254, 0)  # what stat's %d prints for 254:0; fdinfo prints it as fe00000


@pytest.mark.parametrize(
    ("records", "watching", "holds"),
    [
        (f"{B}V {DEV} 1000\n{B}W 3e8 fe00000\n{B}P 2 2\n", True, False),
        (f"{B}V {DEV} 1000\n{B}W 3e8 fe00001\n{B}P 2 2\n", False, False),  # same inode, another device
        (f"{B}V - 1000\n{B}W 3e8 fe00001\n{B}P 2 2\n", True, False),  # `ls -i` gives no device: inode alone
        (f"{B}V {DEV} 1000\n{B}P 2 2\n", False, False),
        (f"{B}V {DEV} 1000\n{B}P 3 2\n", None, False),  # a process of another user could not be read
        (f"{B}V {DEV} 1000\n{B}X\n{B}P 1 1\n", False, True),
        (f"{B}V {DEV} 1000\n{B}W 3e8 fe00000\n", None, None),  # cut before the closing record: nothing known
        (f"{B}V {DEV} 1000\n{B}W zz fe00000\n{B}P 2 2\n", False, False),  # an odd line counts for nothing
        ("", None, None),  # an older probe printed nothing about processes
    ],
    ids=["watch", "other-device", "no-device", "none", "unreadable", "holds", "cut", "odd-line", "absent"],
)
def test_what_a_probe_says_of_the_processes(records, watching, holds):
    processes = parse_files_output(FILES + records, B).processes
    if holds is None:
        assert processes is None
        return
    assert processes is not None
    assert processes.watching is watching
    assert processes.holds_earlier_file is holds
