"""Signals of the rollout domain. drift.apps connects what should follow (a snapshot after a completed
rollout), so this package never imports the Celery tasks that import it."""

from django.dispatch import Signal

# Sent after the transaction that recorded a completed rollout commits; kwargs: rollout.
rollout_completed = Signal()
