"""What an exec into a container asks and how its answer becomes hashes. Pure: commands in, hashes out.

Values are hashed by drift.hashing (HMAC-SHA256 under Driftwatch's hash key), the same recipe for
ConfigMap values, so what a container holds can be compared with any stored version. `ValueHasher` is
re-exported here for the modules that import it from this one."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from drift.hashing import ValueHasher
from drift.vocabulary import Mode

__all__ = ["ValueHasher"]

ENV_COMMAND = ["cat", "/proc/self/environ"]
ENV_FALLBACK_COMMAND = ["env"]
DATA_DIR_PATTERN = re.compile(r"\.\.(\d{4})_(\d{2})_(\d{2})_(\d{2})_(\d{2})_(\d{2})\.\d+")

# Reads each file once. First the target of ..data (the kubelet's timestamped folder, "S "); for each path: a
# header line (boundary, "F ", the path), the file's bytes, then a trailer line (boundary, "E ",
# ok|absent|unreadable); at the end the target of ..data again ("D "). The kubelet swaps ..data atomically,
# but between two files: when the two targets differ, the files may mix two contents, and the read is
# thrown away (and retried) rather than judged. The boundary is random per probe, so no file can contain it.
# `cat --` so that a key named like an option (`-n`) is read as a file. `cat` and `readlink` exist in every
# image that has a shell.
#
# Then what the container's processes do with the volume (a new file on disk is not new config in the app):
# "V dev ino" for the mount folder, the ..data folder and each file (`stat`, or `ls -i` without the device where
# there is no `stat`); "W ino sdev" (hex, as /proc/PID/fdinfo prints them) for every inotify watch a process
# of the container holds; "X" for every file of an earlier ..YYYY_MM_DD generation of this volume a process
# still holds open (deleted when the kubelet swapped it); last "P seen readable": how many processes there were
# and whose file descriptors this exec's user could read (another user's need CAP_SYS_PTRACE).
FILES_SCRIPT = r"""cd -- "$1" 2>/dev/null || { echo "no such directory" >&2; exit 3; }
m=$1
b="$2"
shift 2
printf '%sS %s\n' "$b" "$(readlink ..data 2>/dev/null)"
for f in "$@"; do
  printf '%sF %s\n' "$b" "$f"
  if [ ! -e "$f" ]; then s=absent; elif cat -- "$f" 2>/dev/null; then s=ok; else s=unreadable; fi
  printf '%sE %s\n' "$b" "$s"
done
printf '%sD %s\n' "$b" "$(readlink ..data 2>/dev/null)"
{ stat -L -c '%d %i' -- . ..data "$@" 2>/dev/null || ls -idL -- . ..data "$@" 2>/dev/null | while read -r i rest; do
  echo "- $i"; done; } | while read -r dev ino; do printf '%sV %s %s\n' "$b" "$dev" "$ino"; done
n=0
r=0
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = "$$" ] && continue
  [ -d "$d/fd" ] || continue
  # A process that ended meanwhile is not counted; one whose descriptors this user may not read is.
  l=$(ls -l "$d/fd" 2>/dev/null) || { [ -d "$d/fd" ] && n=$((n+1)); continue; }
  n=$((n+1))
  r=$((r+1))
  printf '%s\n' "$l" | while IFS= read -r line; do
    case $line in
      *" -> anon_inode:inotify")
        x=${line% -> *}
        while read -r k w i s rest; do
          [ "$k" = inotify ] && printf '%sW %s %s\n' "$b" "${i#ino:}" "${s#sdev:}"
        done < "$d/fdinfo/${x##* }" 2>/dev/null ;;
      *" -> $m/..2"*" (deleted)") printf '%sX\n' "$b" ;;
    esac
  done
done
printf '%sP %s %s\n' "$b" "$n" "$r"
"""


def parse_environ(output: str) -> dict[str, str]:
    """Parse NUL-separated /proc/self/environ, or newline-separated `env` output as a fallback."""
    separator = "\0" if "\0" in output else "\n"
    pairs = (entry.split("=", 1) for entry in output.split(separator) if "=" in entry)
    return {name: value for name, value in pairs}


@dataclass(frozen=True)
class EnvExpectation:
    """How the keys of one source appear as variables in one container."""

    mode: str  # Mode.ENV or Mode.ENV_FROM
    env_names: Mapping[str, str]  # variable -> key (env)
    prefix: str = ""
    shadowed: frozenset[str] = frozenset()


def observed_env_hashes(
    expectation: EnvExpectation, environment: Mapping[str, str], known_keys: Iterable[str], hasher: ValueHasher
) -> dict[str, str | None]:
    """Key -> hash of what the container holds (None: the variable is absent)."""
    if expectation.mode == Mode.ENV:
        return {
            key: hasher.value(environment[name]) if name in environment else None
            for name, key in expectation.env_names.items()
        }
    observed: dict[str, str | None] = {}
    for key in known_keys:
        name = expectation.prefix + key
        if name in expectation.shadowed:
            continue  # the container's own env wins; this key cannot be seen
        observed[key] = hasher.value(environment[name]) if name in environment else None
    return observed


def new_boundary() -> str:
    return f"--driftwatch-{secrets.token_hex(16)}--"


def files_command(mount_path: str, relative_paths: Iterable[str], boundary: str = "") -> list[str]:
    """Paths travel as arguments, never as code."""
    return ["sh", "-c", FILES_SCRIPT, "driftwatch-probe", mount_path, boundary or new_boundary(), *relative_paths]


class ProbeOutputError(ValueError):
    """A probe's output is not what its command prints. The message never quotes the output: it may hold
    Secret bytes."""


@dataclass(frozen=True)
class Processes:
    """What a file probe saw of the container's processes and the volume it read."""

    volume_inodes: frozenset[tuple[int | None, int]] = frozenset()  # (device as the kernel encodes it, inode)
    watched: frozenset[tuple[int, int]] = frozenset()  # inotify watches: (device, inode)
    holds_earlier_file: bool = False
    seen: int = 0
    readable: int = 0

    @property
    def watching(self) -> bool | None:
        """A process watches the volume's folder or files (True); none of them does and every process was read
        (False); or some processes could not be read, so nobody can say (None)."""
        for watched_device, watched_inode in self.watched:
            if any(inode == watched_inode and device in (None, watched_device) for device, inode in self.volume_inodes):
                return True
        if self.seen and self.readable == self.seen and self.volume_inodes:
            return False
        return None


@dataclass(frozen=True)
class FilesRead:
    contents: dict[str, str | None]  # relative path -> text (None: absent)
    data_dir_written_at: datetime | None
    unreadable: frozenset[str] = frozenset()  # paths that exist but could not be read
    swapped: bool = False  # the kubelet re-pointed ..data while the files were read
    processes: Processes | None = None  # None: the probe printed nothing about them


def parse_files_output(output: str, boundary: str) -> FilesRead:
    """Parse FILES_SCRIPT output, one file after the other, without trusting any of it."""
    if not boundary or boundary not in output:
        raise ProbeOutputError("the file probe printed no record (its shell or `cat` may be missing)")
    contents: dict[str, str | None] = {}
    unreadable: set[str] = set()
    written_at = None
    swapped = False
    processes: Processes | None = None
    parts = output.split(boundary)
    if parts[0].strip():
        raise ProbeOutputError("the file probe printed something before its first record")
    index = 1
    started_on: str | None = None
    if len(parts) > 1 and parts[1].startswith("S "):
        started_on = parts[1][2:].strip()
        index = 2
    while index < len(parts):
        part = parts[index]
        if part.startswith("D "):
            ended_on = part[2:].strip()
            written_at = parse_data_dir(ended_on)
            swapped = started_on is not None and started_on != ended_on
            processes = _parse_processes(parts[index + 1 :])
            break
        header, newline, body = part.partition("\n")
        if not header.startswith("F ") or not newline or index + 1 >= len(parts):
            raise ProbeOutputError(f"record {index} of the file probe is cut or malformed")
        trailer = parts[index + 1]
        status = trailer[2:].strip() if trailer.startswith("E ") else ""
        name = header[2:]
        if status == "ok":
            contents[name] = body
        elif status == "absent":
            contents[name] = None
        elif status == "unreadable":
            unreadable.add(name)
        else:
            raise ProbeOutputError(f"record {index} of the file probe has no valid end")
        index += 2
    else:
        raise ProbeOutputError("the file probe output ends before its ..data line (cut short?)")
    return FilesRead(
        contents=contents, data_dir_written_at=written_at, unreadable=frozenset(unreadable), swapped=swapped,
        processes=processes,
    )  # fmt: skip


def kernel_device(st_dev: int) -> int:
    """A device number as /proc/PID/fdinfo prints it (major << 20 | minor), from `stat`'s %d."""
    return (os.major(st_dev) << 20) | os.minor(st_dev)


def _parse_processes(records: list[str]) -> Processes | None:
    """The V, W, X and P records after the ..data line; None without the closing P record (a probe cut short, or
    one that could not look), since a partial list of processes proves nothing about the others."""
    volume: set[tuple[int | None, int]] = set()
    watched: set[tuple[int, int]] = set()
    holds = False
    for record in records:
        fields = record.split()
        try:
            if fields[:1] == ["V"] and len(fields) == 3:
                device = None if fields[1] == "-" else kernel_device(int(fields[1]))
                volume.add((device, int(fields[2])))
            elif fields[:1] == ["W"] and len(fields) == 3:
                watched.add((int(fields[2], 16), int(fields[1], 16)))
            elif fields[:1] == ["X"]:
                holds = True
            elif fields[:1] == ["P"] and len(fields) == 3:
                seen, readable = int(fields[1]), int(fields[2])
                return Processes(frozenset(volume), frozenset(watched), holds, seen, min(readable, seen))
        except ValueError:
            continue  # an odd line tells nothing; the others still count
    return None


def parse_data_dir(target: str) -> datetime | None:
    """The kubelet's atomic writer names its folders ..YYYY_MM_DD_HH_MM_SS.NNN (UTC)."""
    match = DATA_DIR_PATTERN.search(target)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
