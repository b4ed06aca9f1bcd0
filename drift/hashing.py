"""The one recipe for value and content hashes, used by collection and by rollouts.

Values (ConfigMap and Secret values, what a container holds) are hashed with HMAC-SHA256 under a key of
Driftwatch's own, so a database dump does not let anyone test guesses of a Secret value offline. The key is
`DRIFTWATCH_HASH_KEY`, or one derived from `SECRET_KEY` when that is not set (as before the setting existed).

Rotation: `DRIFTWATCH_HASH_KEYS_PREVIOUS` lists keys used before. Every stored version and observation
records the short id of the key that hashed it (`hash_key_id`). When the current key is new, the next
snapshot hashes the listed content with the previous key as well, recognises a source whose content did not
change, and re-keys what is stored about it (drift.snapshot.rekeying): no new version, no audit entry, no
consumer turns stale. The key id is a one-way digest of the key: it names a key without revealing it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from django.conf import settings

from drift.vocabulary import SourceKind

KEY_ID_LENGTH = 12


class ValueHasher:
    """HMAC-SHA256 of values under one key. The derivation from the key material never changes: the same
    material gives the same hashes as every earlier release."""

    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(b"driftwatch.value-hash:" + secret_key.encode()).digest()
        self.key_id = hashlib.sha256(b"driftwatch.hash-key-id:" + self._key).hexdigest()[:KEY_ID_LENGTH]

    def __repr__(self) -> str:
        return f"ValueHasher(key_id={self.key_id})"  # never the key

    def value(self, value: bytes | str) -> str:
        raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        return hmac.new(self._key, raw, hashlib.sha256).hexdigest()

    @staticmethod
    def content(key_hashes: Mapping[str, str], binary_keys: Iterable[str] = ()) -> str:
        """One hash for a whole content: the sorted key hashes (values never enter twice)."""
        return content_hash(key_hashes, binary_keys)


def raw_values(kind: SourceKind, item: Mapping[str, Any]) -> Iterator[tuple[str, bytes, bool]]:
    """(key, raw bytes, binary) for every key of a ConfigMap or Secret as the API returns it: what the value
    hashes are taken of, by the snapshot and by a rollout's config hash alike."""
    for key, value in (item.get("data") or {}).items():
        raw = base64.b64decode(value) if kind == SourceKind.SECRET else value.encode("utf-8", "surrogateescape")
        yield key, raw, False
    for key, value in (item.get("binaryData") or {}).items():
        yield key, base64.b64decode(value), True


def content_hash(key_hashes: Mapping[str, str], binary_keys: Iterable[str] = ()) -> str:
    """The content hash of a ConfigMap or Secret from its key hashes: what SourceVersion.content_hash holds
    and what a rollout's config hash is built from."""
    canonical = json.dumps({"keys": dict(sorted(key_hashes.items())), "binary": sorted(binary_keys)})
    return hashlib.sha256(canonical.encode()).hexdigest()


def _current_material() -> str:
    return getattr(settings, "DRIFTWATCH_HASH_KEY", "") or settings.SECRET_KEY


def current_hasher() -> ValueHasher:
    """The hasher every new hash is made with."""
    return ValueHasher(_current_material())


def previous_hashers() -> dict[str, ValueHasher]:
    """Hashers of the keys used before the current one, by key id. When a dedicated key is set, the key
    derived from SECRET_KEY (the default until then) is one of them without being listed."""
    materials = list(getattr(settings, "DRIFTWATCH_HASH_KEYS_PREVIOUS", []))
    if getattr(settings, "DRIFTWATCH_HASH_KEY", ""):
        materials.append(settings.SECRET_KEY)
    current = current_hasher().key_id
    hashers = (ValueHasher(material) for material in materials if material)
    return {hasher.key_id: hasher for hasher in hashers if hasher.key_id != current}
