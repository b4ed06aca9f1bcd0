"""Notifications from Driftwatch itself: rules judged after each snapshot open and close episodes (`evaluate`),
and each notice is delivered by its own Celery task with retries and backoff (`deliver`)."""
