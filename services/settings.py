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


def get_settings() -> Settings:
    """Fresh settings each call, so tests and CLI flags can change the environment."""
    return Settings()
