"""MLIPs as scorers: relaxation (CHGNet, MACE), elemental references, hull stability, a MACE committee.

Imports only shared types and third-party libraries (DESIGN.md); heavy imports
(torch models) happen when a relaxer or committee is built, not at import time.
"""

from surrogates.mlip.batched import BatchedCHGNetRelaxer
from surrogates.mlip.committee import CommitteeSettings, MACECommittee
from surrogates.mlip.references import ElementalReferences, trial_structures
from surrogates.mlip.relax import CHGNetRelaxer, MACERelaxer, Relaxer, RelaxResult, make_relaxer, relax_all
from surrogates.mlip.screen import MLIPScreen, MLIPSettings, ScreenResult
from surrogates.mlip.stability import StabilityEstimate, estimate_stability

__all__ = [
    "BatchedCHGNetRelaxer", "CHGNetRelaxer", "CommitteeSettings", "ElementalReferences", "MACECommittee", "MACERelaxer", "MLIPScreen",
    "MLIPSettings", "RelaxResult", "Relaxer", "ScreenResult", "StabilityEstimate", "estimate_stability",
    "make_relaxer", "relax_all", "trial_structures",
]
