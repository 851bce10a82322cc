"""Truncation (docs/method.md step 3): the shortest context that still fires the neuron.

For each top document, binary search on the start of a window ending at the firing token for
the latest start whose activation at that token stays >= ``keep_fraction`` x the original.
All searches advance in lockstep, so each step is one batched forward pass; they run in rounds
in rank order, so a neuron never searches more of its hits than it needs to keep
``prompts_per_neuron`` prompts (the result is the same as searching all of them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lookups import Document, InvalidInputError
from services.activations import (
    bos_id,
    encode_documents,
    length_batches,
    pad_id,
    pad_right,
    run_mlp_post,
)
from services.scan import DEFAULT_MAX_BATCH, DEFAULT_TOKEN_BUDGET, check_neurons
from services.schemas import NeuronContexts, NeuronRef, TruncatedPrompt

if TYPE_CHECKING:
    from services.subject_model import SubjectModel


@dataclass
class _Search:
    neuron: NeuronRef
    doc_id: str
    tokens: list[int]  # document tokens after BOS, up to and including the firing token
    original: float
    lo: int  # earliest start known to keep the activation
    hi: int  # latest start that may still keep it
    best: float  # activation of the window starting at ``lo``


def last_token_activations(
    model: SubjectModel,
    prompts: Sequence[list[int]],
    neurons: Sequence[NeuronRef],
    *,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> list[float]:
    """Activation of ``neurons[i]`` at the last token of ``[BOS] + prompts[i]``, batched."""
    import torch

    device = model.device
    bos, pad = bos_id(model.tokenizer), pad_id(model.tokenizer)
    sequences = [[bos, *prompt] for prompt in prompts]
    out = [0.0] * len(sequences)
    layers = sorted({n.layer for n in neurons})
    for batch in length_batches([len(s) for s in sequences], token_budget, max_batch):
        tokens, lengths = pad_right((sequences[i] for i in batch), pad, device)
        rows = torch.arange(len(batch), device=device)

        def read(layer: int, post) -> None:
            last = post[rows, lengths - 1]  # (batch, d_mlp)
            for row, index in enumerate(batch):
                if neurons[index].layer == layer:
                    out[index] = float(last[row, neurons[index].index])

        run_mlp_post(model, tokens, layers, read)
    return out


def truncate_contexts(
    model: SubjectModel,
    contexts: Sequence[NeuronContexts],
    documents: Sequence[Document],
    *,
    context_length: int = 1024,
    keep_fraction: float = 0.8,
    max_prompt_tokens: int = 100,
    prompts_per_neuron: int = 20,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> list[NeuronContexts]:
    """Add truncated prompts to each neuron's contexts (same order as its hits).

    Prompts of ``max_prompt_tokens`` or more tokens are dropped; the first
    ``prompts_per_neuron`` that remain are kept. ``context_length`` must match the scan's.
    """
    if not 0.0 < keep_fraction <= 1.0:
        raise InvalidInputError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
    check_neurons(model, [c.neuron for c in contexts])
    by_id = {doc.id: doc for doc in documents}
    missing = {h.doc_id for c in contexts for h in c.hits} - by_id.keys()
    if missing:
        raise InvalidInputError(f"documents not in the corpus given: {sorted(missing)[:5]}")

    needed = sorted({h.doc_id for c in contexts for h in c.hits})
    encoded = dict(
        zip(needed, encode_documents(model.tokenizer, [by_id[i].text for i in needed], context_length))
    )
    searches = [
        [
            _Search(
                neuron=context.neuron,
                doc_id=hit.doc_id,
                tokens=encoded[hit.doc_id][1 : hit.position + 1],
                original=hit.activation,
                lo=0,
                hi=max(hit.position - 1, 0),
                best=hit.activation,
            )
            for hit in context.hits
            if hit.position >= 1  # position 0 is BOS: nothing to truncate to
        ]
        for context in contexts
    ]
    # Rounds in rank order: each neuron searches only as many of its next hits as it still needs
    # prompts, so hits past its first ``prompts_per_neuron`` kept ones are never run, and what is
    # kept (appended in rank order) is what searching every hit and keeping the first would give.
    kept: list[list[_Search]] = [[] for _ in contexts]
    started = [0] * len(contexts)
    while True:
        batch = []
        for index, group in enumerate(searches):
            wanted = prompts_per_neuron - len(kept[index])
            batch += [(index, s) for s in group[started[index] : started[index] + max(wanted, 0)]]
            started[index] += max(wanted, 0)
        if not batch:
            break
        _binary_search([s for _, s in batch], model, keep_fraction, max_prompt_tokens, token_budget, max_batch)
        for index, search in batch:
            if len(search.tokens) - search.lo < max_prompt_tokens:
                kept[index].append(search)
    return [
        context.model_copy(update={"prompts": [
            TruncatedPrompt(doc_id=s.doc_id, text=model.tokenizer.decode(s.tokens[s.lo :]), tokens=s.tokens[s.lo :],
                            activation=s.best, original_activation=s.original)
            for s in group]})
        for context, group in zip(contexts, kept)
    ]


def _binary_search(searches: list[_Search], model: SubjectModel, keep_fraction: float, max_prompt_tokens: int,
                   token_budget: int, max_batch: int) -> None:
    """All searches in lockstep, one batched forward pass per step. A search stops early once
    even its shortest possible window has ``max_prompt_tokens`` tokens (it would be dropped)."""
    pending = [s for s in searches if s.lo < s.hi]
    while pending:
        mids = [(s.lo + s.hi + 1) // 2 for s in pending]
        acts = last_token_activations(
            model,
            [s.tokens[mid:] for s, mid in zip(pending, mids)],
            [s.neuron for s in pending],
            token_budget=token_budget,
            max_batch=max_batch,
        )
        for search, mid, act in zip(pending, mids, acts):
            if act >= keep_fraction * search.original:
                search.lo, search.best = mid, act
            else:
                search.hi = mid - 1
        pending = [s for s in pending if s.lo < s.hi and len(s.tokens) - s.hi < max_prompt_tokens]
