"""A campaign's configuration: what to analyse and with which LLMs. Defaults are the paper's."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contract import InvalidInputError
from services.corpus import CorpusSelection
from services.llm.cost import price_hint
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


class CampaignConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="campaign", min_length=1, max_length=200)
    model: str = Field(default="smollm2-135m", description="Packaged name, local checkpoint or hub name.")

    # Which neurons: an explicit list, or per_layer next-token (or random) neurons of these layers.
    neurons: list[str] | None = Field(default=None, description="Explicit neurons, e.g. ['27:1263'].")
    layers: list[int] | None = Field(default=None, description="Default: the model's last three layers.")
    per_layer: int = Field(default=20, ge=1, le=10_000)
    baseline: Literal["next-token", "random"] = "next-token"
    seed: int = 0

    corpus: str = Field(min_length=1,
                        description="File, folder or hf:NAME[:CONFIG][?split=S&revision=R&text_column=C].")
    test_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    test_from_id: str | None = None
    max_train_docs: int | None = Field(default=None, ge=1)
    max_test_docs: int | None = Field(default=None, ge=1)
    context_length: int = Field(default=1024, ge=2)
    scan_shard_docs: int = Field(
        default=8192, ge=SCAN_CHUNK_DOCS, multiple_of=SCAN_CHUNK_DOCS,
        description=f"Train documents per scan item: a longer split is scanned in shards, one item each, "
                    f"so several GPU workers share it; their top K merge exactly. A multiple of {SCAN_CHUNK_DOCS}.")

    top_k: int = Field(default=30, ge=1)
    keep_fraction: float = Field(default=0.8, gt=0.0, le=1.0)
    max_prompt_tokens: int = Field(default=100, ge=2)
    prompts_per_neuron: int = Field(default=20, ge=1)
    test_prompts_per_head: int = Field(default=10, ge=1)
    active_stds: float = Field(default=2.0, gt=0.0)
    worth_range: tuple[float, float] = (0.25, 0.75)

    explainer: str = Field(default=DEFAULT_EXPLAINER, description="LLM backend spec, e.g. openai:gpt-4o.")
    explainer_template: str = "neo2024"
    explainer_strategy: str = Field(default="oneshot", description="Explainer strategy (lookups explainers).")
    agent_rounds: int = Field(default=3, ge=1, le=10, description="Rounds of a closed-loop strategy (agent).")
    explainer_samples: int = Field(default=4, ge=1, le=16, description="Best of k: answers a program "
                                   "strategy samples per head, the best on the training prompts kept.")
    explainer_temperature: float = Field(default=0.7, ge=0.0, le=2.0, description="Temperature of those samples.")
    classifier: str = Field(default=DEFAULT_JUDGE, description="LLM backend spec of the judge.")
    classifier_template: str = "neo2024"
    scorers: list[str] = Field(default=["zero-shot"], min_length=1,
                               description="Scorers (lookups scorers); the first is the headline score.")
    budget_usd: float | None = Field(default=None, gt=0.0)
    llm_prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="USD per million input, output tokens of models the settings' "
        "price table lacks (LOOKUPS_LLM_PRICES); a budget needs a price for every remote model.")
    ablation: bool = True
    llm_mode: Literal["live", "batch"] = Field(
        default="live", description="'batch': the explain and classify stages' requests go out as one "
        "provider batch each (OpenAI Batch, Anthropic Message Batch): half the price, answered within hours.")

    @model_validator(mode="after")
    def _check(self) -> CampaignConfig:
        low, high = self.worth_range
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"worth_range must satisfy 0 <= low <= high <= 1, got {self.worth_range}")
        for neuron in self.neurons or []:
            NeuronRef.parse(neuron)
        if self.neurons is not None and not self.neurons:
            raise ValueError("neurons, when given, must not be empty")
        if len(set(self.scorers)) < len(self.scorers):
            raise ValueError(f"scorers must not repeat: {self.scorers}")
        get_strategy(self.explainer_strategy)
        if self.budget_usd is not None:
            prices = {**get_settings().llm_prices, **self.llm_prices}
            for role, spec in (("explainer", self.explainer), ("classifier", self.classifier)):
                model = unpriced_model(spec, prices)
                if model is not None:
                    raise ValueError(f"{role} model {model!r} has no price, so the budget cannot cap its "
                                     f"spending; {price_hint(model)}")
        for scorer in self.scorers:
            get_scorer(scorer)
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

    def neuron_refs(self) -> list[NeuronRef] | None:
        return None if self.neurons is None else [NeuronRef.parse(n) for n in self.neurons]


def load_config(path: Path, overrides: dict | None = None) -> CampaignConfig:
    """Read a campaign config from TOML or JSON, with command-line overrides on top."""
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise InvalidInputError(f"cannot read campaign config {path}: {error}") from error
    return parse_config({**data, **(overrides or {})}, source=str(path))


def parse_config(data: dict, source: str = "campaign config") -> CampaignConfig:
    try:
        return CampaignConfig.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in error.errors()
        )
        raise InvalidInputError(f"{source}: {problems}") from error
