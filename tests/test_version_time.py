"""When a version's content appeared (SourceVersion.appeared_at): managedFields' whole-second time where it fits
between the previous sighting and this one, else when Driftwatch first saw it. Pure: unsaved rows."""

from datetime import UTC, datetime, timedelta

import pytest

from drift.models import SourceVersion

T = datetime(2026, 12, 1, 9, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("modified", "first_seen", "previous_seen", "appeared"),
    [
        pytest.param(None, T + 5 * S, T, T + 5 * S, id="no-managed-fields"),
        pytest.param(T + 2 * S, T + 5 * S, None, T + 2 * S, id="first-version"),
        pytest.param(T + 2 * S, T + 5 * S, T, T + 2 * S, id="between-sightings"),
        pytest.param(T + 6 * S, T + 5 * S, T, T + 5 * S, id="after-this-sighting-skewed"),
        pytest.param(T - 3 * S, T + 5 * S, T, T + 5 * S, id="an-older-writes-time"),
        pytest.param(T - S, T + 5 * S, T, T + 5 * S, id="the-second-before-the-last-sighting"),
        # The write landed in the second of the previous sighting, after it (whole seconds floor the time): the
        # content appeared after that sighting, not when the next one came (which had hidden a rollout right
        # after a restore from the version's "what did it do").
        pytest.param(T, T + 5 * S, T + S * 0.7, T + S * 0.7, id="same-second-as-the-last-sighting"),
    ],
)
def test_when_a_version_appeared(modified, first_seen, previous_seen, appeared):
    version = SourceVersion(modified_at=modified, first_seen=first_seen)
    assert version.appeared_at(previous_seen) == appeared
