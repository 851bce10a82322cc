"""Held-out test prompts (docs/method.md step 6): steps 2-4 again on a disjoint test split.

Each head worth explaining gets up to ``per_head`` of its neuron's truncated test prompts, each
labelled with whether the head is active on it by the step-4 criterion. A head whose labels are
all one class cannot be scored by balanced accuracy; it is kept and marked ``one_class`` so the
report can say why it was skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from contract import Document, InvalidInputError
from services.ablation import activation_drops
from services.attribution import Definition, HeadRef, NeuronAttribution, attribute_neuron
from services.scan import ScanReport, scan_corpus
from services.schemas import NeuronRef, TruncatedPrompt
from services.truncate import truncate_contexts

if TYPE_CHECKING:
    from services.subject_model import SubjectModel


class LabelledPrompt(BaseModel):
    prompt: TruncatedPrompt
    active: bool
    effect: float | None = Field(default=None, description="The neuron's activation at the last token, "
                                 "clean minus with the head ablated (the causal scorer ranks it).")


class HeadTestSet(BaseModel):
    neuron: NeuronRef
    head: HeadRef
    definition: Definition
    prompts: list[LabelledPrompt]
    one_class: bool = Field(description="All labels equal (or no prompts): the head cannot be scored.")


def label_test_prompts(
    test_attribution: NeuronAttribution,
    prompts: Sequence[TruncatedPrompt],
    heads: Sequence[HeadRef],
    per_head: int = 10,
) -> list[HeadTestSet]:
    """Label the first ``per_head`` test prompts for each head from an attribution over them."""
    if len(prompts) != len(test_attribution.prompts):
        raise InvalidInputError("the attribution must cover exactly the given test prompts")
    sets = []
    for head in heads:
        labelled = [
            LabelledPrompt(prompt=prompt, active=head in record.active)
            for prompt, record in zip(prompts[:per_head], test_attribution.prompts)
        ]
        sets.append(
            HeadTestSet(
                neuron=test_attribution.neuron, head=head, definition=test_attribution.definition,
                prompts=labelled, one_class=len({p.active for p in labelled}) < 2,
            )
        )
    return sets


def held_out_test_prompts(
    model: SubjectModel,
    attributions: Sequence[NeuronAttribution],
    test_documents: Iterable[Document],
    *,
    fetch: Callable[[Collection[str]], Sequence[Document]],
    per_head: int = 10,
    top_k: int = 30,
    context_length: int = 1024,
    total: int | None = None,
    report: ScanReport | None = None,
) -> list[HeadTestSet]:
    """Scan and truncate the test split for every neuron with heads worth explaining, attribute
    its test prompts with the same definition and criterion, label them per head, and measure
    each head's ablation effect on the neuron there.

    ``test_documents`` are streamed through the scan; ``fetch`` then gives the top documents by
    id for truncation. ``total`` and ``report``: the scan's progress (``scan_corpus``)."""
    explained = [a for a in attributions if a.worth_explaining]
    if not explained:
        return []
    if per_head < 1:
        raise InvalidInputError(f"per_head must be at least 1, got {per_head}")
    neurons = [a.neuron for a in explained]
    contexts = scan_corpus(model, neurons, test_documents, top_k=top_k, context_length=context_length,
                           total=total, report=report)
    top_documents = fetch({hit.doc_id for context in contexts for hit in context.hits})
    contexts = truncate_contexts(model, contexts, top_documents, context_length=context_length,
                                 prompts_per_neuron=per_head)
    sets: list[HeadTestSet] = []
    for attribution, context in zip(explained, contexts):
        heads = [a.head for a in attribution.worth_explaining]
        prompts = (context.prompts or [])[:per_head]
        if not prompts:
            sets += [
                HeadTestSet(neuron=attribution.neuron, head=head, definition=attribution.definition,
                            prompts=[], one_class=True)
                for head in heads
            ]
            continue
        tested = attribute_neuron(
            model, attribution.neuron, prompts, definition=attribution.definition,
            active_stds=attribution.active_stds, worth_range=attribution.worth_range,
        )
        drops = activation_drops(model, attribution.neuron, heads, [p.tokens for p in prompts])
        sets += [
            test_set.model_copy(update={"prompts": [
                p.model_copy(update={"effect": float(drop)}) for p, drop in zip(test_set.prompts, drops[head])]})
            for head, test_set in zip(heads, label_test_prompts(tested, prompts, heads, per_head))
        ]
    return sets
