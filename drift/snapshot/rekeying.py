"""After a hash key rotation: re-key what is stored instead of seeing every source change.

A listed value x is hashed under the current key N and under each previous key K still found in stored rows,
so the cycle knows pairs h_K(x) -> h_N(x) for every value the cluster holds now. Replacing h_K(x) by h_N(x)
in every stored version and observation hashed under K keeps every equality between stored hashes as it was
(same value, same hash; different values, different hashes), so verdicts do not move, an unchanged source
needs no new version, and the audit log says nothing changed. Hashes of values no longer in the cluster
stay as they are: they still differ from every current hash, which is all the rules ask of them."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from drift.hashing import content_hash
from drift.models import Cluster, Observation, SourceVersion
from drift.snapshot.listing import Listing

log = logging.getLogger(__name__)
BATCH_SIZE = 500


def stored_key_ids(cluster: Cluster, current_key_id: str) -> set[str]:
    """Ids of the hash keys other than the current one that stored versions of this cluster were made with
    (rows without an id predate key ids and count as current)."""
    return set(
        SourceVersion.objects.filter(source__cluster=cluster)
        .exclude(hash_key_id__in=[current_key_id, ""])
        .values_list("hash_key_id", flat=True)
        .distinct()
    )


def rekey(cluster: Cluster, listing: Listing, current_key_id: str, known_previous: Iterable[str]) -> int:
    """Translate the rows hashed under each known previous key; returns the number of rows rewritten."""
    rewritten = 0
    for key_id in known_previous:
        translation: dict[str, str] = {}
        for listed in listing.sources:
            translation.update(listed.translations.get(key_id, {}))
        rewritten += _rekey_versions(cluster, key_id, current_key_id, translation)
        rewritten += _rekey_observations(cluster, key_id, current_key_id, translation)
        log.info("cluster %s: re-keyed %d rows from hash key %s to %s", cluster.name, rewritten, key_id, current_key_id)
    return rewritten


def _translated(key_hashes: dict[str, str | None], translation: dict[str, str]) -> tuple[dict[str, str | None], bool]:
    """The hashes under the new key where known, and whether every hash was known."""
    result = {key: (translation.get(value, value) if value is not None else None) for key, value in key_hashes.items()}
    complete = all(value is None or value in translation for value in key_hashes.values())
    return result, complete


def _rekey_versions(cluster: Cluster, old: str, new: str, translation: dict[str, str]) -> int:
    versions = list(
        SourceVersion.objects.filter(source__cluster=cluster, hash_key_id=old).only(
            "id", "key_hashes", "binary_keys", "content_hash", "hash_key_id"
        )
    )
    for version in versions:
        key_hashes = {key: translation.get(value, value) for key, value in version.key_hashes.items()}
        complete = all(value in translation for value in version.key_hashes.values())
        version.key_hashes = key_hashes
        if complete:
            # The same content under the new key: what the listing computes for it, so no new version.
            version.content_hash = content_hash(key_hashes, version.binary_keys)
        version.hash_key_id = new
    SourceVersion.objects.bulk_update(versions, ["key_hashes", "content_hash", "hash_key_id"], batch_size=BATCH_SIZE)
    return len(versions)


def _rekey_observations(cluster: Cluster, old: str, new: str, translation: dict[str, str]) -> int:
    observations = list(
        Observation.objects.filter(consumption__container__pod__cluster=cluster, hash_key_id=old).only(
            "id", "key_hashes", "hash_key_id"
        )
    )
    for observation in observations:
        observation.key_hashes, _ = _translated(observation.key_hashes, translation)
        observation.hash_key_id = new
    Observation.objects.bulk_update(observations, ["key_hashes", "hash_key_id"], batch_size=BATCH_SIZE)
    return len(observations)
