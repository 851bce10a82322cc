"""The kinds of work lookups does, in one table: each kind's request model, its compute function
and its queue. Campaign stages, single REST jobs and the CLI all run a kind through this table,
so the same request gives the same result whichever way it arrives.

Campaign-only steps (held-out test prompts, scores, the agent's loop) are stages without a kind
here: they read and combine what a campaign has stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lookups import ClassifyRequest, ExplainRequest, HeadClassification, InvalidInputError, check_program
from services.ablation import HeadAblation, ablate_heads
from services.attribution import (
    ACTIVE_STDS,
    WORTH_HIGH,
    WORTH_LOW,
    Definition,
    HeadRef,
    NeuronAttribution,
    Prompt,
    attribute_neuron,
    check_attribution_input,
    default_definition,
)
from services.classify import classify
from services.corpus import (
    CorpusInfo,
    CorpusSelection,
    corpus_info,
    fetch_documents,
    selected_positions,
    stream_selection,
)
from services.explain import Explanation, explain
from services.head_reads import head_reads
from services.llm.budget import Budget, local_budget
from services.llm.cost import Prices
from services.llm.registry import DEFAULT_EXPLAINER, DEFAULT_JUDGE, get_scorer, get_strategy, get_template
from services.neurons import default_layers, describe_neurons, next_token_neurons, random_neurons
from services.runtime import Runtime
from services.scan import DEFAULT_TOKEN_BUDGET, check_neurons, scan_corpus
from services.schemas import NeuronContexts, NeuronRef, NextTokenNeuron
from services.truncate import truncate_contexts

Queue = Literal["gpu", "llm"]
NeuronStr = Annotated[str, Field(pattern=r"^\d+:\d+$", examples=["27:1263"])]
HeadStr = Annotated[str, Field(pattern=r"^\d+\.\d+$", examples=["20.3"])]
ModelName = Annotated[str, Field(min_length=1, max_length=500, description="Packaged name, local checkpoint "
                                 "directory or hub name.")]
Spec = Annotated[str, Field(min_length=1, max_length=500)]
MAX_BUDGET_USD = 1_000_000.0
MAX_LAYER = 1023  # far past any model's last layer
Seed = Annotated[int, Field(ge=-(2**63), le=2**63 - 1, description="Fits a 64-bit integer.")]


class _Work(BaseModel):
    """Finite numbers only: NaN and infinities are refused (JSON has neither; stored they would
    come back as null)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# ---------------------------------------------------------------- requests and results


class NeuronsWork(_Work):
    model: ModelName = "smollm2-135m"
    neurons: list[NeuronStr] | None = Field(default=None, min_length=1, max_length=10_000,
                                            description="Describe these neurons instead of searching.")
    layers: list[Annotated[int, Field(ge=0, le=MAX_LAYER)]] | None = Field(
        default=None, max_length=MAX_LAYER + 1, description="Default: the last three.")
    per_layer: int = Field(default=20, ge=1, le=10_000)
    random: bool = Field(default=False, description="The random-neuron baseline instead.")
    seed: Seed = 0


class NeuronsResult(BaseModel):
    model: dict[str, Any] = Field(description="The subject model's provenance.")
    neurons: list[NextTokenNeuron]


class ScanWork(_Work, CorpusSelection):
    model: ModelName = "smollm2-135m"
    neurons: list[NeuronStr] = Field(min_length=1, max_length=10_000)
    top_k: int = Field(default=30, ge=1, le=1000)
    context_length: int | None = Field(default=None, ge=2, le=131_072,
                                       description="Tokens per document, BOS included (default: settings).")
    batch_tokens: int = Field(default=DEFAULT_TOKEN_BUDGET, ge=2, le=1_048_576,
                              description="Padded tokens per forward pass.")


class ScanResult(BaseModel):
    model: dict[str, Any] = Field(default_factory=dict, description="The subject model's provenance.")
    corpus: CorpusInfo | None = None
    contexts: list[NeuronContexts]


class TruncateWork(_Work, CorpusSelection):
    """Truncate the top contexts a scan found, over the same documents and context length."""

    model: ModelName = "smollm2-135m"
    contexts: list[NeuronContexts] = Field(min_length=1, max_length=10_000)
    context_length: int | None = Field(default=None, ge=2, le=131_072, description="The scan's.")
    keep_fraction: float = Field(default=0.8, gt=0.0, le=1.0)
    max_prompt_tokens: int = Field(default=100, ge=2, le=131_072)
    prompts_per_neuron: int = Field(default=20, ge=1, le=1000)
    batch_tokens: int = Field(default=DEFAULT_TOKEN_BUDGET, ge=2, le=1_048_576)


class TruncateResult(BaseModel):
    contexts: list[NeuronContexts]


class PromptIn(_Work):
    """A prompt whose last token is the neuron's firing position: text, token ids (no BOS), or both."""

    doc_id: str | None = None
    text: str | None = Field(default=None, max_length=20_000)
    tokens: list[int] | None = Field(default=None, min_length=1, max_length=131_072)

    @model_validator(mode="after")
    def _text_or_tokens(self) -> PromptIn:
        if self.text is None and self.tokens is None:
            raise ValueError("a prompt needs 'text' or 'tokens'")
        return self


class AttributeWork(_Work):
    model: ModelName = "smollm2-135m"
    neuron: NeuronStr
    prompts: list[Annotated[str, Field(min_length=1, max_length=20_000)] | PromptIn] = Field(
        min_length=1, max_length=1000, description="Texts or {text, tokens} whose last token is the firing position.")
    definition: Definition | None = Field(default=None, description="Default: 'paper' where it exists.")
    active_stds: float = Field(default=ACTIVE_STDS, gt=0, le=100)
    worth_range: tuple[float, float] = (WORTH_LOW, WORTH_HIGH)


class AblateWork(_Work):
    model: ModelName = "smollm2-135m"
    attribution: NeuronAttribution = Field(description="An attribute result: its prompts and activity labels.")
    heads: list[HeadStr] = Field(min_length=1, max_length=10_000, description="Heads to ablate, one at a "
                                 "time; one clean pass serves them all.")


class AblateResult(BaseModel):
    ablations: list[HeadAblation] = Field(description="One per head, in the request's order.")


class ExplainWork(_Work):
    backend: Spec = DEFAULT_EXPLAINER
    template: Spec = "neo2024"
    strategy: str = Field(default="oneshot", min_length=1, max_length=100)
    request: ExplainRequest
    samples: int = Field(default=1, ge=1, le=16, description="Best of k: answers sampled by a program strategy.")
    temperature: float | None = Field(default=None, ge=0, le=2, description="Their sampling temperature.")
    budget_usd: float | None = Field(default=None, gt=0, le=MAX_BUDGET_USD,
                                     description="Refuse calls that could cost more.")
    llm_prices: Prices = Field(default_factory=dict,
                               description="Prices of models the operator does not price (never replaces theirs).")


class ClassifyWork(_Work):
    backend: Spec = DEFAULT_JUDGE
    template: Spec = "neo2024"
    scorer: str = Field(default="zero-shot", min_length=1, max_length=100)
    request: ClassifyRequest
    budget_usd: float | None = Field(default=None, gt=0, le=MAX_BUDGET_USD,
                                     description="Refuse calls that could cost more.")
    llm_prices: Prices = Field(default_factory=dict,
                               description="Prices of models the operator does not price (never replaces theirs).")

    @model_validator(mode="after")
    def _program_runs(self) -> ClassifyWork:
        """A program scorer's explanation is a program, and every prompt needs its pieces: both
        checked on arrival, so a bad program is refused (422) rather than run."""
        if get_scorer(self.scorer).programs:
            check_program(self.request.explanation)
            missing = [i for i, p in enumerate(self.request.prompts) if p.pieces is None]
            if missing:
                raise ValueError(f"request.prompts[{missing[0]}].pieces: the {self.scorer} scorer needs each "
                                 "prompt's tokens as text")
        return self


# ---------------------------------------------------------------- compute functions


def find_neurons(runtime: Runtime, work: NeuronsWork) -> NeuronsResult:
    model = runtime.model(work.model)
    if work.neurons is not None:
        found = describe_neurons(model, [NeuronRef.parse(n) for n in work.neurons])
    else:
        layers = work.layers or default_layers(model)
        found = (random_neurons(model, layers, work.per_layer, seed=work.seed) if work.random
                 else next_token_neurons(model, layers, work.per_layer))
    return NeuronsResult(model=model.info.model_dump(), neurons=found)


def scan(runtime: Runtime, work: ScanWork) -> ScanResult:
    model = runtime.model(work.model)
    selection = CorpusSelection.model_validate(work.model_dump(include=set(CorpusSelection.model_fields)))
    contexts = scan_corpus(model, [NeuronRef.parse(n) for n in work.neurons], stream_selection(selection),
                           top_k=work.top_k, context_length=work.context_length or runtime.settings.context_length,
                           token_budget=work.batch_tokens, total=len(selected_positions(selection)),
                           progress=runtime.progress)
    return ScanResult(model=model.info.model_dump(), corpus=corpus_info(selection), contexts=contexts)


def truncate(runtime: Runtime, work: TruncateWork) -> TruncateResult:
    selection = CorpusSelection.model_validate(work.model_dump(include=set(CorpusSelection.model_fields)))
    return TruncateResult(contexts=truncate_contexts(
        runtime.model(work.model), work.contexts,
        fetch_documents(selection, {hit.doc_id for context in work.contexts for hit in context.hits}),
        context_length=work.context_length or runtime.settings.context_length,
        keep_fraction=work.keep_fraction, max_prompt_tokens=work.max_prompt_tokens,
        prompts_per_neuron=work.prompts_per_neuron, token_budget=work.batch_tokens))


def attribute(runtime: Runtime, work: AttributeWork) -> NeuronAttribution:
    """Attribution, activity and heads worth explaining, plus what each of those heads reads
    (the contrastive explainer's evidence)."""
    model = runtime.model(work.model)
    ref = NeuronRef.parse(work.neuron)
    check_neurons(model, [ref])
    prompts = []
    for i, given in enumerate(work.prompts):
        given = PromptIn(text=given) if isinstance(given, str) else given
        tokens = given.tokens or model.tokenizer(given.text, add_special_tokens=False)["input_ids"]
        if not tokens:
            raise InvalidInputError(f"prompt {i} ({given.text!r}) has no tokens")
        prompts.append(Prompt(doc_id=given.doc_id, text=given.text or model.tokenizer.decode(tokens), tokens=tokens))
    definition = work.definition or default_definition(model)
    check_attribution_input(model, ref, [p.tokens for p in prompts], definition)
    found = attribute_neuron(model, ref, prompts, definition=definition, active_stds=work.active_stds,
                             worth_range=work.worth_range)
    reads = head_reads(model, [p.tokens for p in prompts], [a.head for a in found.worth_explaining])
    return found.model_copy(update={"reads": reads})


def ablate(runtime: Runtime, work: AblateWork) -> AblateResult:
    model = runtime.model(work.model)
    check_neurons(model, [work.attribution.neuron])
    return AblateResult(ablations=ablate_heads(model, work.attribution, [HeadRef.parse(h) for h in work.heads]))


def explain_head(runtime: Runtime, work: ExplainWork, budget: Budget | None = None) -> Explanation:
    """``budget``: a campaign's, shared by its items; default the work's own ``budget_usd``."""
    client = runtime.llm(work.backend, budget or local_budget(work.budget_usd), work.llm_prices)
    return explain(client, get_strategy(work.strategy), get_template(work.template), [work.request],
                   samples=work.samples, temperature=work.temperature)[0]


def classify_prompts(runtime: Runtime, work: ClassifyWork, budget: Budget | None = None) -> HeadClassification:
    """``budget``: a campaign's, shared by its items; default the work's own ``budget_usd``."""
    client = runtime.llm(work.backend, budget or local_budget(work.budget_usd), work.llm_prices)
    return classify(client, get_scorer(work.scorer), get_template(work.template), work.request)


# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class WorkKind:
    name: str
    queue: Queue
    request: type[BaseModel]
    result: type[BaseModel]
    compute: Callable[[Runtime, Any], BaseModel]
    summary: str


WORK_KINDS: dict[str, WorkKind] = {kind.name: kind for kind in (
    WorkKind("neurons", "gpu", NeuronsWork, NeuronsResult, find_neurons,
             "Next-token neurons of some layers (or the random baseline, or given neurons described)."),
    WorkKind("scan", "gpu", ScanWork, ScanResult, scan,
             "Top activating documents of some neurons over a corpus split."),
    WorkKind("truncate", "gpu", TruncateWork, TruncateResult, truncate,
             "The shortest prompts of a scan's top documents that keep the activation."),
    WorkKind("attribute", "gpu", AttributeWork, NeuronAttribution, attribute,
             "Head attribution of one neuron on given prompts; active heads; heads worth explaining."),
    WorkKind("ablate", "gpu", AblateWork, AblateResult, ablate,
             "Zero each head in turn: the drop of the neuron token's probability, active vs inactive prompts."),
    WorkKind("explain", "llm", ExplainWork, Explanation, explain_head,
             "One LLM explanation of a head from its active and inactive examples."),
    WorkKind("classify", "llm", ClassifyWork, HeadClassification, classify_prompts,
             "A scorer's judgement of test prompts from an explanation."),
)}
