"""The explanation agent's experiments: probe texts run through the subject model, and the
choice of the final explanation.

An agent round is an explanation plus probe texts the explainer predicts will make the head
active or inactive. The GPU side measures each probe with the step-4 criterion (is the head
active at the probe's last position?); the explainer revises from the measurements. The final
explanation is the round with the best accuracy on the neuron's training prompts (judged from
the explanation alone) and on its own probes; the held-out test split is never looked at.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from lookups import AgentRound, Probe, ProbeMeasurement
from services.activity import Activity, head_labels
from services.attribution import Prompt, attribute_neuron

if TYPE_CHECKING:
    from services.attribution import HeadRef, NeuronAttribution
    from services.subject_model import SubjectModel


class AgentOutcome(BaseModel):
    """What the loop ended with, stored with the chosen explanation."""

    chosen_round: int
    rounds: int
    accuracies: list[float | None] = Field(description="Per round, training-prompt and probe accuracy.")
    stopped: str = Field(description="Why the loop ended: all rounds done, or the budget ran out.")


def measure_probes(
    model: SubjectModel,
    attribution: NeuronAttribution,
    head: HeadRef,
    probes: Sequence[Probe],
    *,
    max_tokens: int,
    activity: Activity = "paper",
) -> list[ProbeMeasurement]:
    """Run the probes that tokenize to 1..``max_tokens`` tokens (the others are rejected with
    the reason); the verdict uses the neuron's own attribution definition and the campaign's
    activity definition (per-head: the threshold of ``attribution``, the training prompts)."""

    found: list[ProbeMeasurement | None] = []
    runnable: list[tuple[int, Prompt]] = []
    for probe in probes:
        tokens = model.tokenizer(probe.text, add_special_tokens=False)["input_ids"]
        reason = ("it tokenizes to nothing" if not tokens else
                  f"{len(tokens)} tokens, over the limit of {max_tokens}" if len(tokens) > max_tokens else None)
        if reason:
            found.append(ProbeMeasurement(**probe.model_dump(), tokens=len(tokens), attribution=None,
                                          active=None, rejected=reason))
        else:
            runnable.append((len(found), Prompt(text=probe.text, tokens=tokens)))
            found.append(None)
    if runnable:
        measured = attribute_neuron(model, attribution.neuron, [p for _, p in runnable],
                                    definition=attribution.definition, active_stds=attribution.active_stds,
                                    worth_range=attribution.worth_range)
        labels = head_labels(measured, head, activity, train=attribution)
        for (index, prompt), record, active in zip(runnable, measured.prompts, labels):
            found[index] = ProbeMeasurement(
                **probes[index].model_dump(), tokens=len(prompt.tokens),
                attribution=record.scores[head.layer][head.head], active=active)
    return found  # type: ignore[return-value]


def probe_agreement(measurements: Sequence[ProbeMeasurement]) -> tuple[int, int]:
    """(correct, total) over the probes that ran."""
    ran = [m for m in measurements if m.active is not None]
    return sum(m.active == m.predicted_active for m in ran), len(ran)


def choose_round(rounds: Sequence[AgentRound]) -> AgentRound:
    """The evaluated round with the best accuracy (a later round wins a tie: it saw more
    evidence); the last round when none could be evaluated."""
    evaluated = [(r.evaluation.accuracy, r.round, r) for r in rounds
                 if r.evaluation is not None and r.evaluation.accuracy is not None]
    if not evaluated:
        return rounds[-1]
    return max(evaluated, key=lambda found: found[:2])[2]

