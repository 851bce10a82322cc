"""Two tasks, one per queue, each running one work item and then moving its campaign on."""

from __future__ import annotations

from functools import cache

from contract import BackendUnavailableError
from services.campaigns.execute import execute_item
from services.campaigns.progress import fail
from services.runtime import Runtime
from services.settings import get_settings
from services.store import Store
from workers.app import app
from workers.dispatch import dispatch_item_campaign


@cache
def worker_state() -> tuple[Store, Runtime]:
    """Per worker process, created lazily after the fork: one store, one runtime whose models
    load on first use (so CUDA is never touched before forking)."""
    settings = get_settings()
    return Store(settings.results_url), Runtime(settings)


class ItemTask(app.Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        """Retries used up (or an unexpected error): record it on the item so the stage goes on."""
        store, _ = worker_state()
        fail(store, args[0], f"{type(exc).__name__}: {exc}")
        dispatch_item_campaign(store, args[0])


def redelivered(task) -> bool:
    """True when the broker restored this message because the worker holding it was lost."""
    return bool((task.request.delivery_info or {}).get("redelivered"))


@app.task(name="lookups.gpu.run_item", base=ItemTask, bind=True)
def run_gpu_item(self, item_id: int) -> str:
    store, runtime = worker_state()
    outcome = execute_item(store, runtime, item_id, takeover=redelivered(self))
    dispatch_item_campaign(store, item_id)
    return outcome


@app.task(name="lookups.llm.run_item", base=ItemTask, autoretry_for=(BackendUnavailableError,),
          retry_backoff=True, retry_backoff_max=300, retry_jitter=True, max_retries=5, bind=True)
def run_llm_item(self, item_id: int) -> str:
    store, runtime = worker_state()
    outcome = execute_item(store, runtime, item_id, retryable=(BackendUnavailableError,),
                           takeover=redelivered(self))
    dispatch_item_campaign(store, item_id)
    return outcome
