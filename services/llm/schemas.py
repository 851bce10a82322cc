"""Pydantic models crossing the LLM call path: requests, completions, ledger records, estimates."""


from pydantic import BaseModel, Field

from lookups import CallRecord, Completion


class LLMResponse(BaseModel):
    completion: Completion
    record: CallRecord


class CostEstimate(BaseModel):
    """Before a run: calls not already cached, their tokens (approximate) and worst-case cost."""

    backend: str
    model: str
    calls: int
    cached_calls: int
    input_tokens: int
    max_output_tokens: int
    usd: float
    priced: bool = Field(description="False when the model is not in the price table (cost 0).")
