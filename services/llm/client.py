"""The one call path for every LLM request.

Order per request: response cache → budget reservation → retries with exponential backoff and
jitter (honouring ``Retry-After``), each attempt under the backend's concurrency limit and rate
limits → budget settled → cache write → ledger row.
Every request, hit, success or failure, leaves one ledger row.

The cache key is everything that shapes an answer: backend, model, endpoint, the backend's
answer options (temperature, ...), prompt, max_tokens, whether logprobs are asked for and, where
the backend constrains its answer to them, the request's choices.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import datetime

from lookups import (
    BackendError,
    BackendUnavailableError,
    BudgetExceededError,
    CallRecord,
    Completion,
    InvalidInputError,
    LLMRequest,
    redact,
)
from services.llm.budget import Budget
from services.llm.cost import completion_cost, cost_usd, estimate_tokens, price, price_hint
from services.llm.ratelimit import RateLimiter, limiter_for
from services.llm.schemas import CostEstimate, LLMResponse
from services.llm.store import LLMStore, default_url
from services.settings import Settings, get_settings

log = logging.getLogger(__name__)


_slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_pools: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_slots_lock = threading.Lock()
# Cache keys being answered in this process now, and the event set when the answer is stored.
_in_flight: dict[str, threading.Event] = {}
_in_flight_lock = threading.Lock()


def backend_slots(backend) -> threading.BoundedSemaphore:
    """One semaphore per backend object, so every client of a process's backend (one per work
    item) shares its ``max_concurrency``."""
    with _slots_lock:
        if backend not in _slots:
            _slots[backend] = threading.BoundedSemaphore(backend.max_concurrency)
        return _slots[backend]


def backend_pool(backend) -> ThreadPoolExecutor:
    """One thread pool per backend object, of its ``max_concurrency`` threads, that ``map`` of
    every client reuses: a pool per call started and joined threads for every work item (about
    14 ms of an item whose answers were all cached)."""
    with _slots_lock:
        if backend not in _pools:
            _pools[backend] = ThreadPoolExecutor(max_workers=backend.max_concurrency,
                                                 thread_name_prefix=f"llm-{backend.name}")
        return _pools[backend]


class LLMClient:
    def __init__(self, backend, settings: Settings | None = None, store: LLMStore | None = None,
                 budget: Budget | None = None, limiter: RateLimiter | None = None):
        """``budget``: reserved against before every call (see ``services.llm.budget``).
        ``limiter``: requests/tokens per minute; default the settings' limit counted in this process."""
        self.backend = backend
        self.settings = settings or get_settings()
        self.store = store or LLMStore(default_url(self.settings))
        self.budget = budget
        if budget is not None and not backend.local and price(self.settings, backend.model) is None:
            raise InvalidInputError(f"model {backend.model!r} has no price, so a budget cannot cap its "
                                    f"spending; {price_hint(backend.model)}")
        self.limiter = limiter or limiter_for(self.settings, backend.name, backend.model, None)
        self._slots = backend_slots(backend)

    def cache_key(self, request: LLMRequest) -> str:
        identity = {"backend": self.backend.name, "model": self.backend.model,
                    "endpoint": self.backend.endpoint, "options": self.backend.answer_options(),
                    "prompt": request.prompt,
                    "max_tokens": request.max_tokens,
                    "logprobs": request.logprobs and self.backend.supports_logprobs}
        if request.choices and self.backend.constrains_choices:  # absent otherwise: older keys stay valid
            identity["choices"] = list(request.choices)
        if request.temperature is not None:  # a sampled answer: one cache entry per sample index
            identity |= {"temperature": request.temperature, "sample": request.sample}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def estimate(self, requests: Sequence[LLMRequest]) -> CostEstimate:
        """Calls still to make (cache misses), their approximate tokens and worst-case cost."""
        keys = {r: self.cache_key(r) for r in requests}
        cached = self.store.get_many(list(keys.values()))
        misses = [r for r, key in keys.items() if key not in cached]
        tokens_in = sum(estimate_tokens(r.prompt) for r in misses)
        tokens_out = sum(r.max_tokens for r in misses)
        return CostEstimate(
            backend=self.backend.name, model=self.backend.model, calls=len(misses),
            cached_calls=len(requests) - len(misses), input_tokens=tokens_in,
            max_output_tokens=tokens_out,
            usd=cost_usd(self.settings, self.backend.model, tokens_in, tokens_out),
            priced=price(self.settings, self.backend.model) is not None,
        )

    def call(self, request: LLMRequest) -> LLMResponse:
        """One request: from the cache, or sent once; a request identical to one this process is
        sending now waits for that answer instead of sending it again (concurrent items often ask
        the same: a control's prompt is another head's real one)."""
        key = self.cache_key(request)
        started = time.perf_counter()
        while True:
            cached = self.store.get(key)
            if cached is not None:
                return LLMResponse(completion=cached, record=self._log(request, key, cached, started,
                                                                       cache_hit=True, attempts=0))
            with _in_flight_lock:
                sending = _in_flight.get(key)
                if sending is None:
                    _in_flight[key] = threading.Event()
                    break
            sending.wait()  # then read the cache again; if that call failed, this one sends
        try:
            return self._send(request, key, started)
        finally:
            with _in_flight_lock:
                _in_flight.pop(key).set()

    def _send(self, request: LLMRequest, key: str, started: float) -> LLMResponse:
        worst = self._reserve(request)
        retrying = self._retrying()
        try:
            completion = retrying(self._complete, request)
        except Exception as error:
            self._release(worst, 0.0)
            attempts = retrying.statistics.get("attempt_number", 1)
            message = self._failure_message(error, attempts)
            self._log(request, key, None, started, cache_hit=False, attempts=attempts, error=message)
            if isinstance(error, BackendError):
                raise
            kind = BackendUnavailableError if self.backend.is_transient(error) else BackendError
            raise kind(message) from None
        # Settled first: whatever fails after this, the budget has counted what was billed.
        self._release(worst, completion_cost(self.settings, self.backend, completion))
        self.store.put(key, completion)
        record = self._log(request, key, completion, started, cache_hit=False,
                           attempts=retrying.statistics["attempt_number"])
        return LLMResponse(completion=completion, record=record)

    def map(self, requests: Sequence[LLMRequest]) -> list[LLMResponse]:
        """All requests, at most ``max_concurrency`` at a time, answers in request order.

        Cached answers are read in one query and their ledger rows written in one transaction (a
        judged head's test prompts are often all cached: its shuffled control reuses another
        head's explanation); the rest are sent from the backend's thread pool. On a failure the
        other requests still finish (and are cached) before the first error is raised, so a rerun
        only repeats what failed.
        """
        started = time.perf_counter()
        keys = [self.cache_key(r) for r in requests]
        cached = self.store.get_many(keys)
        futures = {i: backend_pool(self.backend).submit(self.call, r)
                   for i, (r, key) in enumerate(zip(requests, keys, strict=True)) if key not in cached}
        hits = {i: LLMResponse(completion=cached[key], record=self._record(r, key, cached[key], started,
                                                                           cache_hit=True, attempts=0))
                for i, (r, key) in enumerate(zip(requests, keys, strict=True)) if key in cached}
        self.store.record_many([hit.record for hit in hits.values()])
        wait(futures.values())
        errors = [e for e in (f.exception() for f in futures.values()) if e is not None]
        if errors:
            budget = [e for e in errors if isinstance(e, BudgetExceededError)]
            raise (budget or errors)[0]
        return [hits[i] if i in hits else futures[i].result() for i in range(len(requests))]

    def _retrying(self):
        """Exponential backoff with jitter on transient errors, never shorter than Retry-After."""
        from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

        backoff = wait_exponential_jitter(initial=self.settings.llm_retry_initial_s,
                                          max=self.settings.llm_retry_max_s)

        def wait_before_retry(state) -> float:
            asked = self.backend.retry_after(state.outcome.exception()) or 0.0
            return min(max(backoff(state), asked), max(self.settings.llm_retry_max_s, asked))

        def before_sleep(state) -> None:
            error = state.outcome.exception()
            log.info("%s (%s): attempt %d failed with %s; retrying in %.3f s", self.backend.name,
                     self.backend.model, state.attempt_number, type(error).__name__,
                     state.next_action.sleep)

        return Retrying(stop=stop_after_attempt(self.settings.llm_max_attempts), wait=wait_before_retry,
                        retry=retry_if_exception(self.backend.is_transient), reraise=True,
                        before_sleep=before_sleep)

    def _complete(self, request: LLMRequest) -> Completion:
        """One attempt: a concurrency slot, then the rate limits (each attempt is a request)."""
        with self._slots:
            if self.limiter is not None:
                self.limiter.acquire(estimate_tokens(request.prompt) + request.max_tokens)
            return self.backend.complete(request)

    def _reserve(self, request: LLMRequest) -> float:
        """Hold the worst-case cost of a call so concurrent calls cannot together pass the cap."""
        # Writing the prompt cache may cost more than plain input (Anthropic: 1.25×).
        worst = cost_usd(self.settings, self.backend.model,
                         math.ceil(estimate_tokens(request.prompt) * max(1.0, self.backend.cache_write_price)),
                         request.max_tokens)
        if self.budget is not None:
            self.budget.reserve(worst)
        return worst

    def _release(self, worst: float, actual: float) -> None:
        if self.budget is not None:
            self.budget.settle(worst, actual)

    def _failure_message(self, error: BaseException, attempts: int) -> str:
        secrets = [self._safe_key()]
        what = f"{type(error).__name__}: {redact(str(error), secrets)}"[:500]
        return redact(f"{self.backend.name} ({self.backend.model}) failed after {attempts} "
                      f"attempt(s): {what}", secrets)

    def _safe_key(self) -> str:
        try:
            return self.backend.api_key() or ""
        except BackendError:
            return ""

    def _log(self, request: LLMRequest, key: str, completion: Completion | None, started: float,
             cache_hit: bool, attempts: int, error: str | None = None) -> CallRecord:
        record = self._record(request, key, completion, started, cache_hit, attempts, error)
        self.store.record(record)
        return record

    def _record(self, request: LLMRequest, key: str, completion: Completion | None, started: float,
                cache_hit: bool, attempts: int, error: str | None = None) -> CallRecord:
        """The ledger row of a call; tokens and cost are zero on a cache hit or a failure."""
        billed = None if cache_hit else completion
        return CallRecord(
            at=datetime.now(), backend=self.backend.name, model=self.backend.model,
            purpose=request.purpose, template_version=request.template_version, cache_key=key,
            cache_hit=cache_hit, input_tokens=billed.input_tokens if billed else 0,
            output_tokens=billed.output_tokens if billed else 0,
            cache_read_tokens=billed.cache_read_tokens if billed else 0,
            cache_write_tokens=billed.cache_write_tokens if billed else 0,
            latency_s=time.perf_counter() - started,
            cost_usd=completion_cost(self.settings, self.backend, billed) if billed else 0.0,
            attempts=attempts, error=error,
        )
