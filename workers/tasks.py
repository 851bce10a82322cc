"""Two tasks, one per queue, each running one work item and then moving its campaign on.

A transient error (``services.transient``: the store or broker briefly away, a start-up race, an
LLM backend unavailable after its own retries) is retried by Celery with doubling waits, up to
``item_max_attempts`` tries; the last try, or any other error, marks the item failed.
"""

from __future__ import annotations

import threading

from services.campaigns.execute import execute_item
from services.campaigns.lifecycle import fail
from services.runtime import Runtime
from services.settings import get_settings
from services.store import Store
from services.transient import describe, is_transient, retry_delay
from workers.app import app
from workers.dispatch import dispatch_item_campaign

_state: tuple[Store, Runtime] | None = None
_state_lock = threading.Lock()


def worker_state() -> tuple[Store, Runtime]:
    """Per worker process, created lazily after the fork (once, also under a threads pool): one
    store, one runtime whose models load on first use (so CUDA is never touched before forking)
    and whose LLM rate limits are counted in the broker's Redis with every other worker's."""
    global _state
    with _state_lock:
        if _state is None:
            settings = get_settings()
            _state = Store(settings.results_url), Runtime(settings, rate_redis_url=settings.broker_url)
        return _state


class ItemTask(app.Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        """An error the item could not record itself (the store away at its last try, a bug
        outside the stage's work): record it on the item so the stage goes on."""
        store, _ = worker_state()
        fail(store, args[0], describe(exc))
        dispatch_item_campaign(store, args[0])


def redelivered(task) -> bool:
    """True when the broker restored this message because the worker holding it was lost."""
    return bool((task.request.delivery_info or {}).get("redelivered"))


def last_try(task) -> bool:
    return task.request.retries + 1 >= get_settings().item_max_attempts


def retry_if_transient(task, error: Exception) -> None:
    """Raise Celery's ``Retry`` (the task runs again after a doubling wait) for a transient
    error while tries are left; otherwise return, and the caller lets the error fail the task."""
    settings = get_settings()
    if is_transient(error) and not last_try(task):
        countdown = retry_delay(task.request.retries + 1, settings.item_retry_initial_s, settings.item_retry_max_s)
        raise task.retry(exc=error, countdown=countdown, max_retries=settings.item_max_attempts - 1)


def run_item(task, item_id: int) -> str:
    try:
        store, runtime = worker_state()
        # A retry's item was handed back by this task's previous try (or is still marked
        # running, if the store was away then): nobody else holds it.
        outcome = execute_item(store, runtime, item_id, takeover=redelivered(task) or task.request.retries > 0,
                               retry_transient=not last_try(task))
    except Exception as error:
        retry_if_transient(task, error)
        raise
    dispatch_item_campaign(store, item_id)
    return outcome


@app.task(name="lookups.gpu.run_item", base=ItemTask, bind=True)
def run_gpu_item(self, item_id: int) -> str:
    return run_item(self, item_id)


@app.task(name="lookups.llm.run_item", base=ItemTask, bind=True)
def run_llm_item(self, item_id: int) -> str:
    return run_item(self, item_id)
