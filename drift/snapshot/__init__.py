"""Collection: one snapshot cycle against one cluster, in four parts.

- `listing`: LIST what Kubernetes holds, hashing Secret values as they arrive;
- `recording`: write what changed (versions, pods, container runs) and nothing else;
- `rekeying`: after a hash key rotation, re-key what is stored instead of seeing every source change;
- `probing`: exec into containers whose config could have changed, and read what they hold;
- `cycle`: the run record around them, which always ends succeeded, partial or failed."""

from drift.snapshot.cycle import snapshot
from drift.snapshot.listing import SnapshotFailed

__all__ = ["SnapshotFailed", "snapshot"]
