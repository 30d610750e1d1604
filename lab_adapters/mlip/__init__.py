"""The in-process MLIP instrument: relaxes candidates with CHGNet (or a MACE file) and reports formation energy.

It speaks :class:`matloop.types.LabAdapter` like the simulated lab and the DFT queue, so a campaign can use
an MLIP as its cheapest fidelity.  ``make_mlip_adapter(name, config)`` builds it; the potential is loaded on
the first job, not here.
"""

from __future__ import annotations

from lab_adapters.mlip.config import MLIPAdapter

__all__ = ["MLIPAdapter", "make_mlip_adapter"]


def make_mlip_adapter(name: str, config: MLIPAdapter):  # noqa: ANN201 - the instrument imports pymatgen
    from lab_adapters.mlip.instrument import MLIPInstrument

    return MLIPInstrument(name, config)
