"""Which acquisition a campaign file may ask for: typed configs, checked when the file is read.

The models live here, not in :mod:`agent.selection`, so that reading a campaign file does not import torch,
and so that a typo such as ``acquisition: {type: ts}`` or an acquisition that does not fit the objectives is
refused with the file, before a campaign has started, rather than at its first model-based batch.
:func:`check_acquisition` is also what :mod:`agent.selection` calls, so the reader and the selection agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.spec.objectives import Objective
from matloop.config import UnknownTypeError, flatten_settings

#: ``auto`` resolves to ``qlogei`` for one objective (see ``agent.selection.acquisition.resolve_acquisition``).
ACQUISITIONS = ("auto", "qlogei", "qlognei", "ucb", "thompson", "qlognehvi", "band")
#: Acquisitions whose batch may open with a greedy share (``exploit_share``): one objective to maximise or
#: minimise, and a sample table whose greedy can be seeded with fixed first picks (``auto`` resolves to qlogei).
GREEDY_SHARE_ACQUISITIONS = ("qlogei", "qlognei", "ucb")


class GreedyShareAcquisition(BaseModel):
    """An acquisition that may give the first share of each batch to the best posterior means."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["auto", "qlogei", "qlognei", "ucb"] = Field(
        default="auto", description="auto (qLogEI for one objective, Thompson samples after the fourth pick of "
                                    "a batch of 5-8; qLogNEHVI for several, band for a target)"
    )
    exploit_share: float = Field(
        default=0.0, ge=0, lt=1,
        description="share of each batch given to the best posterior means first (one objective to max/minimise)",
    )


class PlainAcquisition(BaseModel):
    """An acquisition without settings."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["thompson", "qlognehvi", "band"] = Field(
        description="thompson sampling, qLogNEHVI (several objectives) or band (probability of a target band)"
    )


AcquisitionConfig = Annotated[
    GreedyShareAcquisition | PlainAcquisition,
    Field(discriminator="type", description="how the batch is picked from the pool"),
]


def check_acquisition(name: str, objectives: Sequence[Objective]) -> str:
    """``name`` lower-cased, or a ValueError saying why it cannot serve these objectives."""
    key = name.lower()
    if key not in ACQUISITIONS:
        raise ValueError(f"unknown acquisition {name!r}; choose one of {list(ACQUISITIONS)}")
    if key == "qlognehvi" and len(objectives) < 2:
        raise ValueError("acquisition 'qlognehvi' needs several objectives; this campaign has one")
    if key == "band" and not any(o.goal == "target" for o in objectives):
        raise ValueError("acquisition 'band' needs a target objective (goal: target)")
    return key


def check_exploit_share(config: Any, objectives: Sequence[Objective]) -> None:
    """A non-zero ``exploit_share`` needs one objective to maximise or minimise (a cross-check with the objectives)."""
    share = getattr(config, "exploit_share", 0.0)
    single = len(objectives) == 1 and objectives[0].goal != "target"
    if share and not single:
        raise ValueError(f"exploit_share applies to one objective to maximise or minimise, not to these objectives "
                         f"with acquisition {config.type!r}")


def normalise_acquisition(value: Any) -> Any:
    """The raw ``acquisition:`` mapping in the typed shape: ``type`` lower-cased (default ``auto``), ``settings``
    flattened; an unknown name, or ``exploit_share`` with an acquisition that cannot take one, refused in a sentence."""
    if value is None:
        return {"type": "auto"}
    if not isinstance(value, dict):
        return value
    value = dict(value)
    kind = value.setdefault("type", "auto")
    if isinstance(kind, str):
        if kind.lower() not in ACQUISITIONS:
            raise UnknownTypeError(f"unknown acquisition {kind!r}; choose one of {list(ACQUISITIONS)}")
        value["type"] = kind = kind.lower()
    flatten_settings(value)
    if "exploit_share" in value and kind not in ("auto", *GREEDY_SHARE_ACQUISITIONS):
        raise ValueError(f"exploit_share applies to one of {['auto', *GREEDY_SHARE_ACQUISITIONS]}, "
                         f"not acquisition {kind!r}")
    return value
