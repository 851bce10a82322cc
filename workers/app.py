"""The Celery app: routing by task name, late acks, prefetch 1, time limits under the
broker's visibility timeout."""

from celery import Celery

from services.settings import get_settings


def make_app() -> Celery:
    settings = get_settings()
    if settings.task_time_limit_s >= settings.visibility_timeout_s:
        raise ValueError("LOOKUPS_TASK_TIME_LIMIT_S must stay below LOOKUPS_VISIBILITY_TIMEOUT_S, "
                         "or Redis redelivers tasks that are still running")
    app = Celery("lookups", broker=settings.broker_url, backend=settings.broker_url,
                 include=["workers.tasks", "workers.jobs"])
    app.conf.update(
        task_routes={"lookups.gpu.*": {"queue": "gpu"}, "lookups.llm.*": {"queue": "llm"}},
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_time_limit_s,
        task_time_limit=settings.task_time_limit_s,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
    )
    return app


app = make_app()
