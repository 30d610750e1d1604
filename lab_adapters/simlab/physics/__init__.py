"""Physics the simulated lab can run: steady heat conduction through two-phase microstructures.

Pure numpy/scipy and the shared types only (``lab_adapters`` imports nothing else of ours), so
the same solver serves the ``microstructure`` scenario, the inverse-design benchmark and tests.
"""

from lab_adapters.simlab.physics.conduction import (
    ConductionError,
    effective_conductivity,
    parallel_bound,
    series_bound,
)
from lab_adapters.simlab.physics.microstructure import (
    gaussian_random_field_microstructure,
    layered_microstructure,
    volume_fraction,
)

__all__ = [
    "ConductionError",
    "effective_conductivity",
    "gaussian_random_field_microstructure",
    "layered_microstructure",
    "parallel_bound",
    "series_bound",
    "volume_fraction",
]
