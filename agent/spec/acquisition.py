"""Which acquisition names a campaign file may ask for, checked when the file is read.

The names live here, not in :mod:`agent.selection`, so that reading a campaign file does not import torch,
and so that a typo such as ``acquisition: {type: ts}`` or an acquisition that does not fit the objectives is
refused with the file, before a campaign has started, rather than at its first model-based batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.spec.objectives import Objective

#: ``auto`` resolves to ``qlogei`` for one objective (see ``agent.selection.acquisition.resolve_acquisition``).
ACQUISITIONS = ("auto", "qlogei", "qlognei", "ucb", "thompson", "qlognehvi", "band")


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
