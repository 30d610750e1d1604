"""The finite-volume solver against exact results: Wiener bounds for layers, symmetry, bad input."""

import numpy as np
import pytest

from lab_adapters.simlab.physics import (
    ConductionError,
    effective_conductivity,
    gaussian_random_field_microstructure,
    layered_microstructure,
    parallel_bound,
    series_bound,
    volume_fraction,
)


@pytest.mark.parametrize("n_layers", [0, 5, 16, 27, 32])
@pytest.mark.parametrize(("k0", "k1"), [(1.0, 10.0), (3.0, 0.5)])
def test_layers_match_wiener_bounds(n_layers, k0, k1):
    size = 32
    fraction = n_layers / size
    parallel = effective_conductivity(layered_microstructure(size, n_layers, "parallel"), k0, k1)
    series = effective_conductivity(layered_microstructure(size, n_layers, "series"), k0, k1)
    assert parallel == pytest.approx(parallel_bound(fraction, k0, k1), rel=1e-9)
    assert series == pytest.approx(series_bound(fraction, k0, k1), rel=1e-9)


def test_random_microstructure_lies_between_the_bounds_and_flips_with_phases():
    image = gaussian_random_field_microstructure(48, 0.4, 3.0, seed=3)
    f = volume_fraction(image)
    assert f == pytest.approx(0.4, abs=1 / 48**2)
    k = effective_conductivity(image, 1.0, 10.0)
    assert series_bound(f) < k < parallel_bound(f)
    # Swapping phases and conductivities describes the same material.
    assert effective_conductivity(1 - image, 10.0, 1.0) == pytest.approx(k, rel=1e-9)
    # Transposing swaps flow direction; an isotropic random field stays in the same band.
    assert series_bound(f) < effective_conductivity(image.T) < parallel_bound(f)


def test_more_conductive_pixels_never_lower_conductivity():
    image = gaussian_random_field_microstructure(32, 0.3, 2.0, seed=1)
    more = image.copy()
    more[np.argwhere(image == 0)[:40].T.tolist()] = 1.0
    assert effective_conductivity(more) > effective_conductivity(image)


@pytest.mark.parametrize(
    ("image", "kwargs", "message"),
    [
        (np.full((4, 4), 0.5), {}, "pixel (0, 0) is 0.5"),
        (np.zeros(4), {}, "2-D image"),
        (np.zeros((4, 4)), {"k1": -1.0}, "k1=-1.0"),
        (np.array([[0.0, np.nan], [1.0, 0.0]]), {}, "non-finite"),
    ],
)
def test_bad_input_is_named(image, kwargs, message):
    with pytest.raises(ConductionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        effective_conductivity(image, **kwargs)
