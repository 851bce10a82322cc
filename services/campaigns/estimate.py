"""LLM calls, tokens and cost of a campaign before (or while) it runs.

Exact where the store already holds what the requests are made of (explain requests once
attribution is done, classify requests once test prompts exist); otherwise from stated
assumptions about how many heads a neuron has and how long prompts and explanations are.
"""

from __future__ import annotations

from pydantic import BaseModel

from lookups import ClassifyRequest, ExplainRequest, HeadExample, LLMRequest, SourceRead, TestPrompt
from services.campaigns.config import CampaignConfig
from services.campaigns.lifecycle import FINISHED, get_campaign
from services.campaigns.records import campaign_heads, explain_request_for
from services.campaigns.stages import STAGE_NAMES, llm_batch
from services.held_out import max_test_prompts
from services.llm.registry import get_scorer, get_strategy, get_template
from services.llm.schemas import CostEstimate

PROMPT_WORDS = 40  # a truncated prompt is typically a few tens of tokens
EXPLANATION_WORDS = 60  # two to three sentences
LAYERS_WHEN_UNKNOWN = 3  # the default: the model's last three layers


class CampaignEstimate(BaseModel):
    exact: bool
    assumptions: list[str]
    explain: CostEstimate
    classify: CostEstimate
    calls: int
    usd: float


def _filler(words: int, tag: str) -> str:
    # distinct texts, so the client's de-duplication does not merge the synthetic requests
    return f"{tag} " + " ".join(["word"] * words)


def _planned_explain(config: CampaignConfig, n_heads: int):

    half = max(config.prompts_per_neuron // 2, 1)

    def example(text: str, active: bool) -> HeadExample:
        pieces = text.split(" ")
        return HeadExample(text=text, active=active, attribution=1.0, pieces=pieces,
                           reads=[SourceRead(position=0, offset=1 - len(pieces), token=pieces[0], weight=0.5)])

    requests = []
    for h in range(n_heads):
        active = [_filler(PROMPT_WORDS, f"{h}a{i}") for i in range(half)]
        inactive = [_filler(PROMPT_WORDS, f"{h}i{i}") for i in range(half)]
        requests.append(ExplainRequest(
            token=" word", active_examples=active, inactive_examples=inactive,
            examples=[example(t, True) for t in active] + [example(t, False) for t in inactive]))
    return requests


def _loop_requests(config: CampaignConfig, requests) -> tuple[list[LLMRequest], list[LLMRequest]]:
    """Explainer and judge requests of the explain step: one each for a one-call strategy, k
    samples for a program strategy; for a closed-loop one, a proposal per round (each about the
    size of the first) and the judge's detection calls that evaluate every round on the training
    prompts (none for programs: the sandbox runs them)."""

    strategy = get_strategy(config.explainer_strategy)
    template = get_template(config.explainer_template)
    first = [strategy.request(template, r) for r in requests]
    if not strategy.closed_loop:
        k = config.explainer_samples if strategy.programs else 1
        return [r.model_copy(update={"temperature": config.explainer_temperature, "sample": i}) if k > 1 else r
                for r in first for i in range(k)], []
    explainer, judge = [], []
    detection, judge_template = get_scorer("detection"), get_template(config.classifier_template)
    for index, (request, proposal) in enumerate(zip(requests, first)):
        for round_ in range(config.agent_rounds):
            explainer.append(proposal.model_copy(update={"prompt": f"{proposal.prompt}\n(round {round_})"}))
            if strategy.programs:
                continue
            judge += detection.requests(judge_template, ClassifyRequest(
                token=request.token, explanation=_filler(EXPLANATION_WORDS, f"{index}r{round_}"),
                prompts=[TestPrompt(text=e.text) for e in request.examples or []]
                or [TestPrompt(text=t) for t in request.active_examples]))
    return explainer, judge


def n_test_prompts(config: CampaignConfig) -> int:
    return max_test_prompts(config.test_sampling, config.test_prompts_per_head)


def _planned_classify(config: CampaignConfig, n_heads: int) -> list[LLMRequest]:

    template = get_template(config.classifier_template)
    requests: list[LLMRequest] = []
    for h in range(n_heads):
        for kind in ("explanation", "control"):
            request = ClassifyRequest(
                token=" word", explanation=_filler(EXPLANATION_WORDS, f"{h}{kind}"),
                prompts=[TestPrompt(text=_filler(PROMPT_WORDS, f"{h}{kind}{i}"))
                         for i in range(n_test_prompts(config))])
            for scorer in config.scorers:
                requests += get_scorer(scorer).requests(template, request)
    return requests


def _reached(store, campaign_id: str, stage: str) -> bool:
    """Whether the campaign has reached (planned) the stage, so what its requests are made of is stored."""
    with store.session() as session:
        campaign = get_campaign(session, campaign_id)
        return campaign.status in FINISHED or (
            campaign.stage is not None and STAGE_NAMES.index(campaign.stage) >= STAGE_NAMES.index(stage))


def _stored_explain(store, campaign_id: str, config: CampaignConfig):
    """The explain requests exactly as the explain (or agent) stage builds them."""

    with store.session() as session:
        return [explain_request_for(session, campaign_id, head, config)
                for head in campaign_heads(session, campaign_id)]


def _stored_classify(store, campaign_id: str) -> list[LLMRequest]:
    """The classify requests exactly as the classify stage builds them (control included)."""

    with store.session() as session:
        return llm_batch.classify_requests(session, get_campaign(session, campaign_id))


def estimate_campaign(config: CampaignConfig, runtime, heads_per_neuron: float = 3.0,
                      store=None, campaign_id: str | None = None) -> CampaignEstimate:
    """From the config alone, or from a stored campaign: exact once its stages got that far."""
    assumptions: list[str] = []
    n_heads = None
    explain_requests = classify_requests = None
    if campaign_id is not None and _reached(store, campaign_id, "explain_batch"):  # the first to explain
        explain_requests = _stored_explain(store, campaign_id, config)
        n_heads = len(explain_requests)
    if campaign_id is not None and _reached(store, campaign_id, "classify_batch"):  # the first to classify
        classify_requests = _stored_classify(store, campaign_id)
    if n_heads is None:
        n_neurons = len(config.neurons) if config.neurons else config.per_layer * (
            len(config.layers) if config.layers else LAYERS_WHEN_UNKNOWN)
        n_heads = round(n_neurons * heads_per_neuron)
        if config.neurons is None and config.layers is None:
            assumptions.append(f"{LAYERS_WHEN_UNKNOWN} layers (the model's last three)")
        assumptions.append(f"{heads_per_neuron:g} heads worth explaining per neuron "
                           f"({n_neurons} neurons, {n_heads} heads)")
        assumptions.append(f"train prompts of ~{PROMPT_WORDS} words, half of them active")
    if classify_requests is None:
        assumptions.append(f"every head has a two-class test set of {n_test_prompts(config)} "
                           f"prompts (~{PROMPT_WORDS} words) and an explanation of ~{EXPLANATION_WORDS} "
                           "words; each is judged twice (explanation and shuffled control) by each scorer")
        classify_requests = _planned_classify(config, n_heads)
    if explain_requests is None:
        explain_requests = _planned_explain(config, n_heads)
    proposals, loop_judge = _loop_requests(config, explain_requests)
    if loop_judge:
        assumptions.append(f"{config.explainer_strategy}: all {config.agent_rounds} rounds run, each "
                           "proposal the size of the first")
    explain = runtime.llm(config.explainer, None, config.llm_prices).estimate(proposals)
    classify = runtime.llm(config.classifier, None, config.llm_prices).estimate(classify_requests + loop_judge)
    if config.llm_mode == "batch":  # billed at the batch price
        factor = runtime.settings.llm_batch_price_factor
        explain, classify = (part.model_copy(update={"usd": part.usd * factor}) for part in (explain, classify))
    return CampaignEstimate(exact=not assumptions, assumptions=assumptions, explain=explain,
                            classify=classify, calls=explain.calls + classify.calls,
                            usd=explain.usd + classify.usd)
