"""Choosing the next batch: BoTorch acquisition over the generator's candidate pool, at scale.

``select_batch`` (a batch from a pool of up to 10^6 rows), ``initial_design`` (space-filling first batch) and
``fit_feasibility`` (learn where experiments fail) are the entry points; each pick comes back as a :class:`Pick` with its acquisition value, posterior mean
and std, rank and reason.
"""

from agent.selection.discrete import select_batch
from agent.selection.feasibility import FeasibilityModel, fit_feasibility
from agent.selection.grid import UnitScaler, snap
from agent.selection.initial import initial_design
from agent.selection.picks import Pick
from agent.spec.acquisition import ACQUISITIONS

__all__ = [
    "ACQUISITIONS",
    "FeasibilityModel",
    "Pick",
    "UnitScaler",
    "fit_feasibility",
    "initial_design",
    "select_batch",
    "snap",
]
