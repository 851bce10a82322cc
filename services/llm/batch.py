"""Batch mode: a stage's LLM requests go out as one provider batch (OpenAI Batch, Anthropic
Message Batch), which is polled until it finishes; its answers land in the LLM cache, where the
stage's items then find them, and the ledger gets one row per request at the batch price.

Resumable: a batch is recorded as soon as the provider accepts it, so a process killed while
polling leaves it to the next run, which polls that batch instead of submitting another.
Exactly once: a batch's answers, its ledger rows and its ``collected`` mark are one transaction,
which only the first of two processes collecting the same batch commits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from lookups import (
    BackendError,
    BackendUnavailableError,
    BatchPoll,
    CallRecord,
    Completion,
    LLMRequest,
    UnknownBackendError,
    redact,
)
from services.llm.client import LLMClient
from services.llm.cost import batch_cost_usd, completion_cost, estimate_tokens
from services.llm.store import BatchSummary

log = logging.getLogger(__name__)
T = TypeVar("T")


def run_batch(client: LLMClient, requests: Sequence[LLMRequest]) -> list[BatchSummary]:
    """Answer every request the cache lacks through provider batches: poll the batches already
    recorded for them (a run killed mid-poll), submit one for the rest (or several, of at most
    ``llm_batch_max_requests`` each). Returns the batches that answered any of the requests;
    raises, with the provider's reasons, when some got no answer."""
    backend = client.backend
    if not backend.supports_batch:
        raise UnknownBackendError(f"backend {backend.name!r} has no batch mode; use llm_mode 'live'")
    keyed = {client.cache_key(r): r for r in requests}
    failed: dict[str, str] = {}
    while missing := {k: r for k, r in keyed.items() if k not in failed and client.store.get(k) is None}:
        keys, size = list(missing), client.settings.llm_batch_max_requests
        batch_ids = client.store.open_batches(keys)
        if not batch_ids:
            _check_budget(client, list(missing.values()))
            batch_ids = [_submit(client, {k: missing[k] for k in keys[start:start + size]})
                         for start in range(0, len(keys), size)]
        for batch_id in batch_ids:
            _collect(client, batch_id, _wait(client, batch_id))
            for row in client.store.batch_requests(batch_id):
                if row.cache_key in keyed and client.store.get(row.cache_key) is None:
                    failed[row.cache_key] = f"batch {batch_id}: {row.error or 'no answer'}"
    if failed:
        reasons = "; ".join(dict.fromkeys(failed.values()))
        raise BackendError(f"{len(failed)} of {len(keyed)} requests got no answer from their provider batch "
                           f"({reasons})"[:2000] + "; resume to submit them in a new batch")
    return client.store.batches(list(keyed))


def require_answered(client: LLMClient, requests: Sequence[LLMRequest]) -> None:
    """In batch mode an item makes no live call: each of its requests must be in the cache, or
    the item fails with the reason its batch gave."""
    for request in requests:
        key = client.cache_key(request)
        if client.store.get(key) is None:
            raise BackendError(f"batch mode: {request.purpose} request not answered; "
                               + (client.store.batch_failure(key) or "no provider batch holds it")
                               + "; resume the campaign to submit it in a new batch")


def _check_budget(client: LLMClient, requests: list[LLMRequest]) -> None:
    """Refuse batches whose worst case does not fit the budget; what they cost is counted once
    they are collected."""
    if client.budget is not None:
        worst = sum(batch_cost_usd(client.settings, client.backend.model, estimate_tokens(r.prompt), r.max_tokens)
                    for r in requests)
        client.budget.reserve(worst)
        client.budget.settle(worst, 0.0)


def _submit(client: LLMClient, requests: dict[str, LLMRequest]) -> str:
    """Submit one batch (custom id = cache key) and record it at once."""
    backend = client.backend
    batch_id = _provider(client, backend.submit_batch, list(requests.items()))
    client.store.add_batch(batch_id, backend.name, backend.model, requests)
    log.info("%s (%s): submitted batch %s of %d requests", backend.name, backend.model, batch_id, len(requests))
    return batch_id


def _wait(client: LLMClient, batch_id: str) -> BatchPoll:
    """Poll every ``llm_batch_poll_s`` until the batch finished; a transient error while polling
    waits for the next poll, up to ``llm_max_attempts`` in a row."""
    settings, errors = client.settings, 0
    while True:
        try:
            poll = _provider(client, client.backend.poll_batch, batch_id)
            errors = 0
        except BackendUnavailableError:
            errors += 1
            if errors >= settings.llm_max_attempts:
                raise
            poll = BatchPoll(finished=False)
        if poll.finished:
            return poll
        time.sleep(settings.llm_batch_poll_s)


def _collect(client: LLMClient, batch_id: str, poll: BatchPoll) -> None:
    """Write a finished batch's answers and ledger rows once (see ``LLMStore.collect_batch``)."""
    backend, settings = client.backend, client.settings
    rows = {row.cache_key: row for row in client.store.batch_requests(batch_id)}
    answers: dict[str, Completion] = {}
    errors: dict[str, str] = {}
    for result in poll.results:
        if result.custom_id not in rows:
            continue
        if result.completion is not None:
            answers[result.custom_id] = result.completion
        else:
            errors[result.custom_id] = result.error or "no reason given"
    for key in rows.keys() - answers.keys() - errors.keys():
        errors[key] = poll.error or "the batch finished without answering it"
    now = datetime.now()
    calls = [CallRecord(
        at=now, backend=backend.name, model=backend.model, purpose=row.purpose,
        template_version=row.template_version, cache_key=key, cache_hit=False,
        input_tokens=answers[key].input_tokens if key in answers else 0,
        output_tokens=answers[key].output_tokens if key in answers else 0,
        cache_read_tokens=answers[key].cache_read_tokens if key in answers else 0,
        cache_write_tokens=answers[key].cache_write_tokens if key in answers else 0, latency_s=0.0,
        cost_usd=completion_cost(settings, backend, answers[key]) * settings.llm_batch_price_factor
        if key in answers else 0.0, attempts=1, error=errors.get(key)) for key, row in rows.items()]
    error = f"{len(errors)} of {len(rows)} unanswered: {next(iter(errors.values()))}" if errors else None
    if client.store.collect_batch(batch_id, answers, errors, calls, error):
        if client.budget is not None:
            client.budget.settle(0.0, sum(call.cost_usd for call in calls))
        log.info("%s (%s): batch %s collected, %d of %d answered", backend.name, backend.model, batch_id,
                 len(answers), len(rows))


def _provider(client: LLMClient, call: Callable[..., T], *args) -> T:
    """A call to the provider's batch API; its errors become ours, the key redacted."""
    try:
        return call(*args)
    except (BackendError, NotImplementedError):
        raise
    except Exception as error:
        secret = client.backend.api_key() or ""
        message = redact(f"{client.backend.name} batch API: {type(error).__name__}: {error}", [secret])[:1000]
        kind = BackendUnavailableError if client.backend.is_transient(error) else BackendError
        raise kind(message) from None
