"""A campaign's results read back from the store as one pydantic export.

The API's results endpoint pages through it (by neuron) and the HTML report renders all of it,
so both show exactly the same numbers.
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from lookups import AgentRound, HeadScore, ProgramExplanation
from services.ablation import KSResult
from services.agent import AgentOutcome
from services.attribution import NeuronAttribution
from services.campaigns.config import CampaignConfig
from services.campaigns.lifecycle import get_campaign
from services.campaigns.status_view import CampaignProgress, progress
from services.schemas import TruncatedPrompt
from services.score import CampaignSummary, ScorerSummary
from services.store import Store
from services.store.models import (
    AblationRow,
    AgentRoundRow,
    AttributionRow,
    ClassificationRow,
    ExplanationRow,
    HeadRow,
    NeuronRow,
    PromptRow,
    ScoreRow,
    TestSetRow,
)


class TestPrediction(BaseModel):
    """One held-out prompt: the ground truth and what the judge answered from the explanation."""

    prompt: str
    active: bool | None
    answer: str
    p_yes: float | None
    others: dict[str, str] = Field(default_factory=dict, description="The other scorers' answers to the same "
                                   "prompt (the probe's prediction among them).")


class HeadResult(BaseModel):
    head_layer: int
    head: int
    active_fraction: float = Field(description="Share of the neuron's train prompts it is active on.")
    explanation: str | None
    explainer: str | None = Field(description="backend:model that wrote the explanation.")
    strategy: str | None = Field(description="The explainer strategy that wrote it.")
    predictions: list[TestPrediction]
    score: HeadScore | None = Field(description="The headline (first) scorer's score.")
    control_score: HeadScore | None = Field(description="Judged with another head's explanation.")
    scores: dict[str, HeadScore] = Field(default_factory=dict, description="Every scorer's score.")
    control_scores: dict[str, HeadScore] = Field(default_factory=dict,
                                                 description="Every scorer's shuffled-control score.")
    test_note: str | None = Field(default=None, description="Why the head's test set is smaller than asked.")
    program: ProgramExplanation | None = Field(default=None, description="The explanation's program and "
                                               "its training accuracy (program strategies).")
    agent: AgentOutcome | None = Field(default=None, description="The agent's loop (agent strategy).")
    agent_rounds: list[AgentRound] = Field(default_factory=list, description="Each round: explanation, "
                                           "probes with their measurements, evaluation.")
    ablation: KSResult | None


class NeuronResult(BaseModel):
    layer: int
    neuron: int
    token: str
    token_id: int
    congruence: float
    prompts: list[TruncatedPrompt] = Field(description="Truncated train contexts, strongest first.")
    attribution_definition: str | None
    mean_attribution: list[list[float]] | None = Field(
        description="Mean head attribution over the prompts: [layer][head] for layers below the neuron's.")
    heads: list[HeadResult]


class CampaignSummaryBlock(BaseModel):
    explanations: CampaignSummary | None
    control: CampaignSummary | None
    ablation: KSResult | None
    scorers: dict[str, ScorerSummary] = Field(default_factory=dict)


class CampaignResults(BaseModel):
    campaign: CampaignProgress
    config: CampaignConfig
    provenance: dict
    summary: CampaignSummaryBlock
    headline_scorer: str
    scores: list[float] = Field(description="Every scored head's explanation score (headline scorer).")
    control_scores: list[float] = Field(description="Scores of the shuffled-explanation control.")
    count: int = Field(description="Neurons in the campaign (the page holds at most limit of them).")
    neurons: list[NeuronResult]


def _summary(raw: dict | None) -> CampaignSummaryBlock:
    raw = raw or {}
    return CampaignSummaryBlock(
        explanations=raw.get("explanations"), control=raw.get("control"), ablation=raw.get("ablation"),
        scorers=raw.get("scorers") or {})


def campaign_results(store: Store, campaign_id: str, skip: int = 0, limit: int | None = None) -> CampaignResults:
    """Everything the campaign has stored so far; neurons ``skip``..``skip+limit`` in full."""
    state = progress(store, campaign_id)
    with store.session() as session:
        campaign = get_campaign(session, campaign_id)
        where = NeuronRow.campaign_id == campaign_id
        count = session.scalar(select(func.count()).select_from(NeuronRow).where(where))
        rows = list(session.scalars(select(NeuronRow).where(where).order_by(NeuronRow.id)
                                    .offset(skip).limit(limit)))
        headline = campaign.config.scorers[0]
        scores = {(r.head_id, r.scorer, r.control): r.payload for r in session.scalars(
            select(ScoreRow).where(ScoreRow.campaign_id == campaign_id))}
        neurons = [_neuron(session, campaign_id, row, scores, headline) for row in rows]
        mine = [(control, s.score) for (_, scorer, control), s in scores.items()
                if scorer == headline and s.score is not None]
        return CampaignResults(
            campaign=state, config=campaign.config, provenance=campaign.provenance or {},
            summary=_summary(campaign.summary), headline_scorer=headline,
            scores=[score for control, score in mine if not control],
            control_scores=[score for control, score in mine if control],
            count=count, neurons=neurons,
        )


def _neuron(session, campaign_id: str, row: NeuronRow, scores: dict, headline: str) -> NeuronResult:
    same = dict(campaign_id=campaign_id, layer=row.layer, neuron=row.neuron)
    prompts = list(session.scalars(
        select(PromptRow.payload).filter_by(split="train", **same).order_by(PromptRow.rank)))
    attribution = session.scalar(select(AttributionRow.payload).filter_by(**same))
    heads = list(session.scalars(select(HeadRow).filter_by(**same).order_by(HeadRow.head_layer, HeadRow.head)))
    return NeuronResult(
        layer=row.layer, neuron=row.neuron, token=row.token, token_id=row.token_id,
        congruence=row.congruence, prompts=prompts,
        attribution_definition=attribution.definition if attribution else None,
        mean_attribution=_mean_scores(attribution) if attribution and attribution.prompts else None,
        heads=[_head(session, head, scores, headline) for head in heads],
    )


def _mean_scores(attribution: NeuronAttribution) -> list[list[float]]:
    n = len(attribution.prompts)
    first = attribution.prompts[0].scores
    return [[sum(p.scores[layer][head] for p in attribution.prompts) / n for head in range(len(first[layer]))]
            for layer in range(len(first))]


def _head(session, head: HeadRow, scores: dict, headline: str) -> HeadResult:
    explanation = session.scalar(select(ExplanationRow).where(ExplanationRow.head_id == head.id))
    classified = {scorer: payload for scorer, payload in session.execute(
        select(ClassificationRow.scorer, ClassificationRow.payload).where(
            ClassificationRow.head_id == head.id, ClassificationRow.control.is_(False)))}
    ablation = session.scalar(select(AblationRow.payload).where(AblationRow.head_id == head.id))
    rounds = list(session.scalars(
        select(AgentRoundRow.payload).where(AgentRoundRow.head_id == head.id).order_by(AgentRoundRow.round)))
    test_set = session.scalar(select(TestSetRow.payload).where(TestSetRow.head_id == head.id))
    explained = explanation.payload if explanation else None
    predictions = []
    if headline in classified:
        others = {name: c.results for name, c in classified.items() if name != headline}
        predictions = [TestPrediction(prompt=r.prompt, active=r.active, answer=r.answer, p_yes=r.p_yes,
                                      others={name: found[i].answer for name, found in others.items()
                                              if i < len(found)})
                       for i, r in enumerate(classified[headline].results)]
    return HeadResult(
        head_layer=head.head_layer, head=head.head, active_fraction=head.active_fraction,
        explanation=explanation.text if explanation else None,
        explainer=f"{explained.backend}:{explained.model}" if explained else None,
        strategy=explained.strategy if explained else None,
        predictions=predictions, score=scores.get((head.id, headline, False)),
        control_score=scores.get((head.id, headline, True)),
        scores={scorer: s for (head_id, scorer, control), s in scores.items()
                if head_id == head.id and not control},
        control_scores={scorer: s for (head_id, scorer, control), s in scores.items()
                        if head_id == head.id and control},
        test_note=test_set.note if test_set else None,
        ablation=ablation.ks if ablation else None,
        program=explained.program if explained else None,
        agent=explained.agent if explained else None, agent_rounds=rounds,
    )
