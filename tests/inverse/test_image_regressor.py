"""The binary-image ensemble: its physics prior is exact on layers, it learns, and it steers Janus designs."""

import numpy as np
import pytest

from generators.inverse import Inversion, JanusTraining, design, train_janus
from generators.inverse.coarse_physics import coarse_conductivity
from generators.inverse.image_regressor import ImageEnsembleTraining, train_image_ensemble
from generators.inverse.janus import calibrate_fractions
from lab_adapters.simlab.physics import effective_conductivity, parallel_bound, series_bound
from lab_adapters.simlab.physics.dataset import microstructure_dataset
from lab_adapters.simlab.physics.microstructure import layered_microstructure


@pytest.mark.parametrize("layers", [4, 8, 12])
def test_coarse_solve_is_exact_for_block_aligned_layers(layers):
    for orientation, bound in (("parallel", parallel_bound), ("series", series_bound)):
        image = layered_microstructure(16, layers, orientation)
        k = coarse_conductivity(image[None], block=4)[0]
        assert k == pytest.approx(bound(layers / 16), rel=1e-9)


@pytest.fixture(scope="module")
def data():
    train = microstructure_dataset(240, size=16, seed=0, length_scale_range=(1.5, 3.0))
    test = microstructure_dataset(80, size=16, seed=1, length_scale_range=(1.5, 3.0))
    return train, test


def _rel(pred, y):
    return float(np.median(np.abs(pred - y) / y))


@pytest.mark.parametrize("prior", [False, True])
def test_ensemble_beats_volume_fraction_baseline(data, prior):
    train, test = data
    model, history = train_image_ensemble(
        train.images, train.conductivity, ImageEnsembleTraining(epochs=40, width=8, batch_size=32, physics_prior=prior)
    )
    assert history[-1] < history[0]
    vf = lambda d: d.images.mean(axis=(1, 2))  # noqa: E731
    baseline = np.polyval(np.polyfit(vf(train), train.conductivity, 3), vf(test))
    mean, spread = model.predict_with_spread(test.images)
    assert spread.shape == mean.shape == (80,) and np.all(spread >= 0)
    assert _rel(mean, test.conductivity) < 0.8 * _rel(baseline, test.conductivity)


def test_batched_calibration_hits_a_monotone_score():
    soft = np.random.default_rng(0).uniform(size=(3, 16, 16))
    images, scores = calibrate_fractions(soft, lambda b: np.array([effective_conductivity(im) for im in b]), 4.0)
    assert images.shape == (3, 16, 16) and set(np.unique(images)) <= {0.0, 1.0}
    assert np.all(np.abs(scores - 4.0) / 4.0 < 0.02)
    assert np.allclose(scores, [effective_conductivity(im) for im in images])


def test_design_with_score_model_returns_binary_images(data):
    train, _ = data
    janus, _ = train_janus(train.images, train.conductivity, JanusTraining(width=8, epochs=5, batch_size=16))
    scorer, _ = train_image_ensemble(train.images, train.conductivity,
                                     ImageEnsembleTraining(epochs=10, width=8, batch_size=32))
    target = float(np.median(train.conductivity))
    designs, predicted = design(janus, target, train.images, train.conductivity, n=2,
                                cfg=Inversion(steps=10, n_starts=4), score_model=scorer)
    assert designs.shape == (2, 16, 16) and set(np.unique(designs)) <= {0.0, 1.0}
    assert np.allclose(predicted, scorer.predict(designs))
    assert np.all(np.abs(predicted - target) / target < 0.05)  # calibrated to the score model's own estimate
