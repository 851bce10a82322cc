"""One place for configuration, read from the environment (prefix ``LOOKUPS_``)."""

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
        default={
            "gpt-4-1106-preview": (10.0, 30.0),
            "gpt-4o": (2.5, 10.0),
            "gpt-4o-mini": (0.15, 0.6),
            "claude-sonnet-4-5": (3.0, 15.0),
            "claude-haiku-4-5": (1.0, 5.0),
        },
        description="USD per million (input, output) tokens by model name; unlisted models cost 0. "
        "Override with LOOKUPS_LLM_PRICES as JSON.",
    )
    llm_max_attempts: int = Field(default=5, ge=1, le=20, description="Tries per LLM call.")
    llm_retry_initial_s: float = Field(default=1.0, ge=0, description="First backoff wait.")
    llm_retry_max_s: float = Field(default=60.0, ge=0, description="Longest backoff wait.")
    llm_timeout_s: float = Field(default=120.0, gt=0, description="Per-request timeout.")
    llm_max_concurrency: int = Field(default=8, ge=1, description="Parallel calls per remote backend.")

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

    environment: Literal["development", "production"] = Field(
        default="production", description="'development' lets the API run without bearer tokens.")
    api_tokens: list[str] = Field(
        default=[], description="Bearer tokens the REST API accepts (JSON list in LOOKUPS_API_TOKENS).")
    api_max_request_bytes: int = Field(default=1_000_000, ge=1024, description="Larger request bodies get 413.")
    api_orchestrate: bool = Field(
        default=True, description="The API process runs the reconcile loop (re-enqueues lost work) in a thread.")

    api_url: str = Field(default="http://127.0.0.1:8000", description="Where `lookups campaign` finds the API.")
    api_token: str | None = Field(default=None, description="Bearer token `lookups campaign` sends.")

    def check_api(self) -> None:
        """The API refuses to start unauthenticated outside development."""
        if not self.api_tokens and self.environment != "development":
            raise ValueError("LOOKUPS_API_TOKENS is empty: set bearer tokens (a JSON list), "
                             "or LOOKUPS_ENVIRONMENT=development to run the API without auth")


def get_settings() -> Settings:
    """Fresh settings each call, so tests and CLI flags can change the environment."""
    return Settings()
