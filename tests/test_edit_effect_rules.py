"""Table-driven tests for drift.verdicts.rules.edit_effect: what an edit would do to each consumer, before
anyone makes it. Unless a row says otherwise the ConfigMap is mutable, nothing is declared about the app, no
probe saw a file watch, this cluster's median measured refresh delay is 58 s and the kubelet's window 120 s."""

from datetime import UTC, datetime, timedelta

import pytest

from drift.verdicts.rules import Consumer, EditOutcome, Mode, Reload, ReloadFacts, Source, SourceVersion, edit_effect
from drift.vocabulary import EditEffect

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
VERSIONS = (SourceVersion("1", {"level": "h"}, T0, "u1"),)
MUTABLE = Source("ConfigMap", "app-config", True, VERSIONS)
IMMUTABLE = Source("ConfigMap", "app-config", True, VERSIONS, immutable=True)
NOTHING = ReloadFacts()
RESTART, REFRESHES, NEVER = EditEffect.RESTART, EditEffect.REFRESHES, EditEffect.NEVER


@pytest.mark.parametrize(
    "source, mode, reload, watching, median, expected",
    [
        (MUTABLE, Mode.ENV, NOTHING, None, 58, (RESTART, "env is read when the container starts")),
        (MUTABLE, Mode.ENV_FROM, NOTHING, None, 58, (RESTART, "env is read when the container starts")),
        (MUTABLE, Mode.SUBPATH, NOTHING, None, 58,
         (RESTART, "a subPath file is never refreshed")),
        # A volume whose app is not known to re-read its file: the file refreshes, the app needs a restart.
        (MUTABLE, Mode.VOLUME, NOTHING, None, 58,
         (RESTART, "the file refreshes in about 58 s (this cluster's median), but the app reads it only at start "
                   "(no file watch seen, nothing declared)")),
        (MUTABLE, Mode.VOLUME, ReloadFacts(declared=Reload.RESTART, declared_by="olga on the workload page"), None, 58,
         (RESTART, "the file refreshes in about 58 s (this cluster's median), but the app reads it only at start "
                   "(declared restart by olga on the workload page)")),
        # A probe saw a process watch the volume: it refreshes by itself, in about the measured median.
        (MUTABLE, Mode.VOLUME, NOTHING, True, 58,
         (REFRESHES, "in about 58 s (this cluster's median); the app re-reads it (a process of it "
                     "watches the volume)")),
        # Declared hot, or a reloader sidecar; with no delay measured yet, the kubelet's window.
        (MUTABLE, Mode.PROJECTED, ReloadFacts(declared=Reload.HOT, declared_by="its annotation"), False, None,
         (REFRESHES, "within the kubelet's window (up to 120 s); the app re-reads it (declared hot by its "
                     "annotation)")),
        (MUTABLE, Mode.VOLUME, ReloadFacts(sidecar="configmap-reload"), None, 30.4,
         (REFRESHES, "in about 30 s (this cluster's median); the app re-reads it (a config-reloader "
                     "sidecar (configmap-reload) signals the app)")),
        # A restart tool on the owner says a restart (Reloader will do it).
        (MUTABLE, Mode.VOLUME, ReloadFacts(restart_tool="Reloader (reloader.stakater.com/auto)"), None, 58,
         (RESTART, "the file refreshes in about 58 s (this cluster's median), but the app reads it only at start "
                   "(Reloader (reloader.stakater.com/auto) on the workload says the app needs a restart)")),
        # Immutable: never, whatever the mode or what the app does.
        (IMMUTABLE, Mode.ENV, NOTHING, None, 58,
         (NEVER, "ConfigMap app-config is immutable (the API server refuses edits): make a new one and roll "
                 "out to it")),
        (IMMUTABLE, Mode.VOLUME, NOTHING, True, 58,
         (NEVER, "ConfigMap app-config is immutable (the API server refuses edits): make a new one and roll "
                 "out to it")),
    ],
)  # fmt: skip
def test_edit_effect(source, mode, reload, watching, median, expected):
    found = edit_effect(source, Consumer(mode), reload, watching, median, timedelta(seconds=120))
    assert found == EditOutcome(*expected)
