"""The LLM server turns bad in the middle of a campaign: garbage bodies, empty bodies, truncated
JSON, connections that hang past the client timeout, and well-formed answers of nonsense text.

Each is counted as a failure (the work item failed, nothing stored for it) or, for nonsense, as
an unparseable answer; no score is ever computed from a faulted answer, and nothing is stored
twice. Real store, real tiny model, the loopback fake OpenAI server; nothing of ours is mocked.
"""

from __future__ import annotations

import sys
import threading
import zlib
from pathlib import Path

import pytest
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).parent / "llm"))
from fake_openai import FakeOpenAI  # noqa: E402

from lookups import HeadClassification, head_score  # noqa: E402
from services.campaigns.config import CampaignConfig  # noqa: E402
from services.campaigns.execute import run_in_process  # noqa: E402
from services.campaigns.lifecycle import create_campaign  # noqa: E402
from services.campaigns.records import explain_request_for  # noqa: E402
from services.campaigns.stages.classify import classify_request_for  # noqa: E402
from services.llm.registry import get_scorer, get_strategy, get_template  # noqa: E402
from services.runtime import Runtime  # noqa: E402
from services.settings import Settings  # noqa: E402
from services.store import Store  # noqa: E402
from services.store.models import (  # noqa: E402
    ClassificationRow,
    ExplanationRow,
    HeadRow,
    ScoreRow,
    WorkItem,
)
from tests.conftest import tiny_campaign  # noqa: E402

TIMEOUT_S = 0.5
NONSENSE = "Banana bread, obviously, and the moon."
HARD = {"garbage", "empty", "truncated", "hang"}
# After the switch, each new distinct prompt takes the next entry. Items run one after another,
# so an item's new prompts take consecutive entries: the explain items (one prompt each) meet the
# first entries, and with hard faults 6 apart or more some classify items (six prompts) meet
# none. A hang costs TIMEOUT_S per try, so there is one.
NONSENSE_ANSWER = ("text", NONSENSE)
CYCLE = [None, ("garbage",), NONSENSE_ANSWER, *[None] * 9,
         ("empty",), None, None, None, None, NONSENSE_ANSWER, *[None] * 6,
         ("truncated",), *[None] * 5, ("hang", 3 * TIMEOUT_S), *[None] * 5]
MAX_HANGS = 1


class FaultPlan:
    """The fake's ``refuse``: off until ``start``; then each distinct prompt gets a fault (or
    none) on first sight and the same one every time it is sent again (retries, reruns)."""

    def __init__(self):
        self.on = False
        self.by_prompt: dict[str, tuple | None] = {}
        self.lock = threading.Lock()
        self._next = 0
        self._hangs = 0

    def __call__(self, prompt: str) -> tuple | None:
        with self.lock:
            if not self.on:
                return None
            if prompt not in self.by_prompt:
                fault = CYCLE[self._next % len(CYCLE)]
                self._next += 1
                if fault and fault[0] == "hang":
                    self._hangs += 1
                    fault = fault if self._hangs <= MAX_HANGS else None
                self.by_prompt[prompt] = fault
            return self.by_prompt[prompt]

    def kind(self, prompt: str) -> str | None:
        fault = self.by_prompt.get(prompt)
        return fault[0] if fault else None


def answer(prompt: str) -> str:
    """The judge says Yes; each head's explanation is its own, so no two heads' judge prompts
    are the same (and a fault on one reaches one item, not every head's)."""
    return "Yes" if "Answer:" in prompt else f"It is active on lists of kind {zlib.crc32(prompt.encode())}."


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Runtime:
    """Two tries per call (a hang is retried once) and per item, fast backoff, an LLM cache of
    its own."""
    llm_db = tmp_path_factory.mktemp("llm") / "llm.sqlite"
    return Runtime(Settings(device="cpu", llm_db_url=f"sqlite:///{llm_db}", llm_max_attempts=2,
                            llm_retry_initial_s=0.01, llm_retry_max_s=0.05,
                            item_max_attempts=2, item_retry_initial_s=0.01, item_retry_max_s=0.05))


@pytest.mark.slow  # runs a whole campaign in-process
def test_a_server_turning_bad_mid_campaign_yields_failures_and_unparseables_never_scores(
        store: Store, runtime: Runtime, tiny_gpt2_dir, corpus_path, tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKUPS_LLM_TIMEOUT_S", str(TIMEOUT_S))  # backends read it when created
    plan = FaultPlan()
    with FakeOpenAI() as fake:
        fake.respond, fake.refuse = answer, plan
        spec = f"openai-compatible:{fake.url}:fake-{tmp_path.name}"
        # every head is worth explaining, so there are enough items to fault some and not others
        config = CampaignConfig.model_validate({
            **tiny_campaign(tiny_gpt2_dir, corpus_path, spec, ablation=False).model_dump(),
            "active_stds": 0.5})
        campaign_id = create_campaign(store, config)

        def switch_after_the_first_explanation(item_id: int, outcome: str) -> None:
            with store.session() as session:
                if session.get(WorkItem, item_id).stage == "explain" and outcome == "done":
                    plan.on = True

        final = run_in_process(store, campaign_id, runtime, on_item=switch_after_the_first_explanation)
        served = [(r["body"]["messages"][-1]["content"], r["fault"]) for r in fake.requests]

    assert final.status in ("completed", "completed_with_failures"), final
    kinds = {plan.kind(prompt) for prompt, _ in served}
    assert kinds >= HARD | {"text", None}, f"the plan left some fault unexercised: {kinds}"
    assert [f for _, f in served if f and f[0] == "hang"], "no hang reached the server"

    client = runtime.llm(spec, None)
    strategy, template = get_strategy(config.explainer_strategy), get_template(config.explainer_template)
    judge_template = get_template(config.classifier_template)
    with store.session() as session:
        items = {(i.stage, i.key): i for i in session.scalars(
            select(WorkItem).where(WorkItem.campaign_id == campaign_id))}
        heads = {h.key: h for h in session.scalars(select(HeadRow).where(HeadRow.campaign_id == campaign_id))}
        explained = {r.head_id: r for r in session.scalars(
            select(ExplanationRow).where(ExplanationRow.campaign_id == campaign_id))}
        classified = {(r.head_id, r.scorer, r.control): r.payload
                      for r in session.scalars(select(ClassificationRow).where(
                          ClassificationRow.campaign_id == campaign_id))}
        scores = {(r.head_id, r.scorer, r.control): r.payload
                  for r in session.scalars(select(ScoreRow).where(ScoreRow.campaign_id == campaign_id))}
        explain_requests = {key: strategy.request(template, explain_request_for(session, campaign_id, head, config))
                            for key, head in heads.items()}
        classify_requests = {key: classify_request_for(session, campaign_id, key, config)
                             for stage, key in items if stage == "classify"}

    # nothing was stored twice
    assert {item.status for item in items.values()} <= {"done", "failed"}
    for table, column in ((ExplanationRow, ExplanationRow.head_id),
                          (ClassificationRow, ClassificationRow.head_id), (ScoreRow, ScoreRow.head_id)):
        with store.session() as session:
            rows = session.scalar(select(func.count()).select_from(table).where(table.campaign_id == campaign_id))
            distinct = session.scalar(select(func.count()).select_from(
                select(column, *([table.scorer, table.control] if table is not ExplanationRow else []))
                .where(table.campaign_id == campaign_id).distinct().subquery()))
        assert rows == distinct, f"{table.__tablename__}: a row stored twice"

    # explain: a hard fault fails the head's item and stores no explanation
    failed_explain = 0
    for key, head in heads.items():
        item, kind = items["explain", key], plan.kind(explain_requests[key].prompt)
        if kind in HARD:
            failed_explain += 1
            assert item.status == "failed" and head.id not in explained, (key, kind)
        else:
            assert item.status == "done" and head.id in explained, (key, kind, item.error)
    assert failed_explain >= 1

    # classify: a hard fault on any prompt fails the item (no classification, so no score);
    # nonsense is unparseable with no P(Yes); other answers are read as they were sent
    failed_classify = unparseable = 0
    for key, (head_id, scorer_name, control, request) in classify_requests.items():
        item, scorer = items["classify", key], get_scorer(scorer_name)
        llm_requests = scorer.requests(judge_template, request)
        faults = [plan.kind(r.prompt) for r in llm_requests]
        stored = classified.get((head_id, scorer_name, control))
        if HARD & set(faults):
            failed_classify += 1
            assert item.status == "failed" and stored is None, (key, faults)
            assert (head_id, scorer_name, control) not in scores or scores[head_id, scorer_name, control].score is None
            continue
        assert item.status == "done" and stored is not None, (key, faults, item.error)
        for result, fault in zip(stored.results, faults, strict=True):
            if fault == "text":
                unparseable += 1
                assert (result.answer, result.p_yes, result.raw) == ("unparseable", None, NONSENSE)
            else:
                assert result.answer == "yes" and result.p_yes == pytest.approx(0.7 / 0.9)
        expected = head_score(HeadClassification(**{
            **stored.model_dump(), "results": [
                r.model_copy(update={"answer": "unparseable" if f == "text" else "yes"})
                for r, f in zip(stored.results, faults)]}))
        got = scores[head_id, scorer_name, control]
        assert got.unparseable == faults.count("text")
        assert (got.tp, got.fn, got.tn, got.fp, got.score) == (
            expected.tp, expected.fn, expected.tn, expected.fp, expected.score)
    assert failed_classify >= 1 and unparseable >= 1

    # a head without a classification scores nothing
    for head in heads.values():
        for scorer_name in config.scorers:
            if (head.id, scorer_name, False) not in classified:
                assert scores[head.id, scorer_name, False].score is None
                assert scores[head.id, scorer_name, False].skipped

    # the cache holds no faulted call; nonsense is a real (if useless) answer and is kept
    for llm_request in [*explain_requests.values(), *(r for _, s, _, req in classify_requests.values()
                                                      for r in get_scorer(s).requests(judge_template, req))]:
        cached = client.store.get(client.cache_key(llm_request))
        kind = plan.kind(llm_request.prompt)
        if kind in HARD:
            assert cached is None, kind
        elif kind == "text":
            assert cached is not None and cached.text == NONSENSE

    progress = {s.stage: s for s in final.stages}
    assert progress["explain"].failed == failed_explain
    assert progress["classify"].failed == failed_classify
