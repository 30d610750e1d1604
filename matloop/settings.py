"""Process-wide settings from the environment (prefix ``MATLOOP_``), via pydantic-settings.

Defaults are the embedded ones: a SQLite file in the user's data directory and
Prefect's ephemeral API, so ``matloop`` works with no set-up at all.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from platformdirs import user_data_dir
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from matloop.compute import Compute, InProcess


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


#: The database backends matloop runs on, each with the drivers it ships (``postgresql`` alone means psycopg 3).
SUPPORTED_DATABASES = {"sqlite": {None, "pysqlite"}, "postgresql": {None, "psycopg"}}
DATABASE_URL_HINT = "give sqlite:///path/to/file.sqlite or postgresql://user@host/db"


def database_url_problem(url: str) -> str | None:
    """Why ``url`` is not a database matloop can use, as one sentence, or ``None`` when it is.

    The URL comes from the environment (``MATLOOP_DATABASE_URL``), so it is checked before SQLAlchemy sees it:
    a malformed URL or another dialect (``mysql://``) would otherwise surface as a driver traceback. This is a
    function rather than a settings validator because commands that never open the database (``validate``,
    ``init``) must keep working with a bad URL in the environment.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    shown = url if len(url) <= 80 else url[:79] + "…"
    shown = "the URL in MATLOOP_DATABASE_URL" if "@" in url else repr(shown)  # an unparsed password stays hidden
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return f"{shown} is not a database URL matloop can use; {DATABASE_URL_HINT}"
    drivers = SUPPORTED_DATABASES.get(parsed.get_backend_name())
    driver = parsed.drivername.partition("+")[2] or None
    if drivers is None or driver not in drivers:
        safe = parsed.render_as_string(hide_password=True)
        safe = safe if len(safe) <= 80 else safe[:79] + "…"
        return f"{safe!r} is not a database URL matloop can use ({parsed.drivername} is not supported); " \
               f"{DATABASE_URL_HINT}"
    return None


class ComputeSettings(BaseSettings):
    """Where heavy steps run (:mod:`matloop.compute`), from ``MATLOOP_COMPUTE`` as JSON or field by field.

    ``MATLOOP_COMPUTE='{"type": "dask_scheduler", "address": "tcp://sched:8786"}'``, or
    ``MATLOOP_COMPUTE__TYPE=local_cluster MATLOOP_COMPUTE__N_WORKERS=4``. Kept out of :class:`Settings` for the
    reason :func:`database_url_problem` gives: commands that run nothing must work with a bad value set.
    """

    model_config = SettingsConfigDict(env_prefix="MATLOOP_", env_nested_delimiter="__", extra="ignore")

    compute: Compute = Field(default_factory=InProcess)


class ComputeSettingError(ValueError):
    """``MATLOOP_COMPUTE`` (or a CLI option) does not describe a place to run; the message is one sentence."""


def compute_problem(exc: ValidationError, source: str = "MATLOOP_COMPUTE") -> str:
    """A pydantic error on a compute setting as one sentence naming the field (``MATLOOP_COMPUTE.address: ...``)."""
    first = exc.errors()[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "compute"]
    field = ".".join([source, *loc[1:]])  # loc[0] is the union's tag
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if first.get("type") in ("union_tag_invalid", "union_tag_not_found", "model_attributes_type", "dict_type"):
        return f'{source}: give a "type" of in_process, local_cluster or dask_scheduler, with its fields ' \
               f'(e.g. {{"type": "local_cluster", "n_workers": 2}}); {message[0].lower()}{message[1:]}'
    return f"{field}: {message[0].lower()}{message[1:]}"


def get_compute() -> Compute:
    """The compute setting from the environment, or :class:`ComputeSettingError` in one sentence."""
    try:
        return ComputeSettings().compute
    except ValidationError as exc:
        raise ComputeSettingError(compute_problem(exc)) from None
    except Exception as exc:  # noqa: BLE001 - pydantic-settings' SettingsError: MATLOOP_COMPUTE is not JSON
        raise ComputeSettingError(f"MATLOOP_COMPUTE is not a compute setting ({exc.__class__.__name__}): give JSON "
                                  'such as {"type": "local_cluster", "n_workers": 2}') from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reload_settings() -> Settings:
    """Forget cached settings (tests change the environment)."""
    get_settings.cache_clear()
    return get_settings()
