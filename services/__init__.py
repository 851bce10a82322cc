"""The method itself: pure functions over a loaded subject model and data.

No Celery, no HTTP here; workers and the API call into this package, never the reverse.
"""
