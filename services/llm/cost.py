"""Prices and token estimates, for the ledger and for the estimate shown before a run."""

from typing import Annotated

from pydantic import Field

from lookups import Backend, Completion
from services.settings import Settings

MAX_PRICE = 10_000.0  # USD per million tokens: far above any model's, far below what breaks a sum
# What a request may add to the operator's price table: USD per million (input, output) tokens of
# models the operator does not price, finite, 0 to MAX_PRICE, at most 100 models.
_Price = Annotated[float, Field(ge=0, le=MAX_PRICE, allow_inf_nan=False)]
Prices = Annotated[dict[Annotated[str, Field(min_length=1, max_length=200)], tuple[_Price, _Price]],
                   Field(max_length=100)]


def with_prices(settings: Settings, prices: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """The operator's price table with ``prices`` added for the models it lacks: a request never
    lowers or replaces a price the operator set."""
    return {**prices, **settings.llm_prices}


def price(settings: Settings, model: str) -> tuple[float, float] | None:
    """USD per million (input, output) tokens; None for models not in the price table."""
    return settings.llm_prices.get(model)


def price_hint(model: str) -> str:
    return (f"give its price in USD per million input and output tokens: --price '{model}=IN,OUT', "
            f"llm_prices in the campaign config, or LOOKUPS_LLM_PRICES='{{\"{model}\": [IN, OUT]}}'")


def cost_usd(settings: Settings, model: str, input_tokens: int, output_tokens: int) -> float:
    per_million = price(settings, model)
    if per_million is None:
        return 0.0
    return (input_tokens * per_million[0] + output_tokens * per_million[1]) / 1e6


def completion_cost(settings: Settings, backend: Backend, completion: Completion) -> float:
    """What an answered call cost: output at the output price; input at the input price, except
    the tokens the provider read from or wrote to its prompt cache, at the backend's factors."""
    per_million = price(settings, backend.model)
    if per_million is None:
        return 0.0
    read, written = completion.cache_read_tokens, completion.cache_write_tokens
    weighted_input = (max(0, completion.input_tokens - read - written) + read * backend.cache_read_price
                      + written * backend.cache_write_price)
    return (weighted_input * per_million[0] + completion.output_tokens * per_million[1]) / 1e6


def batch_cost_usd(settings: Settings, model: str, input_tokens: int, output_tokens: int) -> float:
    """A worst case in a provider batch: the price table's times the batch factor."""
    return cost_usd(settings, model, input_tokens, output_tokens) * settings.llm_batch_price_factor


def estimate_tokens(text: str) -> int:
    """English runs about four characters per token; dividing by three leans high, so caps hold."""
    return len(text) // 3 + 1
