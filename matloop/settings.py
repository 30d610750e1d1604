"""Process-wide settings from the environment (prefix ``MATLOOP_``), via pydantic-settings.

Defaults are the embedded ones: a SQLite file in the user's data directory and
Prefect's ephemeral API, so ``matloop`` works with no set-up at all.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from platformdirs import user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(user_data_dir("matloop", appauthor=False))


class Settings(BaseSettings):
    """Everything matloop reads from the environment."""

    model_config = SettingsConfigDict(env_prefix="MATLOOP_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir, description="where embedded state lives")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite in data_dir")
    simlab_token: str | None = Field(default=None, description="bearer token for the simulated lab")
    simlab_url: str | None = Field(
        default=None, description="an external simulated lab for 'simlab' adapters without a url (else in-process)"
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'matloop.sqlite'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reload_settings() -> Settings:
    """Forget cached settings (tests change the environment)."""
    get_settings.cache_clear()
    return get_settings()
