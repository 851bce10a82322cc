"""One place for configuration, read from the environment (prefix ``LOOKUPS_``)."""

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class RateLimit(BaseModel):
    """A provider's limits for one model; None: not limited."""

    rpm: int | None = Field(default=None, ge=1, description="Requests per window.")
    tpm: int | None = Field(default=None, ge=1, description="Tokens per window: prompt (estimated) + max_tokens.")


# USD per million (input, output) tokens; LOOKUPS_LLM_PRICES adds to these.
BUILT_IN_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4-1106-preview": (10.0, 30.0),
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOKUPS_", extra="ignore")

    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "lookups",
        description="Where dequantized models and other derived artefacts are cached.",
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        default="auto", description="'auto' picks cuda, then mps, then cpu."
    )
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    results_url: str = Field(
        default="sqlite:///lookups.sqlite",
        description="SQLAlchemy URL of the results store (SQLite file by default).",
    )
    context_length: int = Field(
        default=1024,
        gt=1,
        description="Tokens per document in scans, BOS included (GPT-2's context, as in the paper).",
    )
    llm_db_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the LLM response cache and call ledger "
        "(default: a SQLite file llm.sqlite under cache_dir).",
    )
    llm_prices: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: dict(BUILT_IN_PRICES), validate_default=True,
        description="USD per million (input, output) tokens by model name; unlisted models cost 0. "
        "LOOKUPS_LLM_PRICES (JSON) adds models to the built-in table or changes their prices.",
    )
    llm_max_attempts: int = Field(default=5, ge=1, le=20, description="Tries per LLM call.")
    llm_retry_initial_s: float = Field(default=1.0, ge=0, description="First backoff wait.")
    llm_retry_max_s: float = Field(default=60.0, ge=0, description="Longest backoff wait.")
    llm_timeout_s: float = Field(default=120.0, gt=0, description="Per-request timeout.")
    llm_max_concurrency: int = Field(default=8, ge=1, description="Parallel calls per remote backend.")
    llm_batch_price_factor: float = Field(
        default=0.5, gt=0, le=1,
        description="Batch mode's price as a fraction of llm_prices (OpenAI and Anthropic charge half).")
    llm_batch_poll_s: float = Field(default=60.0, gt=0, description="Wait between polls of a provider batch.")
    llm_batch_max_requests: int = Field(
        default=50_000, ge=1, description="Requests per provider batch (OpenAI takes 50,000, Anthropic 100,000); "
        "a stage with more is sent as several batches.")
    llm_rate_limits: dict[str, RateLimit] = Field(
        default={}, description="Requests and tokens per llm_rate_window_s by model name, e.g. "
        'LOOKUPS_LLM_RATE_LIMITS=\'{"gpt-4o": {"rpm": 500, "tpm": 30000}}\'; counted in Redis by the workers '
        "(every process shares it), in memory by lookups run. Unlisted models: no limit.")
    llm_rate_window_s: float = Field(default=60.0, gt=0, description="The rate limits' window (a minute).")

    broker_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Celery broker and result backend (Redis)."
    )
    task_soft_time_limit_s: int = Field(default=3000, ge=1, description="A task is asked to stop.")
    task_time_limit_s: int = Field(default=3300, ge=1, description="A task is killed.")
    visibility_timeout_s: int = Field(
        default=3600, ge=1,
        description="Redis redelivers an unacknowledged task after this long (keep above the time limit).",
    )
    stale_after_s: int = Field(
        default=3900, ge=1,
        description="A queued or running work item with no news for this long is enqueued again.",
    )
    orchestrate_interval_s: float = Field(default=10.0, gt=0, description="Reconcile loop period.")
    item_max_attempts: int = Field(
        default=4, ge=1, le=20,
        description="Tries of a work item or single job that fails on a transient error (store or broker "
        "briefly away, a start-up race, an LLM backend unavailable after its own retries) before it is "
        "marked failed. Other errors fail it at once.",
    )
    item_retry_initial_s: float = Field(
        default=2.0, ge=0, description="Wait before a work item's second try; it doubles per try.")
    item_retry_max_s: float = Field(default=120.0, ge=0, description="Longest wait between a work item's tries.")

    environment: Literal["development", "production"] = Field(
        default="production", description="'development' lets the API run without bearer tokens.")
    api_tokens: list[str] = Field(
        default=[], description="Bearer tokens the REST API accepts (JSON list in LOOKUPS_API_TOKENS); each is "
        "an admin principal named token-1, token-2, ... in list order.")
    api_principals: dict[str, str] = Field(
        default={}, description="Principal name -> bearer token (JSON object in LOOKUPS_API_PRINCIPALS). A "
        "principal sees only the campaigns and jobs it submitted; others' are 404.")
    api_admins: list[str] = Field(
        default=[], description="Names in api_principals that see and act on every campaign and job, those "
        "of other principals and those with no owner (JSON list in LOOKUPS_API_ADMINS).")
    api_submissions_per_minute: int = Field(
        default=30, ge=0, description="Campaigns and jobs one principal may submit in any 60 s, counted in "
        "Redis at broker_url (per API process while Redis is unreachable); more get 429. 0: no limit.")
    api_max_campaign_size: int | None = Field(
        default=None, ge=1, description="Largest campaign the API accepts, in neurons x documents "
        "(max_train_docs + max_test_docs, which the API then requires); unset: no cap.")
    corpus_roots: list[Path] = Field(
        default=[], description="Folders the API accepts corpus paths under (symlinks followed; JSON list in "
        "LOOKUPS_CORPUS_ROOTS). None: only hf: corpora through the API. The CLI is not limited.")
    model_roots: list[Path] = Field(
        default=[], description="Folders the API accepts subject-model checkpoints and local:/path.gguf "
        "backends under (JSON list in LOOKUPS_MODEL_ROOTS). None: only packaged and hub names through the API.")
    allowed_backend_urls: list[str] = Field(
        default=[], description="URL prefixes the API accepts in openai-compatible:URL:MODEL specs and base_url "
        "options (JSON list in LOOKUPS_ALLOWED_BACKEND_URLS). None: no backend URLs through the API.")
    api_max_request_bytes: int = Field(default=1_000_000, ge=1024, description="Larger request bodies get 413.")
    api_orchestrate: bool = Field(
        default=True, description="The API process runs the reconcile loop (re-enqueues lost work) in a thread.")

    api_url: str = Field(default="http://127.0.0.1:8000", description="Where `lookups campaign` finds the API.")
    api_token: str | None = Field(default=None, description="Bearer token `lookups campaign` sends.")

    @field_validator("llm_prices")
    @classmethod
    def _add_to_built_in_prices(cls, prices: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        return {**BUILT_IN_PRICES, **prices}

    def check_api(self) -> None:
        """The API refuses to start unauthenticated outside development, or with principals,
        admins, roots or backend URLs that cannot be meant."""
        if not self.api_tokens and not self.api_principals and self.environment != "development":
            raise ValueError("LOOKUPS_API_TOKENS and LOOKUPS_API_PRINCIPALS are empty: set bearer tokens (a JSON "
                             "list, or a JSON object name -> token), or LOOKUPS_ENVIRONMENT=development to run "
                             "the API without auth")
        tokens = [*self.api_tokens, *self.api_principals.values()]
        if any(not token.strip() for token in tokens):
            raise ValueError("LOOKUPS_API_TOKENS / LOOKUPS_API_PRINCIPALS: a bearer token is empty")
        if len(set(tokens)) < len(tokens):
            raise ValueError("LOOKUPS_API_TOKENS / LOOKUPS_API_PRINCIPALS: a bearer token is given twice")
        for name in self.api_principals:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}", name) or re.fullmatch(r"token-\d+", name):
                raise ValueError(f"LOOKUPS_API_PRINCIPALS: bad principal name {name!r} (1-64 letters, digits, "
                                 "'_.@-'; token-N names are those of LOOKUPS_API_TOKENS)")
        unknown = sorted(set(self.api_admins) - set(self.api_principals))
        if unknown:
            raise ValueError(f"LOOKUPS_API_ADMINS names principals not in LOOKUPS_API_PRINCIPALS: {unknown}")
        for setting, roots in (("LOOKUPS_CORPUS_ROOTS", self.corpus_roots), ("LOOKUPS_MODEL_ROOTS", self.model_roots)):
            relative = [str(root) for root in roots if not root.is_absolute()]
            if relative:
                raise ValueError(f"{setting}: give absolute folders, not {relative}")
        for url in self.allowed_backend_urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
                raise ValueError(f"LOOKUPS_ALLOWED_BACKEND_URLS: {url!r} is not an http(s) URL prefix "
                                 "(scheme, host, optional port and path)")


def get_settings() -> Settings:
    """Fresh settings each call, so tests and CLI flags can change the environment."""
    return Settings()
