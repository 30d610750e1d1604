"""Which acquisition names a campaign file may ask for, checked when the file is read.

The names live here, not in :mod:`agent.selection`, so that reading a campaign file does not import torch,
and so that a typo such as ``acquisition: {type: ts}`` or an acquisition that does not fit the objectives is
refused with the file, before a campaign has started, rather than at its first model-based batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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


#: Acquisitions whose batch may open with a greedy share (``exploit_share``): one objective to maximise or
#: minimise, and a sample table whose greedy can be seeded with fixed first picks (``auto`` resolves to qlogei).
GREEDY_SHARE_ACQUISITIONS = ("qlogei", "qlognei", "ucb")


def check_acquisition_settings(name: str, settings: Mapping[str, Any], objectives: Sequence[Objective]) -> dict:
    """The acquisition's ``settings``, checked: a misspelt or misplaced setting is refused, never ignored.

    ``exploit_share`` (a number in [0, 1)): that share of each batch goes to the candidates with the best
    posterior mean before the acquisition picks the rest (see :func:`agent.selection.select_batch`). It
    needs one objective to maximise or minimise and an acquisition that can condition on fixed picks.
    """
    allowed = {"exploit_share"}
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ValueError(f"unknown acquisition setting(s) {unknown}; allowed: {sorted(allowed)}")
    if "exploit_share" in settings:
        share = settings["exploit_share"]
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share < 1:
            raise ValueError(f"exploit_share must be a number in [0, 1), got {share!r}")
        single = len(objectives) == 1 and objectives[0].goal != "target"
        takes_share = ("auto", *GREEDY_SHARE_ACQUISITIONS)
        if not single or name.lower() not in takes_share:
            raise ValueError(f"exploit_share applies to one objective to maximise or minimise with one of "
                             f"{list(takes_share)}, not acquisition {name!r} with these objectives")
    return dict(settings)
