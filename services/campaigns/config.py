"""A campaign's configuration: what to analyse and with which LLMs. Defaults are the paper's."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lookups import InvalidInputError
from services.activity import Activity
from services.corpus import CorpusSelection
from services.held_out import TestSampling
from services.llm.cost import Prices, price_hint, with_prices
from services.llm.registry import (
    DEFAULT_EXPLAINER,
    DEFAULT_JUDGE,
    batch_backends,
    get_scorer,
    get_strategy,
    unpriced_model,
)
from services.scan import SCAN_CHUNK_DOCS
from services.schemas import NeuronRef
from services.settings import get_settings
from services.work import MAX_BUDGET_USD, MAX_LAYER, ModelName, Seed, Spec


class CampaignConfig(BaseModel):
    """Every number finite (NaN and infinities refused) and bounded as the matching job field."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(default="", max_length=200,
                      description="Default (or empty): what it analyses, e.g. 'smollm2-135m 27:1263,27:876 oneshot'.")
    model: ModelName = "smollm2-135m"

    # Which neurons: an explicit list, or per_layer next-token (or random) neurons of these layers.
    neurons: list[str] | None = Field(default=None, min_length=1, max_length=10_000,
                                      description="Explicit neurons, e.g. ['27:1263'].")
    layers: list[Annotated[int, Field(ge=0, le=MAX_LAYER)]] | None = Field(
        default=None, max_length=MAX_LAYER + 1, description="Default: the model's last three layers.")
    per_layer: int = Field(default=20, ge=1, le=10_000)
    baseline: Literal["next-token", "random"] = "next-token"
    seed: Seed = 0

    corpus: str = Field(min_length=1, max_length=500,
                        description="File, folder or hf:NAME[:CONFIG][?split=S&revision=R&text_column=C].")
    test_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    test_from_id: str | None = Field(default=None, max_length=500)
    max_train_docs: int | None = Field(default=None, ge=1, le=1_000_000)
    max_test_docs: int | None = Field(default=None, ge=1, le=1_000_000)
    context_length: int = Field(default=1024, ge=2, le=131_072)
    scan_shard_docs: int = Field(
        default=8192, ge=SCAN_CHUNK_DOCS, le=1_048_576, multiple_of=SCAN_CHUNK_DOCS,
        description=f"Train documents per scan item: a longer split is scanned in shards, one item each, "
                    f"so several GPU workers share it; their top K merge exactly. A multiple of {SCAN_CHUNK_DOCS}.")

    top_k: int = Field(default=30, ge=1, le=1000)
    keep_fraction: float = Field(default=0.8, gt=0.0, le=1.0)
    max_prompt_tokens: int = Field(default=100, ge=2, le=131_072)
    prompts_per_neuron: int = Field(default=20, ge=1, le=1000)
    test_prompts_per_head: int = Field(
        default=10, ge=1, le=1000, description="Held-out prompts per head: the first N ('first' sampling), "
        "or up to N active and N inactive ('balanced').")
    test_sampling: TestSampling = Field(
        default="balanced", description="'balanced': up to N active and N inactive test prompts per head, "
        "from a test scan of 4 N documents per neuron; 'first': the paper's, the first N test prompts.")
    activity: Activity = Field(
        default="paper", description="When a head is active on a prompt: 'paper' (attribution above mean + "
        "2 std of the prompt's heads) or 'per-head' (above the head's median over the training prompts).")
    active_stds: float = Field(default=2.0, gt=0.0, le=100)
    worth_range: tuple[float, float] = (0.25, 0.75)

    explainer: Spec = Field(default=DEFAULT_EXPLAINER, description="LLM backend spec, e.g. openai:gpt-4o.")
    explainer_template: Spec = "neo2024"
    explainer_strategy: str = Field(default="oneshot", max_length=100,
                                    description="Explainer strategy (lookups explainers).")
    agent_rounds: int = Field(default=3, ge=1, le=10, description="Rounds of a closed-loop strategy (agent).")
    explainer_samples: int = Field(default=4, ge=1, le=16, description="Best of k: answers a program "
                                   "strategy samples per head, the best on the training prompts kept.")
    explainer_temperature: float = Field(default=0.7, ge=0.0, le=2.0, description="Temperature of those samples.")
    classifier: Spec = Field(default=DEFAULT_JUDGE, description="LLM backend spec of the judge.")
    classifier_template: Spec = "neo2024"
    scorers: list[Annotated[str, Field(max_length=100)]] = Field(
        default=["zero-shot", "probe"], min_length=1, max_length=20,
        description="Scorers (lookups scorers); the first is the headline score. "
        "'probe' (no LLM) gives the text-probe ceiling the others are compared with.")
    budget_usd: float | None = Field(default=None, gt=0.0, le=MAX_BUDGET_USD)
    llm_prices: Prices = Field(
        default_factory=dict, description="USD per million input, output tokens (0 to 10000) of models the "
        "operator's price table (LOOKUPS_LLM_PRICES) lacks; never replaces the operator's. A budget needs a "
        "price for every remote model.")
    ablation: bool = True
    llm_mode: Literal["live", "batch"] = Field(
        default="live", description="'batch': the explain and classify stages' requests go out as one "
        "provider batch each (OpenAI Batch, Anthropic Message Batch): half the price, answered within hours.")

    # One field's rules in that field's validator, so an error names the field (and its line).
    @field_validator("worth_range")
    @classmethod
    def _worth_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 <= value[0] <= value[1] <= 1.0:
            raise ValueError(f"worth_range must satisfy 0 <= low <= high <= 1, got {value}")
        return value

    @field_validator("neurons")
    @classmethod
    def _neurons(cls, value: list[str] | None) -> list[str] | None:
        for neuron in value or []:
            NeuronRef.parse(neuron)
        return value

    @field_validator("scorers")
    @classmethod
    def _scorers(cls, value: list[str]) -> list[str]:
        if len(set(value)) < len(value):
            raise ValueError(f"scorers must not repeat: {value}")
        for scorer in value:
            get_scorer(scorer)
        return value

    @field_validator("explainer_strategy")
    @classmethod
    def _strategy(cls, value: str) -> str:
        get_strategy(value)
        return value

    @model_validator(mode="after")
    def _check(self) -> CampaignConfig:
        if not self.name:  # named after validation, so the name is built from checked fields only
            self.name = default_name(self)
        if self.budget_usd is not None:
            prices = with_prices(get_settings(), self.llm_prices)
            for role, spec in (("explainer", self.explainer), ("classifier", self.classifier)):
                model = unpriced_model(spec, prices)
                if model is not None:
                    raise ValueError(f"{role} model {model!r} has no price, so the budget cannot cap its "
                                     f"spending; {price_hint(model)}")
        if self.llm_mode == "batch":
            self._check_batch()
        return self

    def _check_batch(self) -> None:
        strategy = get_strategy(self.explainer_strategy)
        if strategy.closed_loop or strategy.programs:
            raise ValueError(f"llm_mode 'batch' needs a one-call explainer strategy: "
                             f"{self.explainer_strategy!r} " + ("explains in rounds, each waiting on the last"
                                                                 if strategy.closed_loop else
                                                                 "samples k answers per head and runs their programs"))
        capable = batch_backends()
        for role, spec in (("explainer", self.explainer), ("classifier", self.classifier)):
            name = spec.strip().partition(":")[0]
            if name not in capable:
                raise ValueError(f"llm_mode 'batch': the {role} backend {name!r} has no batch mode "
                                 f"(backends with one: {', '.join(capable)}); use llm_mode 'live'")

    def selection(self, split: Literal["train", "test"]) -> CorpusSelection:
        """The documents of one split as this campaign reads them."""
        return CorpusSelection(corpus=self.corpus, split=split, test_fraction=self.test_fraction,
                               test_from_id=self.test_from_id,
                               max_docs=self.max_train_docs if split == "train" else self.max_test_docs)

def default_name(config: CampaignConfig) -> str:
    """A campaign's name from what it analyses: model, neurons (or layers) and explainer strategy."""
    neurons = config.neurons
    if neurons:
        what = ",".join(neurons[:4]) + (f" (+{len(neurons) - 4})" if len(neurons) > 4 else "")
    else:
        kind = "random neurons" if config.baseline == "random" else "next-token neurons"
        what = (f"{kind} of layers {','.join(map(str, config.layers))}" if config.layers
                else f"{kind} of the last 3 layers")
    return f"{config.model} {what} {config.explainer_strategy}"[:200]


def load_config(path: Path, overrides: dict | None = None) -> CampaignConfig:
    """Read a campaign config from TOML or JSON, with command-line overrides on top; an error in
    the file names the field and its line."""
    overrides = overrides or {}
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise InvalidInputError(f"cannot read campaign config {path}: {error}") from error
    if not isinstance(data, dict):
        raise InvalidInputError(f"campaign config {path}: expected a table of fields, got {type(data).__name__}")
    lines = {key: line for key in data if key not in overrides and (line := key_line(text, key))}
    return parse_config({**data, **overrides}, source=str(path), lines=lines)


def key_line(text: str, key: str) -> int | None:
    """The line (from 1) that sets a top-level ``key`` in TOML (``key =``, ``[key]``) or JSON text."""
    name = re.escape(key)
    match = re.search(rf'^[ \t]*(?:"?{name}"?[ \t]*[=:]|\[{name}\])', text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else None


def parse_config(data: dict, source: str = "campaign config", lines: dict[str, int] | None = None) -> CampaignConfig:
    """The validated config; each problem names its field, and its line when ``lines`` knows it."""
    try:
        return CampaignConfig.model_validate(data)
    except ValidationError as error:
        problems = []
        for e in error.errors():
            field = ".".join(map(str, e["loc"])) or "config"
            line = (lines or {}).get(str(e["loc"][0])) if e["loc"] else None
            problems.append(f"{field}{f' (line {line})' if line else ''}: {e['msg']}")
        raise InvalidInputError(f"{source}: {'; '.join(problems)}") from error
