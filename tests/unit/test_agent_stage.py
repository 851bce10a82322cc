"""The explanation agent's closed loop in a real campaign: tiny model, real store, the fake OpenAI
server as explainer and judge. Rounds are stored with their probes, measurements and
evaluations; rejected probes say why; the explanation kept is the best-evaluated round; the
held-out test prompts never reach the agent; a failure ends the loop with the best round so far.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).parent / "llm"))
from fake_openai import FakeOpenAI, error  # noqa: E402

from services.agent import choose_round  # noqa: E402
from services.campaigns.config import CampaignConfig  # noqa: E402
from services.campaigns.execute import execute_item, run_in_process  # noqa: E402
from services.campaigns.lifecycle import advance, create_campaign  # noqa: E402
from services.campaigns.stages import STAGE_BY_NAME  # noqa: E402
from services.store import Store  # noqa: E402
from services.store.models import (  # noqa: E402
    AgentRoundRow,
    Campaign,
    ExplanationRow,
    HeadRow,
    ScoreRow,
    WorkItem,
)
from services.store.models import TestSetRow as HeldOutRow  # noqa: E402  (not a test class)
from tests.conftest import tiny_campaign  # noqa: E402

LONG_PROBE = " ".join(["word"] * 300)


def agent_llm(prompt: str) -> str:
    """Round 0 says every document is active; later rounds say none is. The judge follows the
    explanation (names every example, or none); the zero-shot judge says Yes."""
    if "numbered examples" in prompt:
        n = len(re.findall(r'^Example \d+: """', prompt, re.M))
        return "none" if "never active" in prompt.split("Above is an explanation")[0] else ", ".join(
            str(i) for i in range(1, n + 1))
    if "Answer:" in prompt:
        return "Yes"
    token = re.search(r'next token is "(.*?)"', prompt).group(1)
    claim = "always active" if "First, explain" in prompt else "never active"
    return (f"EXPLANATION: It is {claim} on lists.\nACTIVE: The first item of the list is the\n"
            f"ACTIVE: {token.strip()}\nINACTIVE: {LONG_PROBE}\nINACTIVE: Nothing to see here at all")


@pytest.fixture
def fake_llm():
    with FakeOpenAI() as server:
        server.respond = agent_llm
        yield server


@pytest.fixture
def config(tiny_gpt2_dir, corpus_path, fake_llm, tmp_path) -> CampaignConfig:
    return tiny_campaign(tiny_gpt2_dir, corpus_path, f"openai-compatible:{fake_llm.url}:fake-{tmp_path.name}",
                         explainer_strategy="agent", agent_rounds=2, ablation=False)


def stored(store: Store, campaign_id: str):
    with store.session() as session:
        heads = list(session.scalars(select(HeadRow).where(HeadRow.campaign_id == campaign_id)))
        rounds = {h.id: [r.payload for r in session.scalars(
            select(AgentRoundRow).where(AgentRoundRow.head_id == h.id).order_by(AgentRoundRow.round))]
            for h in heads}
        explanations = {r.head_id: r.payload for r in session.scalars(
            select(ExplanationRow).where(ExplanationRow.campaign_id == campaign_id))}
        items = list(session.scalars(select(WorkItem).where(
            WorkItem.campaign_id == campaign_id, WorkItem.stage == "agent")))
    return heads, rounds, explanations, items


@pytest.mark.slow  # runs a whole campaign in-process
def test_the_loop_measures_probes_revises_and_keeps_the_best_round(store, config, runtime, fake_llm):
    campaign_id = create_campaign(store, config)
    final = run_in_process(store, campaign_id, runtime)
    heads, rounds, explanations, items = stored(store, campaign_id)

    assert final.status == "completed" and heads
    assert next(s for s in final.stages if s.stage == "explain").total == 0  # the agent explains
    assert {(i.key.rsplit("/", 1)[-1], i.queue) for i in items} == {
        ("propose", "llm"), ("measure", "gpu"), ("final", "llm")}
    assert len(items) == len(heads) * (2 + 2 + 1) and all(i.status == "done" for i in items)
    for head in heads:
        assert [r.round for r in rounds[head.id]] == [0, 1]
        for round_ in rounds[head.id]:
            verdicts = {m.text: m for m in round_.measurements}
            assert isinstance(verdicts["The first item of the list is the"].active, bool)
            assert verdicts["The first item of the list is the"].attribution is not None
            assert verdicts[""].rejected == "it tokenizes to nothing" and verdicts[""].active is None
            assert "over the limit" in verdicts[LONG_PROBE].rejected
            e = round_.evaluation
            assert e.train_total > 0 and e.probe_total == 2 and round_.judge_calls
        chosen = choose_round(rounds[head.id])
        kept = explanations[head.id]
        assert kept.text == chosen.explanation and kept.strategy == "agent"
        assert kept.agent.chosen_round == chosen.round
        assert kept.agent.accuracies == [r.evaluation.accuracy for r in rounds[head.id]]
        assert kept.agent.stopped == "all rounds done"
    # both claims were kept somewhere: which wins depends on each head's share of active prompts
    assert {e.text for e in explanations.values()} <= {"It is always active on lists.",
                                                          "It is never active on lists."}
    revisions = [r["body"]["messages"][-1]["content"] for r in fake_llm.requests
                 if "Your explanation in round 0" in r["body"]["messages"][-1]["content"]]
    assert revisions and "rejected: it tokenizes to nothing" in revisions[0]
    assert re.search(r"measured (ACTIVE|inactive) \(attribution", revisions[0])
    with store.session() as session:
        assert session.scalar(select(ScoreRow.id).where(ScoreRow.campaign_id == campaign_id)) is not None


@pytest.mark.slow  # runs a whole campaign in-process
def test_rounds_and_probes_reach_the_results_and_the_report(store, config, runtime):
    from services.campaigns.results import campaign_results
    from services.report import render_report

    campaign_id = create_campaign(store, config)
    run_in_process(store, campaign_id, runtime)
    heads = [h for n in campaign_results(store, campaign_id).neurons for h in n.heads]
    assert heads and all(len(h.agent_rounds) == 2 and h.agent.rounds == 2 for h in heads)
    assert all(h.agent_rounds[h.agent.chosen_round].explanation == h.explanation for h in heads)
    html = render_report(store, campaign_id)
    assert html.count("Agent: 2 round(s), kept round") == len(heads)
    assert "rejected: it tokenizes to nothing" in html and "The first item of the list is the" in html


@pytest.mark.slow  # runs a whole campaign in-process
def test_the_agent_never_sees_the_held_out_test_prompts(store, config, runtime, fake_llm):
    campaign_id = create_campaign(store, config)
    run_in_process(store, campaign_id, runtime)
    with store.session() as session:
        tests = [p.prompt.text for payload in session.scalars(
            select(HeldOutRow.payload).where(HeldOutRow.campaign_id == campaign_id)) for p in payload.prompts]
    agent_prompts = [r["body"]["messages"][-1]["content"] for r in fake_llm.requests
                     if "Answer:" not in r["body"]["messages"][-1]["content"]]
    held_out = [t for t in tests if len(t) > 30]
    assert agent_prompts and held_out
    assert not any(t in prompt for t in held_out for prompt in agent_prompts)


@pytest.mark.slow  # runs a whole campaign in-process
def test_a_failed_round_ends_the_loop_with_the_best_round_so_far(store, config, runtime, fake_llm):
    """A refused revision (as a spent budget would) fails that item; final keeps round 0."""
    fake_llm.refuse = lambda prompt: error(400, "revision refused") if "Your explanation in round" in prompt else None
    campaign_id = create_campaign(store, config)
    final = run_in_process(store, campaign_id, runtime)
    heads, rounds, explanations, items = stored(store, campaign_id)

    assert final.status == "completed"
    failed = [i for i in items if i.status == "failed"]
    assert len(failed) == len(heads) and all(i.key.endswith("/1/propose") for i in failed)
    for head in heads:
        assert [r.round for r in rounds[head.id]] == [0]
        assert rounds[head.id][0].evaluation is not None  # judged by final, once
        kept = explanations[head.id]
        assert kept.text == "It is always active on lists."
        assert kept.agent.stopped.startswith("stopped early:")
        assert "revision refused" in kept.agent.stopped


def current_stage(store: Store, campaign_id: str) -> str | None:
    with store.session() as session:
        return session.get_one(Campaign, campaign_id).stage


def test_a_round_another_process_planned_keeps_the_campaign_in_the_agent_stage(store, config, runtime,
                                                                               monkeypatch):
    """Two processes finish a round's last items together. One plans the next round; the other
    had counted the round finished before that, so its own plan finds nothing new. It must look
    again and return the new round's items, not leave the stage (once, on the worker stack, the
    campaign moved on and completed with every head unexplained)."""
    campaign_id = create_campaign(store, config)
    while (pending := advance(store, campaign_id)) and current_stage(store, campaign_id) != "agent":
        for item_id in pending:
            execute_item(store, runtime, item_id)
    assert pending and all(execute_item(store, runtime, i) == "done" for i in pending)  # round 0 proposals

    agent = STAGE_BY_NAME["agent"]
    other: list[list[int]] = []

    def plan_after_the_other_process(session, campaign) -> list[str]:
        if not other:  # the other process plans, and commits, first
            other.append([])
            with ThreadPoolExecutor(max_workers=1) as pool:
                other[0] = pool.submit(advance, store, campaign_id).result()
        return agent.plan(session, campaign)

    monkeypatch.setitem(STAGE_BY_NAME, "agent", dataclasses.replace(agent, plan=plan_after_the_other_process))
    this = advance(store, campaign_id)
    assert other[0] and sorted(this) == sorted(other[0])
    assert current_stage(store, campaign_id) == "agent"


def test_the_estimate_counts_every_round_and_its_judging(config, runtime):
    from services.campaigns.estimate import estimate_campaign

    oneshot = estimate_campaign(config.model_copy(update={"explainer_strategy": "oneshot"}), runtime)
    agent = estimate_campaign(config, runtime)
    heads = 2 * 3  # two neurons, three heads each assumed
    assert oneshot.explain.calls == heads and agent.explain.calls == heads * config.agent_rounds
    # each round is judged on the 8 training prompts of its neuron: one detection call
    assert agent.classify.calls == oneshot.classify.calls + heads * config.agent_rounds
    assert any("2 rounds" in a for a in agent.assumptions) and not agent.exact


def test_an_answer_parses_into_the_first_explanation_and_clean_probes():
    from services.llm.registry import get_strategy

    answer = ('EXPLANATION: Active after "find the".\nACTIVE: "We did [[test]] and find the right."\n'
              "ACTIVE: one\nACTIVE: two\nACTIVE: three\nINACTIVE: It is wrong.\nINACTIVE:  right\n"
              "EXPLANATION: a second one\nINACTIVE: more\nINACTIVE: too many")
    explanation, probes = get_strategy("agent").parse(answer, " right")
    assert explanation == 'Active after "find the".'
    assert [(p.text, p.predicted_active) for p in probes] == [
        ("We did test and find the", True), ("one", True), ("two", True),
        ("It is wrong.", False), ("", False), ("more", False)]
    assert get_strategy("agent").parse("no format at all", " right") == ("no format at all", [])
