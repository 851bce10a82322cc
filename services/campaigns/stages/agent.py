"""Stage ``agent`` (docs/method.md step 5, closed loop): a closed-loop explainer's rounds as
work items, for every head at once.

Per head the items run in this order, each planned when the previous ones have finished
(the stage repeats): ``HEAD/0/propose`` (llm: explanation + probes), ``HEAD/0/measure`` (gpu:
the probes through the subject model), ``HEAD/1/propose`` (llm: judge round 0 on the training
prompts, then revise from the measurements), ... up to ``agent_rounds`` rounds, then
``HEAD/final`` (llm: judge the last round, keep the best, write the explanation). A failed
item (a spent budget, say) ends the head's loop early: ``final`` keeps the best round so far
and says why it stopped. Every round is stored with its probes, measurements and evaluation.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from lookups import AgentRound, BudgetExceededError, ClassifyRequest, InvalidInputError, RoundEvaluation, TestPrompt
from services.agent import AgentOutcome, choose_round, measure_probes, probe_agreement
from services.attribution import HeadRef
from services.campaigns.budget import campaign_budget
from services.campaigns.records import (
    StageItem,
    Writer,
    campaign_heads,
    explain_request_for,
    head_by_key,
    neuron_attribution,
)
from services.classify import classify
from services.explain import Explanation
from services.llm.registry import get_scorer, get_strategy, get_template
from services.programs import best_program, program_evaluation
from services.runtime import Runtime
from services.store import Store
from services.store.models import (
    AgentRoundRow,
    Campaign,
    ExplanationRow,
    HeadRow,
    WorkItem,
)
from services.store.statuses import ItemStatus


def queue_of(key: str) -> Literal["gpu", "llm"]:
    return "gpu" if key.endswith("/measure") else "llm"


def _rounds(session: Session, head_id: int) -> list[AgentRound]:
    return list(session.scalars(
        select(AgentRoundRow.payload).where(AgentRoundRow.head_id == head_id).order_by(AgentRoundRow.round)))


def _failures(session: Session, campaign_id: str, head: HeadRow) -> list[str]:
    """Errors of this head's failed agent items."""
    rows = session.execute(select(WorkItem.key, WorkItem.error).where(
        WorkItem.campaign_id == campaign_id, WorkItem.stage == "agent", WorkItem.status == ItemStatus.FAILED)).all()
    return [error or "failed" for key, error in rows if _head_of(key) == head.key]


def _head_of(item_key: str) -> str:
    """``LAYER:NEURON/HL.H`` of an agent item key (``.../ROUND/propose``, ``.../final``...)."""
    return "/".join(item_key.split("/")[:2])


def absorbed(session: Session, campaign_id: str) -> set[int]:
    """Failed round items of heads whose loop went on to ``final``: final keeps the best round
    so far and says why the loop stopped, so trying the round again would change nothing."""
    rows = session.execute(select(WorkItem.id, WorkItem.key, WorkItem.status).where(
        WorkItem.campaign_id == campaign_id, WorkItem.stage == "agent")).all()
    finals = {_head_of(key) for _, key, _ in rows if key.endswith("/final")}
    return {item_id for item_id, key, status in rows
            if status == ItemStatus.FAILED and not key.endswith("/final") and _head_of(key) in finals}


def plan(session: Session, campaign: Campaign) -> list[str]:
    """Each unexplained head's next item (none for a strategy that is not closed-loop); a head
    with a failed item goes to ``final``. Reads the campaign's items and rounds once."""

    config = campaign.config
    if not get_strategy(config.explainer_strategy).closed_loop:
        return []
    items = session.execute(select(WorkItem.key, WorkItem.status).where(
        WorkItem.campaign_id == campaign.id, WorkItem.stage == "agent")).all()
    existing = {key for key, _ in items}
    failed = {_head_of(key) for key, status in items if status == ItemStatus.FAILED}
    explained = set(session.scalars(select(ExplanationRow.head_id).where(ExplanationRow.campaign_id == campaign.id)))
    rounds: dict[int, list[AgentRound]] = {}
    for head_id, round_ in session.execute(select(AgentRoundRow.head_id, AgentRoundRow.payload).where(
            AgentRoundRow.campaign_id == campaign.id).order_by(AgentRoundRow.round)):
        rounds.setdefault(head_id, []).append(round_)
    keys = []
    for head in campaign_heads(session, campaign.id):
        if head.id in explained:
            continue
        done = rounds.get(head.id, [])
        if head.key in failed or (len(done) >= config.agent_rounds and done[-1].measurements is not None):
            key = f"{head.key}/final"
        elif not done:
            key = f"{head.key}/0/propose"
        elif done[-1].measurements is None:
            key = f"{head.key}/{len(done) - 1}/measure"
        else:
            key = f"{head.key}/{len(done)}/propose"
        if key not in existing:
            keys.append(key)
    return keys


def compute(runtime: Runtime, store: Store, item: StageItem) -> Writer:
    head_key, _, step = item.key.rpartition("/")
    if step == "final":
        return _final(runtime, store, item, head_key)
    head_key, _, round_ = head_key.rpartition("/")
    if step == "measure":
        return _measure(runtime, store, item, head_key, int(round_))
    return _propose(runtime, store, item, head_key, int(round_))


def _measure(runtime: Runtime, store: Store, item: StageItem, head_key: str, index: int) -> Writer:

    config = item.config
    with store.session() as session:
        head = head_by_key(session, item.campaign_id, head_key)
        round_ = _rounds(session, head.id)[index]
        attribution = neuron_attribution(session, item.campaign_id, head.layer, head.neuron)
    measured = measure_probes(runtime.model(config.model), attribution, HeadRef(layer=head.head_layer, head=head.head),
                              round_.probes, max_tokens=min(config.max_prompt_tokens, config.context_length - 1),
                              activity=config.activity)
    done = round_.model_copy(update={"measurements": measured})
    return _update_round(head.id, done)


def _evaluate(runtime: Runtime, store: Store, item: StageItem, request, round_: AgentRound) -> AgentRound:
    """The round with its evaluation: the judge labels the neuron's training prompts from the
    explanation alone (the detection scorer: a few calls), plus the probes' agreement. A
    program strategy's round runs its program on them instead, in the sandbox: no judge call."""

    config = item.config
    strategy = get_strategy(config.explainer_strategy)
    if strategy.programs:
        return round_.model_copy(update={"evaluation": program_evaluation(strategy, round_.raw, request.examples)})
    examples = [TestPrompt(text=e.text, active=e.active) for e in request.examples]
    judge = runtime.llm(config.classifier, campaign_budget(store, item), config.llm_prices)
    judged = classify(judge, get_scorer("detection"), get_template(config.classifier_template),
                      ClassifyRequest(token=request.token, explanation=round_.explanation, prompts=examples))
    correct = sum(r.answer != "unparseable" and (r.answer == "yes") == r.active for r in judged.results)
    probe_correct, probe_total = probe_agreement(round_.measurements or [])
    evaluation = RoundEvaluation(train_correct=correct, train_total=len(examples),
                                 probe_correct=probe_correct, probe_total=probe_total)
    return round_.model_copy(update={"evaluation": evaluation, "judge_calls": judged.calls})


def _loop(store: Store, item: StageItem, head_key: str):
    """What a proposal or the final step starts from: the strategy and template, the head, its
    explain request, its rounds so far and its failed items' errors."""

    config = item.config
    with store.session() as session:
        head = head_by_key(session, item.campaign_id, head_key)
        request = explain_request_for(session, item.campaign_id, head, config)
        rounds = _rounds(session, head.id)
        failures = _failures(session, item.campaign_id, head)
    return (get_strategy(config.explainer_strategy), get_template(config.explainer_template), head, request,
            rounds, failures)


def _propose(runtime: Runtime, store: Store, item: StageItem, head_key: str, index: int) -> Writer:
    strategy, template, head, request, rounds, _ = _loop(store, item, head_key)
    evaluated = None
    if index == 0:
        llm_request = strategy.request(template, request)
    else:
        evaluated = _evaluate(runtime, store, item, request, rounds[index - 1])
        llm_request = strategy.revision(template, request, evaluated)
    response = runtime.llm(item.config.explainer, campaign_budget(store, item),
                           item.config.llm_prices).call(llm_request)
    explanation, probes = strategy.parse(response.completion.text, request.token)
    new = AgentRound(round=index, explanation=explanation, probes=probes, raw=response.completion.text,
                     call=response.record, measurements=[] if strategy.programs else None)

    def write(session: Session) -> None:
        if evaluated is not None:
            _update_round(head.id, evaluated)(session)
        session.add(AgentRoundRow(
            campaign_id=item.campaign_id, head_id=head.id, round=index, input_tokens=new.call.input_tokens,
            output_tokens=new.call.output_tokens, cost_usd=new.call.cost_usd, payload=new))

    return write


def _final(runtime: Runtime, store: Store, item: StageItem, head_key: str) -> Writer:

    strategy, template, head, request, rounds, failures = _loop(store, item, head_key)
    if not rounds:
        raise InvalidInputError(f"head {head_key}: the agent has no round to keep ({'; '.join(failures)})")
    stopped = f"stopped early: {failures[0]}" if failures else "all rounds done"
    evaluated = None
    if rounds[-1].evaluation is None and rounds[-1].measurements is not None:
        try:
            rounds[-1] = evaluated = _evaluate(runtime, store, item, request, rounds[-1])
        except BudgetExceededError as error:
            stopped = f"budget exhausted before round {rounds[-1].round} was evaluated: {error}"
    program = best_program(strategy, [r.raw for r in rounds], request.examples) if strategy.programs else None
    chosen = rounds[program.sample] if program else choose_round(rounds)
    outcome = AgentOutcome(chosen_round=chosen.round, rounds=len(rounds), stopped=stopped,
                           accuracies=[r.evaluation.accuracy if r.evaluation else None for r in rounds])
    explanation = Explanation(
        neuron=request.neuron, head=request.head, token=request.token, text=chosen.explanation,
        strategy=strategy.name, strategy_version=strategy.version(template), template=template.name,
        template_version=template.version, backend=chosen.call.backend, model=chosen.call.model,
        call=chosen.call, agent=outcome, program=program)

    def write(session: Session) -> None:
        if evaluated is not None:
            _update_round(head.id, evaluated)(session)
        # The rounds' rows already count every token and dollar of the loop.
        session.add(ExplanationRow(campaign_id=item.campaign_id, head_id=head.id, text=explanation.text,
                                   input_tokens=0, output_tokens=0, cost_usd=0.0,
                                   payload=explanation))

    return write


def _update_round(head_id: int, round_: AgentRound) -> Writer:
    """Store a round's measurements, or its evaluation with the judge calls' tokens and cost
    (a round is evaluated once: by the next proposal, or by ``final``)."""
    def write(session: Session) -> None:
        row = session.scalars(select(AgentRoundRow).where(
            AgentRoundRow.head_id == head_id, AgentRoundRow.round == round_.round)).one()
        if row.payload.evaluation is None and round_.evaluation is not None:
            row.input_tokens += sum(c.input_tokens for c in round_.judge_calls)
            row.output_tokens += sum(c.output_tokens for c in round_.judge_calls)
            row.cost_usd += sum(c.cost_usd for c in round_.judge_calls)
        row.payload = round_

    return write
