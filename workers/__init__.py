"""Celery workers: queue "gpu" (scan, truncate, attribute, ablate) and queue "llm" (explain,
classify, score). Tasks carry work-item ids only; results go to the store."""
