"""The campaign's stages, in order, each as: which work items it has, and how one is computed.

``plan`` reads the store and names the stage's items (a key each). ``compute`` does the work of
one item outside any transaction and returns a ``Writer`` that stores the result; the caller runs
the writer in the same transaction that marks the item done, so a result is written exactly once
even when a task is delivered twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.campaigns import agent_stage
from services.campaigns.config import CampaignConfig
from services.campaigns.records import (
    Job,
    Writer,
    campaign_heads,
    campaign_neurons,
    explain_request_for,
    head_by_key,
    neuron_attribution,
    neuron_key,
    remaining_budget,
    set_provenance,
    stored_token,
)
from services.campaigns.runtime import Runtime
from services.corpus import CorpusInfo
from services.schemas import NeuronContexts, NeuronRef, TruncatedPrompt
from services.store import Store
from services.store.models import (
    AblationRow,
    AttributionRow,
    Campaign,
    ClassificationRow,
    ContextRow,
    ExplanationRow,
    HeadRow,
    NeuronRow,
    PromptRow,
    ScoreRow,
    TestSetRow,
)


@dataclass(frozen=True)
class Stage:
    name: str
    queue: Literal["gpu", "llm"]
    plan: Callable[[Session, Campaign], list[str]]
    compute: Callable[[Runtime, Store, Job], Writer]
    # A repeating stage plans again whenever its items have all finished, until its plan has
    # nothing new (the agent's rounds); ``queue_of`` routes each of its items by key.
    repeats: bool = False
    queue_of: Callable[[str], Literal["gpu", "llm"]] | None = None

    def item_queue(self, key: str) -> Literal["gpu", "llm"]:
        return self.queue_of(key) if self.queue_of else self.queue


# ---------------------------------------------------------------- 1. neurons


def plan_neurons(session: Session, campaign: Campaign) -> list[str]:
    return ["all"]


def compute_neurons(runtime: Runtime, store: Store, job: Job) -> Writer:
    from services.neurons import default_layers, describe_neurons, next_token_neurons, random_neurons

    config = job.config
    model = runtime.model(config.model)
    layers = config.layers or default_layers(model)
    if config.neuron_refs() is not None:
        found = describe_neurons(model, config.neuron_refs())
    elif config.baseline == "random":
        found = random_neurons(model, layers, config.per_layer, seed=config.seed)
    else:
        found = next_token_neurons(model, layers, config.per_layer)

    def write(session: Session) -> None:
        session.add_all(NeuronRow(campaign_id=job.campaign_id, layer=n.layer, neuron=n.neuron,
                                  token=n.token, token_id=n.token_id, congruence=n.congruence)
                        for n in found)
        set_provenance(session, job.campaign_id, model=model.info.model_dump())

    return write


# ---------------------------------------------------------------- 2. scan (train split)


def plan_scan(session: Session, campaign: Campaign) -> list[str]:
    return ["train"] if campaign_neurons(session, campaign.id) else []


def compute_scan(runtime: Runtime, store: Store, job: Job) -> Writer:
    from services.scan import scan_corpus

    config = job.config
    with store.session() as session:
        refs = [NeuronRef(layer=n.layer, index=n.neuron) for n in campaign_neurons(session, job.campaign_id)]
    documents = runtime.documents(config, "train")
    contexts = scan_corpus(runtime.model(config.model), refs, documents, top_k=config.top_k,
                           context_length=config.context_length)
    info = CorpusInfo(spec=config.corpus, split="train", n_documents=len(documents),
                      fingerprint=_fingerprint(documents))

    def write(session: Session) -> None:
        for context in contexts:
            session.add_all(
                ContextRow(campaign_id=job.campaign_id, split="train", layer=context.neuron.layer,
                           neuron=context.neuron.index, rank=rank, doc_id=hit.doc_id,
                           position=hit.position, activation=hit.activation)
                for rank, hit in enumerate(context.hits))
        set_provenance(session, job.campaign_id, corpus_train=info.model_dump())

    return write


def _fingerprint(documents) -> str:
    from services.corpus import Corpus

    return Corpus(spec="", documents=list(documents)).fingerprint()


# ---------------------------------------------------------------- 3. truncation


def plan_truncate(session: Session, campaign: Campaign) -> list[str]:
    rows = session.execute(select(ContextRow.layer, ContextRow.neuron).where(
        ContextRow.campaign_id == campaign.id, ContextRow.split == "train").distinct()).all()
    return sorted({neuron_key(layer, neuron) for layer, neuron in rows})


def compute_truncate(runtime: Runtime, store: Store, job: Job) -> Writer:
    from services.schemas import ContextHit
    from services.truncate import truncate_contexts

    config, ref = job.config, NeuronRef.parse(job.key)
    with store.session() as session:
        rows = session.scalars(select(ContextRow).where(
            ContextRow.campaign_id == job.campaign_id, ContextRow.split == "train",
            ContextRow.layer == ref.layer, ContextRow.neuron == ref.index).order_by(ContextRow.rank))
        hits = [ContextHit(doc_id=r.doc_id, position=r.position, activation=r.activation) for r in rows]
    truncated = truncate_contexts(
        runtime.model(config.model), [NeuronContexts(neuron=ref, hits=hits)],
        runtime.documents(config, "train"), context_length=config.context_length,
        keep_fraction=config.keep_fraction, max_prompt_tokens=config.max_prompt_tokens,
        prompts_per_neuron=config.prompts_per_neuron,
    )[0]

    def write(session: Session) -> None:
        session.add_all(PromptRow(campaign_id=job.campaign_id, split="train", layer=ref.layer,
                                  neuron=ref.index, rank=rank, payload=p.model_dump())
                        for rank, p in enumerate(truncated.prompts or []))

    return write


def _prompts(session: Session, campaign_id: str, ref: NeuronRef) -> list[TruncatedPrompt]:
    rows = session.scalars(select(PromptRow).where(
        PromptRow.campaign_id == campaign_id, PromptRow.split == "train",
        PromptRow.layer == ref.layer, PromptRow.neuron == ref.index).order_by(PromptRow.rank))
    return [TruncatedPrompt.model_validate(r.payload) for r in rows]


# ---------------------------------------------------------------- 4. head attribution


def plan_attribute(session: Session, campaign: Campaign) -> list[str]:
    rows = session.execute(select(PromptRow.layer, PromptRow.neuron).where(
        PromptRow.campaign_id == campaign.id, PromptRow.split == "train").distinct()).all()
    return sorted({neuron_key(layer, neuron) for layer, neuron in rows})


def compute_attribute(runtime: Runtime, store: Store, job: Job) -> Writer:
    from services.head_reads import head_reads
    from services.heads import attribute_neuron

    config, ref = job.config, NeuronRef.parse(job.key)
    with store.session() as session:
        prompts = _prompts(session, job.campaign_id, ref)
    model = runtime.model(config.model)
    attribution = attribute_neuron(model, ref, prompts, active_stds=config.active_stds,
                                   worth_range=config.worth_range)
    reads = head_reads(model, [p.tokens for p in prompts], [a.head for a in attribution.worth_explaining])
    attribution = attribution.model_copy(update={"reads": reads})

    def write(session: Session) -> None:
        session.add(AttributionRow(campaign_id=job.campaign_id, layer=ref.layer, neuron=ref.index,
                                   definition=attribution.definition,
                                   payload=attribution.model_dump(mode="json")))
        session.add_all(HeadRow(campaign_id=job.campaign_id, layer=ref.layer, neuron=ref.index,
                                head_layer=a.head.layer, head=a.head.head,
                                active_fraction=a.active_fraction)
                        for a in attribution.worth_explaining)

    return write


# ---------------------------------------------------------------- 5. explanations


def plan_explain(session: Session, campaign: Campaign) -> list[str]:
    """One item per head, unless the strategy is closed-loop (the agent stage explains then)."""
    from services.llm.registry import get_strategy

    if get_strategy(CampaignConfig.model_validate(campaign.config).explainer_strategy).closed_loop:
        return []
    return [h.key for h in campaign_heads(session, campaign.id)]


def compute_explain(runtime: Runtime, store: Store, job: Job) -> Writer:
    from services.explain import explain
    from services.llm.registry import get_strategy, get_template

    config = job.config
    with store.session() as session:
        head = head_by_key(session, job.campaign_id, job.key)
        head_id, request = head.id, explain_request_for(session, job.campaign_id, head)
    client = runtime.llm(config.explainer, remaining_budget(store, job))
    explanation = explain(client, get_strategy(config.explainer_strategy),
                          get_template(config.explainer_template), [request])[0]

    def write(session: Session) -> None:
        session.add(ExplanationRow(
            campaign_id=job.campaign_id, head_id=head_id, text=explanation.text,
            input_tokens=explanation.call.input_tokens, output_tokens=explanation.call.output_tokens,
            cost_usd=explanation.call.cost_usd, payload=explanation.model_dump(mode="json")))

    return write


# ---------------------------------------------------------------- 6. held-out test prompts


def plan_test_prompts(session: Session, campaign: Campaign) -> list[str]:
    return ["test"] if campaign_heads(session, campaign.id) else []


def compute_test_prompts(runtime: Runtime, store: Store, job: Job) -> Writer:
    from services.test_prompts import held_out_test_prompts

    config = job.config
    with store.session() as session:
        heads = campaign_heads(session, job.campaign_id)
        neurons = sorted({(h.layer, h.neuron) for h in heads})
        attributions = [neuron_attribution(session, job.campaign_id, layer, neuron) for layer, neuron in neurons]
        head_ids = {(h.layer, h.neuron, h.head_layer, h.head): h.id for h in heads}
    documents = runtime.documents(config, "test")
    test_sets = held_out_test_prompts(
        runtime.model(config.model), attributions, documents, per_head=config.test_prompts_per_head,
        top_k=config.top_k, context_length=config.context_length)
    info = CorpusInfo(spec=config.corpus, split="test", n_documents=len(documents),
                      fingerprint=_fingerprint(documents))

    def write(session: Session) -> None:
        for test_set in test_sets:
            key = (test_set.neuron.layer, test_set.neuron.index, test_set.head.layer, test_set.head.head)
            session.add(TestSetRow(campaign_id=job.campaign_id, head_id=head_ids[key],
                                   one_class=test_set.one_class,
                                   payload=test_set.model_dump(mode="json")))
        set_provenance(session, job.campaign_id, corpus_test=info.model_dump())

    return write


# ---------------------------------------------------------------- 7. classification


def _classifiable(session: Session, campaign_id: str) -> list[HeadRow]:
    """Heads with an explanation and a two-class test set, in a stable order."""
    rows = session.execute(
        select(HeadRow).join(ExplanationRow, ExplanationRow.head_id == HeadRow.id)
        .join(TestSetRow, TestSetRow.head_id == HeadRow.id)
        .where(HeadRow.campaign_id == campaign_id, TestSetRow.one_class.is_(False))
        .order_by(HeadRow.id)).scalars()
    return list(rows)


def plan_classify(session: Session, campaign: Campaign) -> list[str]:
    """``HEAD_KEY/SCORER/explanation`` and, with two heads or more, ``HEAD_KEY/SCORER/control``."""
    heads = _classifiable(session, campaign.id)
    kinds = ["explanation", "control"] if len(heads) >= 2 else ["explanation"]
    scorers = CampaignConfig.model_validate(campaign.config).scorers
    return [f"{h.key}/{scorer}/{kind}" for kind in kinds for scorer in scorers for h in heads]


def classify_request_for(session: Session, campaign_id: str, key: str, seed: int):
    """The classify request of one item ``HEAD_KEY/SCORER/explanation|control``: the head's
    labelled test prompts with its own explanation, or, for the shuffled control, with the
    explanation of the head a seeded derangement gives it. Returns (head id, scorer, control,
    request); the stage and ``lookups estimate`` both build requests here."""
    from services.classify import ClassifyRequest, TestPrompt
    from services.score import derangement
    from services.test_prompts import HeadTestSet

    head_key, scorer, kind = key.rsplit("/", 2)
    control = kind == "control"
    head = head_by_key(session, campaign_id, head_key)
    donor = head
    if control:
        heads = _classifiable(session, campaign_id)
        index = next(i for i, h in enumerate(heads) if h.id == head.id)
        donor = heads[derangement(len(heads), seed)[index]]
    explanation = session.scalar(select(ExplanationRow.text).where(ExplanationRow.head_id == donor.id))
    test_set = HeadTestSet.model_validate(session.scalar(
        select(TestSetRow.payload).where(TestSetRow.head_id == head.id)))
    request = ClassifyRequest(
        neuron=neuron_key(head.layer, head.neuron), head=f"{head.head_layer}.{head.head}",
        token=stored_token(session, campaign_id, head.layer, head.neuron), explanation=explanation,
        prompts=[TestPrompt(text=p.prompt.text, active=p.active, effect=p.effect) for p in test_set.prompts])
    return head.id, scorer, control, request


def compute_classify(runtime: Runtime, store: Store, job: Job) -> Writer:
    from services.classify import classify
    from services.llm.registry import get_scorer, get_template

    config = job.config
    with store.session() as session:
        head_id, scorer, control, request = classify_request_for(session, job.campaign_id, job.key, config.seed)
    client = runtime.llm(config.classifier, remaining_budget(store, job))
    result = classify(client, get_scorer(scorer), get_template(config.classifier_template), request)

    def write(session: Session) -> None:
        session.add(ClassificationRow(
            campaign_id=job.campaign_id, head_id=head_id, scorer=scorer, control=control,
            input_tokens=sum(c.input_tokens for c in result.calls),
            output_tokens=sum(c.output_tokens for c in result.calls),
            cost_usd=sum(c.cost_usd for c in result.calls),
            payload=result.model_dump(mode="json")))

    return write


# ---------------------------------------------------------------- 8. scores


def plan_score(session: Session, campaign: Campaign) -> list[str]:
    return ["all"] if campaign_heads(session, campaign.id) else []


def compute_score(runtime: Runtime, store: Store, job: Job) -> Writer:
    """Every scorer's head scores (real and control), its summaries and the paired difference;
    the first scorer's also stand as the campaign's headline ``explanations``/``control``."""
    from services.classify import HeadClassification
    from services.llm.registry import get_scorer
    from services.score import HeadScore, ScorerSummary, paired_difference, summarize

    with store.session() as session:
        heads = campaign_heads(session, job.campaign_id)
        classified = {(r.head_id, r.scorer, r.control): HeadClassification.model_validate(r.payload)
                      for r in session.scalars(select(ClassificationRow).where(
                          ClassificationRow.campaign_id == job.campaign_id))}
        one_class = set(session.scalars(select(TestSetRow.head_id).where(
            TestSetRow.campaign_id == job.campaign_id, TestSetRow.one_class.is_(True))))
    scores: dict[tuple[int, str, bool], HeadScore] = {}
    by_scorer: dict[str, dict] = {}  # name -> ScorerSummary as JSON
    for name in job.config.scorers:
        scorer = get_scorer(name)
        for head in heads:
            for control in (False, True):
                found = classified.get((head.id, name, control))
                if found is not None:
                    scores[head.id, name, control] = scorer.score(found)
                elif not control:
                    reason = ("test labels are all one class" if head.id in one_class
                              else "no classification (a failed or skipped item)")
                    scores[head.id, name, control] = HeadScore(
                        neuron=neuron_key(head.layer, head.neuron), head=f"{head.head_layer}.{head.head}",
                        score=None, tp=0, fn=0, tn=0, fp=0, unparseable=0, skipped=reason)
        real = [scores[h.id, name, False] for h in heads]
        control = [scores[h.id, name, True] for h in heads if (h.id, name, True) in scores]
        by_scorer[name] = ScorerSummary(
            explanations=summarize(real, [c for (_, n, ctl), c in classified.items() if n == name and not ctl]),
            control=summarize(control),
            paired=paired_difference([(scores[h.id, name, False], scores[h.id, name, True])
                                      for h in heads if (h.id, name, True) in scores]),
            calls=sum(len(c.calls) for (_, n, _), c in classified.items() if n == name),
        ).model_dump(mode="json")
    headline = by_scorer[job.config.scorers[0]]
    summary = {"explanations": headline["explanations"], "control": headline["control"],
               "scorers": by_scorer}

    def write(session: Session) -> None:
        session.add_all(ScoreRow(campaign_id=job.campaign_id, head_id=head_id, scorer=scorer,
                                 control=control, score=score.score, payload=score.model_dump(mode="json"))
                        for (head_id, scorer, control), score in scores.items())
        campaign = session.get(Campaign, job.campaign_id)
        campaign.summary = {**(campaign.summary or {}), **summary}

    return write


# ---------------------------------------------------------------- 9. ablation


def plan_ablate(session: Session, campaign: Campaign) -> list[str]:
    if not CampaignConfig.model_validate(campaign.config).ablation:
        return []
    return [h.key for h in campaign_heads(session, campaign.id)]


def compute_ablate(runtime: Runtime, store: Store, job: Job) -> Writer:
    from services.ablation import ablate_head
    from services.heads import HeadRef

    with store.session() as session:
        head = head_by_key(session, job.campaign_id, job.key)
        attribution = neuron_attribution(session, job.campaign_id, head.layer, head.neuron)
    result = ablate_head(runtime.model(job.config.model), attribution,
                         HeadRef(layer=head.head_layer, head=head.head))

    def write(session: Session) -> None:
        session.add(AblationRow(campaign_id=job.campaign_id, head_id=head.id,
                                payload=result.model_dump(mode="json")))

    return write

STAGES: list[Stage] = [
    Stage("neurons", "gpu", plan_neurons, compute_neurons),
    Stage("scan", "gpu", plan_scan, compute_scan),
    Stage("truncate", "gpu", plan_truncate, compute_truncate),
    Stage("attribute", "gpu", plan_attribute, compute_attribute),
    Stage("explain", "llm", plan_explain, compute_explain),
    Stage("agent", "llm", agent_stage.plan_agent, agent_stage.compute_agent, repeats=True,
          queue_of=agent_stage.agent_queue),
    Stage("test_prompts", "gpu", plan_test_prompts, compute_test_prompts),
    Stage("classify", "llm", plan_classify, compute_classify),
    Stage("score", "llm", plan_score, compute_score),
    Stage("ablate", "gpu", plan_ablate, compute_ablate),
]
STAGE_BY_NAME = {stage.name: stage for stage in STAGES}
