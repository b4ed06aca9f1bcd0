"""What an exec into a container asks and how its answer becomes hashes. Pure: commands in, hashes out.

Values are hashed with a key derived from SECRET_KEY (HMAC-SHA256), so a database dump does not let
anyone test guesses of a Secret value offline. The same function hashes ConfigMap values, so what a
container holds can be compared with any stored version."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

ENV_COMMAND = ["cat", "/proc/self/environ"]
ENV_FALLBACK_COMMAND = ["env"]
DATA_DIR_PATTERN = re.compile(r"\.\.(\d{4})_(\d{2})_(\d{2})_(\d{2})_(\d{2})_(\d{2})\.\d+")

# Prints, for each file: its name, a newline, its size in bytes, a newline, its bytes; then the target
# of ..data (the kubelet's timestamped folder). `wc` and `cat` exist in every image that has a shell.
FILES_SCRIPT = r"""cd "$1" 2>/dev/null || { echo "no such directory: $1" >&2; exit 3; }
shift
for f in "$@"; do
  if [ -f "$f" ]; then printf '%s\n' "$f"; wc -c < "$f" | tr -d ' '; cat "$f"; else printf '%s\n-1\n' "$f"; fi
done
printf '\n..data=%s\n' "$(readlink ..data 2>/dev/null)"
"""


class ValueHasher:
    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(b"driftwatch.value-hash:" + secret_key.encode()).digest()

    def value(self, value: bytes | str) -> str:
        raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        return hmac.new(self._key, raw, hashlib.sha256).hexdigest()

    @staticmethod
    def content(key_hashes: Mapping[str, str], binary_keys: Iterable[str] = ()) -> str:
        """One hash for a whole content: the sorted key hashes (values never enter twice)."""
        canonical = json.dumps({"keys": dict(sorted(key_hashes.items())), "binary": sorted(binary_keys)})
        return hashlib.sha256(canonical.encode()).hexdigest()


def parse_environ(output: str) -> dict[str, str]:
    """Parse NUL-separated /proc/self/environ, or newline-separated `env` output as a fallback."""
    separator = "\0" if "\0" in output else "\n"
    pairs = (entry.split("=", 1) for entry in output.split(separator) if "=" in entry)
    return {name: value for name, value in pairs}


@dataclass(frozen=True)
class EnvExpectation:
    """How the keys of one source appear as variables in one container."""

    mode: str  # env | envFrom
    env_names: Mapping[str, str]  # variable -> key (env)
    prefix: str = ""
    shadowed: frozenset[str] = frozenset()


def observed_env_hashes(
    expectation: EnvExpectation, environment: Mapping[str, str], known_keys: Iterable[str], hasher: ValueHasher
) -> dict[str, str | None]:
    """Key -> hash of what the container holds (None: the variable is absent)."""
    if expectation.mode == "env":
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


def files_command(mount_path: str, relative_paths: Iterable[str]) -> list[str]:
    return ["sh", "-c", FILES_SCRIPT, "driftwatch-probe", mount_path, *relative_paths]


@dataclass(frozen=True)
class FilesRead:
    contents: dict[str, str | None]  # relative path -> text (None: absent)
    data_dir_written_at: datetime | None


def parse_files_output(output: str) -> FilesRead:
    """Parse FILES_SCRIPT output. Sizes are in bytes; the text arrives decoded, so we count bytes."""
    contents: dict[str, str | None] = {}
    data = output.encode("utf-8", "surrogateescape")
    position = 0
    while position < len(data):
        if data.startswith(b"\n..data=", position):
            break
        name_end = data.index(b"\n", position)
        size_end = data.index(b"\n", name_end + 1)
        name = data[position:name_end].decode("utf-8", "replace")
        size = int(data[name_end + 1 : size_end])
        if size < 0:
            contents[name] = None
            position = size_end + 1
            continue
        body = data[size_end + 1 : size_end + 1 + size]
        contents[name] = body.decode("utf-8", "surrogateescape")
        position = size_end + 1 + size
    marker = data.find(b"\n..data=", position)
    written_at = None
    if marker >= 0:
        target = data[marker + len(b"\n..data=") :].decode("utf-8", "replace").strip()
        written_at = parse_data_dir(target)
    return FilesRead(contents=contents, data_dir_written_at=written_at)


def parse_data_dir(target: str) -> datetime | None:
    """The kubelet's atomic writer names its folders ..YYYY_MM_DD_HH_MM_SS.NNN (UTC)."""
    match = DATA_DIR_PATTERN.search(target)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
