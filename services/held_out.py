"""Held-out test prompts (docs/method.md step 6): steps 2-4 again on a disjoint test split.

Each head worth explaining gets test prompts of its neuron, each labelled with whether the head
is active on it (``services.activity``: the paper's criterion or the per-head threshold set on
the training prompts). How they are drawn (``TestSampling``):

- ``first``: the paper's, the first ``per_head`` truncated test prompts, whatever their labels;
- ``balanced``: the test scan keeps ``BALANCED_POOL`` times as many documents per neuron, and each
  head takes up to ``per_head`` active and ``per_head`` inactive prompts from them, in rank order,
  so its balanced accuracy is measured on both classes instead of on one or two active prompts.

A head whose labels are all one class cannot be scored by balanced accuracy; it is kept and
marked ``one_class`` so the report can say why it was skipped; one with fewer than ``per_head``
prompts of a class under ``balanced`` is scored and carries a ``note`` saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Literal, get_args

from pydantic import BaseModel, Field

from lookups import Document, InvalidInputError
from services.ablation import activation_drops
from services.activity import Activity, head_labels
from services.attribution import Definition, HeadRef, NeuronAttribution, attribute_neuron
from services.scan import ScanReport, scan_corpus
from services.schemas import NeuronRef, TruncatedPrompt
from services.truncate import truncate_contexts

if TYPE_CHECKING:
    from services.subject_model import SubjectModel

TestSampling = Literal["first", "balanced"]
TEST_SAMPLINGS: tuple[str, ...] = get_args(TestSampling)
# Balanced sampling scans and truncates this many times per_head documents per neuron: heads
# worth explaining are active on 25-75 % of the training prompts, so a pool of 4 N holds about N
# prompts of the rarer class for most of them.
BALANCED_POOL = 4


def max_test_prompts(sampling: TestSampling, per_head: int) -> int:
    """The most held-out prompts a head is tested on."""
    return per_head * (2 if sampling == "balanced" else 1)


def test_pool_size(sampling: TestSampling, per_head: int) -> int:
    """Truncated test prompts to draw per neuron."""
    return per_head * (BALANCED_POOL if sampling == "balanced" else 1)


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
    sampling: TestSampling = "first"
    activity: Activity = "paper"
    note: str | None = Field(default=None, description="Why the set is smaller than asked, when it is.")

    @property
    def n_active(self) -> int:
        return sum(p.active for p in self.prompts)


def choose(labels: Sequence[bool], per_head: int, sampling: TestSampling) -> list[int]:
    """Indices of the prompts a head is tested on, in rank order."""
    if sampling == "first":
        return list(range(min(per_head, len(labels))))
    active = [i for i, label in enumerate(labels) if label][:per_head]
    inactive = [i for i, label in enumerate(labels) if not label][:per_head]
    return sorted(active + inactive)


def label_test_prompts(
    test_attribution: NeuronAttribution,
    prompts: Sequence[TruncatedPrompt],
    heads: Sequence[HeadRef],
    per_head: int = 10,
    *,
    sampling: TestSampling = "first",
    activity: Activity = "paper",
    train: NeuronAttribution | None = None,
) -> list[HeadTestSet]:
    """Each head's test set from an attribution over the neuron's test prompts. ``train``: the
    neuron's training attribution, which sets the per-head activity threshold."""
    if len(prompts) != len(test_attribution.prompts):
        raise InvalidInputError("the attribution must cover exactly the given test prompts")
    if activity == "per-head" and train is None:
        raise InvalidInputError("per-head activity labels test prompts against the training threshold: give train")
    sets = []
    for head in heads:
        labels = head_labels(test_attribution, head, activity, train)
        chosen = choose(labels, per_head, sampling)
        labelled = [LabelledPrompt(prompt=prompts[i], active=labels[i]) for i in chosen]
        n_active = sum(p.active for p in labelled)
        note = None
        if sampling == "balanced" and min(n_active, len(labelled) - n_active) < per_head:
            note = (f"{n_active} active and {len(labelled) - n_active} inactive of {len(prompts)} test "
                    f"prompts; balanced sampling asks for {per_head} of each")
        sets.append(
            HeadTestSet(
                neuron=test_attribution.neuron, head=head, definition=test_attribution.definition,
                prompts=labelled, one_class=len({p.active for p in labelled}) < 2,
                sampling=sampling, activity=activity, note=note,
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
    sampling: TestSampling = "first",
    activity: Activity = "paper",
    top_k: int = 30,
    context_length: int = 1024,
    total: int | None = None,
    report: ScanReport | None = None,
) -> list[HeadTestSet]:
    """Scan and truncate the test split for every neuron with heads worth explaining, attribute
    its test prompts with the same definition and criterion, label and draw them per head
    (``sampling``, ``activity``), and measure each head's ablation effect on its prompts.

    ``test_documents`` are streamed through the scan; ``fetch`` then gives the top documents by
    id for truncation. ``total`` and ``report``: the scan's progress (``scan_corpus``)."""
    explained = [a for a in attributions if a.worth_explaining]
    if not explained:
        return []
    if per_head < 1:
        raise InvalidInputError(f"per_head must be at least 1, got {per_head}")
    neurons = [a.neuron for a in explained]
    pool = test_pool_size(sampling, per_head)
    contexts = scan_corpus(model, neurons, test_documents, top_k=max(top_k, pool), context_length=context_length,
                           total=total, report=report)
    top_documents = fetch({hit.doc_id for context in contexts for hit in context.hits})
    contexts = truncate_contexts(model, contexts, top_documents, context_length=context_length,
                                 prompts_per_neuron=pool)
    sets: list[HeadTestSet] = []
    for attribution, context in zip(explained, contexts):
        heads = [a.head for a in attribution.worth_explaining]
        prompts = (context.prompts or [])[:pool]
        if not prompts:
            sets += [
                HeadTestSet(neuron=attribution.neuron, head=head, definition=attribution.definition,
                            prompts=[], one_class=True, sampling=sampling, activity=activity,
                            note="no truncated test prompt for this neuron")
                for head in heads
            ]
            continue
        tested = attribute_neuron(
            model, attribution.neuron, prompts, definition=attribution.definition,
            active_stds=attribution.active_stds, worth_range=attribution.worth_range,
        )
        labelled = label_test_prompts(tested, prompts, heads, per_head, sampling=sampling, activity=activity,
                                      train=attribution)
        sets += with_effects(model, attribution.neuron, labelled)
    return sets


def with_effects(model: SubjectModel, neuron: NeuronRef, sets: Sequence[HeadTestSet]) -> list[HeadTestSet]:
    """Each prompt's ablation effect for its head. Heads tested on the same prompts (all of them
    under ``first`` sampling) share one clean pass."""
    groups: dict[tuple[str, ...], list[HeadTestSet]] = {}
    for test_set in sets:
        groups.setdefault(tuple(p.prompt.doc_id for p in test_set.prompts), []).append(test_set)
    measured: dict[HeadRef, HeadTestSet] = {}
    for group in groups.values():
        if not group[0].prompts:
            measured.update((s.head, s) for s in group)
            continue
        drops = activation_drops(model, neuron, [s.head for s in group], [p.prompt.tokens for p in group[0].prompts])
        for test_set in group:
            effects = drops[test_set.head].tolist()
            measured[test_set.head] = test_set.model_copy(update={"prompts": [
                p.model_copy(update={"effect": effect}) for p, effect in zip(test_set.prompts, effects)]})
    return [measured[s.head] for s in sets]
