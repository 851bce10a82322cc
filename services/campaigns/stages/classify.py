"""Stage ``classify`` (docs/method.md step 7): each scorer's judge classifies every explained
head's test prompts from its explanation, and, as the shuffled control, from another head's."""

from __future__ import annotations

import random

from sqlalchemy import select
from sqlalchemy.orm import Session

from lookups import ClassifyRequest, TestPrompt
from services.campaigns.budget import campaign_budget
from services.campaigns.config import CampaignConfig
from services.campaigns.records import (
    StageItem,
    Writer,
    head_by_key,
    neuron_attribution,
    neuron_key,
    stored_token,
    train_labels,
)
from services.head_reads import token_pieces
from services.llm.batch import require_answered
from services.llm.registry import get_scorer, get_template
from services.runtime import Runtime
from services.store import Store
from services.store.models import Campaign, ClassificationRow, ExplanationRow, HeadRow, TestSetRow
from services.work import ClassifyWork, classify_prompts


def derangement(n: int, seed: int = 0) -> list[int]:
    """A permutation with no fixed point: head i gets the explanation of head ``result[i]``."""
    if n < 2:
        raise ValueError("the shuffled control needs at least two heads")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [order[(order.index(i) + 1) % n] for i in range(n)]


def classifiable(session: Session, campaign_id: str) -> list[HeadRow]:
    """Heads with an explanation and a two-class test set, in a stable order."""
    rows = session.execute(
        select(HeadRow).join(ExplanationRow, ExplanationRow.head_id == HeadRow.id)
        .join(TestSetRow, TestSetRow.head_id == HeadRow.id)
        .where(HeadRow.campaign_id == campaign_id, TestSetRow.one_class.is_(False))
        .order_by(HeadRow.id)).scalars()
    return list(rows)


def plan(session: Session, campaign: Campaign) -> list[str]:
    """``HEAD_KEY/SCORER/explanation`` and, with two heads or more, ``HEAD_KEY/SCORER/control``."""
    heads = classifiable(session, campaign.id)
    kinds = ["explanation", "control"] if len(heads) >= 2 else ["explanation"]
    return [f"{h.key}/{scorer}/{kind}" for kind in kinds for scorer in campaign.config.scorers for h in heads]


def classify_request_for(session: Session, campaign_id: str, key: str, config: CampaignConfig,
                         tokenizer=None) -> tuple[int, str, bool, ClassifyRequest]:
    """The classify request of one item ``HEAD_KEY/SCORER/explanation|control``: the head's
    labelled test prompts with its own explanation, or, for the shuffled control, with the
    explanation of the head a seeded derangement gives it; ``train`` is the evidence that
    explanation was written from (the donor head's training prompts and labels). Returns (head
    id, scorer, control, request); the stage and ``lookups estimate`` both build requests here.
    A program scorer gets the explanation's program (its prose when it has none) and, given the
    subject model's ``tokenizer``, each prompt's tokens as text."""
    head_key, scorer, kind = key.rsplit("/", 2)
    control = kind == "control"
    head = head_by_key(session, campaign_id, head_key)
    donor = head
    if control:
        heads = classifiable(session, campaign_id)
        index = next(i for i, h in enumerate(heads) if h.id == head.id)
        donor = heads[derangement(len(heads), config.seed)[index]]
    explanation, payload = session.execute(select(ExplanationRow.text, ExplanationRow.payload)
                                           .where(ExplanationRow.head_id == donor.id)).one()
    if get_scorer(scorer).programs and payload.program is not None:
        explanation = payload.program.source or explanation
    test_set = session.scalars(select(TestSetRow.payload).where(TestSetRow.head_id == head.id)).one()
    train = neuron_attribution(session, campaign_id, donor.layer, donor.neuron).prompts
    request = ClassifyRequest(
        neuron=neuron_key(head.layer, head.neuron), head=f"{head.head_layer}.{head.head}",
        token=stored_token(session, campaign_id, head.layer, head.neuron), explanation=explanation,
        prompts=[TestPrompt(text=p.prompt.text, active=p.active, effect=p.effect,
                            pieces=token_pieces(tokenizer, p.prompt.tokens) if tokenizer else None)
                 for p in test_set.prompts],
        train=[TestPrompt(text=p.text, active=active)
               for p, active in zip(train, train_labels(session, campaign_id, donor, config))])
    return head.id, scorer, control, request


def compute(runtime: Runtime, store: Store, item: StageItem) -> Writer:
    config = item.config
    programs = get_scorer(item.key.rsplit("/", 2)[1]).programs
    tokenizer = runtime.model(config.model).tokenizer if programs else None
    with store.session() as session:
        head_id, scorer, control, request = classify_request_for(session, item.campaign_id, item.key, config,
                                                                 tokenizer)
    if config.llm_mode == "batch":  # answered by the classify_batch stage's provider batch
        require_answered(runtime.llm(config.classifier, None, config.llm_prices),
                         get_scorer(scorer).requests(get_template(config.classifier_template), request))
    result = classify_prompts(runtime, ClassifyWork(
        backend=config.classifier, template=config.classifier_template, scorer=scorer, request=request,
        llm_prices=config.llm_prices), campaign_budget(store, item))

    def write(session: Session) -> None:
        session.add(ClassificationRow(
            campaign_id=item.campaign_id, head_id=head_id, scorer=scorer, control=control,
            input_tokens=sum(c.input_tokens for c in result.calls),
            output_tokens=sum(c.output_tokens for c in result.calls),
            cost_usd=sum(c.cost_usd for c in result.calls),
            payload=result))

    return write
