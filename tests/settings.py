"""The settings the test suite runs with: production settings (DEBUG off) with a key of the tests' own, since
Driftwatch refuses the published development key when DEBUG is off. Set in the environment, so the Celery
workers and `manage.py` processes the tests start use the same key (and so the same value hashes)."""

import os

os.environ.setdefault("SECRET_KEY", "driftwatch-test-suite-key-only-for-tests-never-deployed-0123456789")

from dashboard.settings import *  # noqa: F403
