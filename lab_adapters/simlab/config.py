"""A campaign's ``adapters.<name>`` entry for the simulated lab (``type: simlab``).

Where the lab is: ``url`` (http or https) if given; else ``MATLOOP_SIMLAB_URL`` from the environment
if set (docker compose points campaigns at its lab this way); else a lab started in-process on a free
loopback port for the length of the run, shaped by ``lab``.

**No secret in the campaign.** The bearer token is read when the run starts, from the environment
variable ``token_env`` names (default ``MATLOOP_SIMLAB_TOKEN``) or from the Prefect Secret block
``token_secret`` names; a literal ``token:`` is refused. Only the *names* are stored with the campaign
and covered by its spec hash: rotating the token changes the variable's or block's value, not its
name, so a rotated token does not block resume.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from matloop.config import ConfigFieldError

STRICT = ConfigDict(extra="forbid")
DEFAULT_TOKEN_ENV = "MATLOOP_SIMLAB_TOKEN"


class InProcessLab(BaseModel):
    """The in-process lab (no ``url``): its fault injection and pace (``lab_adapters.simlab.lab.LabConfig``)."""

    model_config = STRICT
    time_scale: float = Field(default=1e-4, gt=0, description="real seconds per lab second")
    failure_rate: float = Field(default=0.0, ge=0, le=1, description="share of experiments that fail")
    error_rate: float = Field(default=0.0, ge=0, le=1, description="share of requests answered 500/503")
    slow_rate: float = Field(default=0.0, ge=0, le=1, description="share of requests answered slowly")
    slow_seconds: float = Field(default=0.5, ge=0, description="how slowly")
    outage_rate: float = Field(default=0.0, ge=0, description="outages per instrument per 100 lab hours")
    outage_hours: float = Field(default=8.0, gt=0, description="mean outage length in lab hours")
    noise_scale: float = Field(default=1.0, ge=0, description="multiplies every scenario's noise (0: noise-free)")
    seed: int = Field(default=0, description="the lab's random seed")
    state_path: str | None = Field(default=None, description="SQLite file for the lab's state; none: in memory")
    scenarios: list[str] | None = Field(
        default=None, description="scenarios to serve; none: those the measurements name"
    )
    instruments: dict[str, int] | None = Field(
        default=None, description="instrument -> capacity; none: the lab's default instruments"
    )

    def options(self) -> dict[str, Any]:
        """Keyword arguments for ``running_simlab`` (unset choices left to the lab)."""
        return self.model_dump(exclude_none=True)


class SimlabAdapter(BaseModel):
    """The simulated lab over HTTP."""

    model_config = STRICT
    type: Literal["simlab"] = Field(default="simlab", description="the simulated lab's HTTP API")
    url: str | None = Field(
        default=None, description="http(s) URL of a running lab; none: MATLOOP_SIMLAB_URL, else an in-process lab"
    )
    token_env: str = Field(
        default=DEFAULT_TOKEN_ENV, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="environment variable holding the bearer token (read when the run starts, never stored)",
    )
    token_secret: str | None = Field(
        default=None, description="Prefect Secret block holding the token (instead of token_env)"
    )
    timeout: float = Field(default=10.0, gt=0, description="seconds per HTTP request")
    max_retries: int = Field(default=6, ge=0, description="retries of a failed request")
    backoff: float = Field(default=0.2, ge=0, description="first retry delay, seconds (doubles each retry)")
    backoff_max: float = Field(default=5.0, ge=0, description="longest retry delay, seconds")
    lab: InProcessLab = Field(default_factory=InProcessLab, description="the in-process lab, when no URL is given")

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        check_lab_url(v)
        return v.rstrip("/")

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for :class:`lab_adapters.simlab.client.SimLabAdapter` besides URL, token and name."""
        return {"timeout": self.timeout, "max_retries": self.max_retries, "backoff": self.backoff,
                "backoff_max": self.backoff_max}


def check_lab_url(url: str) -> None:
    """Refuse anything but an http(s) URL with a host (a file path, ``ftp://``, a bare host name)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an http(s) URL of a lab (write e.g. http://lab.example:8000)")


def normalise_simlab(value: dict[str, Any], *, stored: bool = False) -> dict[str, Any]:
    """The older entry shape (``token``, ``settings``) in the typed one; a literal token refused in a sentence
    (dropped instead from a ``stored`` spec, written before this rule, so that its history stays readable)."""
    value = dict(value)
    if "token" in value:
        if value["token"] is not None and not stored:
            raise ConfigFieldError(
                "a literal 'token' would be stored with the campaign; put the token in an environment variable and "
                "name it with 'token_env' (default MATLOOP_SIMLAB_TOKEN), or in a Prefect Secret block named with "
                "'token_secret'", "token")
        del value["token"]  # specs stored before token_env wrote 'token: null' (or the token itself)
    return value
