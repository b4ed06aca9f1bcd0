"""The settings the test suite runs with: production settings (DEBUG off) with a key of the tests' own, since
Driftwatch refuses the published development key when DEBUG is off. Set in the environment, so the Celery
workers and `manage.py` processes the tests start use the same key (and so the same value hashes)."""

import os

# The tests' webhook receivers listen on loopback, so the suite allows it as an admin would (the default allows no
# inward range: tests/test_notify_delivery.py sets it back to none to prove it).
os.environ.setdefault("DRIFTWATCH_NOTIFY_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
os.environ.setdefault("SECRET_KEY", "driftwatch-test-suite-key-only-for-tests-never-deployed-0123456789")

from dashboard.settings import *  # noqa: F403
