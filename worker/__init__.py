"""The Celery side: the app and thin tasks (ids in, one call into distributor)."""
