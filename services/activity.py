"""When is a head "active" on a prompt (docs/method.md, step 4 and "Activity definitions")?

- ``paper`` (default): the paper's rule, the head's attribution above ``mean + 2·std`` of all
  candidate heads' attributions on that prompt (``NeuronAttribution.prompts[i].active``).
- ``per-head``: the head's attribution above its own median over the neuron's training prompts.
  The threshold comes from the training prompts only; held-out prompts are labelled against that
  same threshold, so nothing about the test set leaks into its labels.

Which heads are worth explaining is decided by the paper's rule either way (heads active on
25-75 % of the prompts); ``activity`` only changes the labels the explainer sees and the
held-out prompts carry.
"""

from __future__ import annotations

import statistics
from typing import Literal, get_args

from lookups import InvalidInputError
from services.attribution import HeadRef, NeuronAttribution

Activity = Literal["paper", "per-head"]
ACTIVITIES: tuple[str, ...] = get_args(Activity)


def head_threshold(train: NeuronAttribution, head: HeadRef) -> float:
    """The per-head threshold: the median of the head's attribution over the training prompts."""
    if not train.prompts:
        raise InvalidInputError(f"neuron {train.neuron}: no training prompts to set head {head}'s threshold")
    return statistics.median(p.scores[head.layer][head.head] for p in train.prompts)


def head_labels(attribution: NeuronAttribution, head: HeadRef, activity: Activity,
                train: NeuronAttribution | None = None) -> list[bool]:
    """Whether ``head`` is active on each of ``attribution``'s prompts. ``train``: the neuron's
    training attribution, which sets the per-head threshold (default: ``attribution`` itself)."""
    if activity == "paper":
        return [head in p.active for p in attribution.prompts]
    threshold = head_threshold(train or attribution, head)
    return [p.scores[head.layer][head.head] > threshold for p in attribution.prompts]
