"""Conditional INN on a toy problem, the plain INN, invertibility and localisation bounds."""

import numpy as np
import pytest
import torch

from generators.inverse import ConditionalINN, FlowTraining, ForwardINN, MLPEnsemble, downselect, in_bounds, localise
from generators.inverse.invertible import InvertibleNetwork


def _toy(n=600, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n, 3))
    return x, x[:, 0] + x[:, 1]  # the property depends on two of three parameters


def test_flow_is_invertible_with_and_without_condition():
    torch.manual_seed(0)
    for cond_dim in (0, 2):
        net = InvertibleNetwork(5, n_blocks=3, cond_dim=cond_dim, hidden=16)
        for p in net.parameters():  # move off the identity initialisation
            torch.nn.init.normal_(p, std=0.3)
        x = torch.randn(7, 5)
        c = torch.randn(7, cond_dim) if cond_dim else None
        z, _ = net(x, c)
        assert not torch.allclose(z, x)
        assert torch.allclose(net.inverse(z, c), x, atol=1e-4)


def test_cinn_training_converges_and_samples_hit_the_condition():
    x, y = _toy()
    flow = ConditionalINN(FlowTraining(n_blocks=4, hidden=32, epochs=40, batch_size=64, lr=3e-3)).fit(x, y)
    assert flow.history[-1] < flow.history[0] - 1.0  # the NLL fell substantially
    for target in (0.6, 1.4):
        s = flow.sample(target, 400, seed=1)
        achieved = s[:, 0] + s[:, 1]
        assert abs(np.median(achieved) - target) < 0.15
        assert np.mean(np.abs(achieved - target)) < 0.25
        assert s[:, 2].std() > 0.15  # the free parameter stays spread: samples, not a single point


def test_forward_inn_learns_the_forward_map():
    x, y = _toy()
    inn = ForwardINN(FlowTraining(n_blocks=4, hidden=32, epochs=30, batch_size=64, lr=3e-3)).fit(x, y)
    assert inn.history[-1] < inn.history[0]
    s = inn.sample(1.0, 300, seed=2)
    assert np.mean(np.abs(s[:, 0] + s[:, 1] - 1.0)) < 0.35


def test_localisation_stays_in_bounds_and_approaches_target():
    bounds = np.array([[0.0, 1.0], [-2.0, 3.0], [10.0, 11.0]])
    rng = np.random.default_rng(0)
    x = bounds[:, 0] + rng.uniform(size=(50, 3)) * (bounds[:, 1] - bounds[:, 0])

    def surrogate(t: torch.Tensor) -> torch.Tensor:
        return t.sum(dim=1)

    far = localise(x, surrogate, target=1e6, bounds=bounds, steps=200, lr=0.05)  # pulls out of the box
    assert in_bounds(far, bounds).all()
    assert np.allclose(far, bounds[:, 1], atol=1e-6)  # pinned at the upper corner, not beyond
    reachable = localise(x, surrogate, target=10.5, bounds=bounds, steps=300, lr=0.02)
    assert in_bounds(reachable, bounds).all()
    assert np.mean(np.abs(reachable.sum(1) - 10.5)) < np.mean(np.abs(x.sum(1) - 10.5)) / 5


def test_downselect_drops_out_of_box_and_off_target():
    bounds = np.array([[0.0, 1.0], [0.0, 1.0]])
    x = np.array([[0.2, 0.3], [1.5, 0.1], [0.9, 0.9]])
    keep = downselect(x, bounds, lambda a: a.sum(1), target=0.5, tolerance=0.1)
    assert keep.tolist() == [True, False, False]


def test_ensemble_fits_and_reports_spread():
    x, y = _toy(300)
    ens = MLPEnsemble(3, n_members=3, hidden=32).fit(x, y, epochs=60)
    assert np.mean(np.abs(ens.predict(x) - y)) < 0.05
    far = np.array([[5.0, 5.0, 5.0]])
    assert ens.spread(far)[0] > ens.spread(x).mean()
    with pytest.raises(ValueError, match="at least 8"):
        ConditionalINN().fit(x[:3], y[:3])


def test_bootstrapped_members_see_different_rows():
    """With ``bootstrap`` a row most members never saw is one they disagree on; without it they all fit it."""
    x, y = _toy(200)
    y = y.copy()
    y[0] += 3.0  # an isolated surprise: only the members whose bootstrap drew row 0 can follow it
    counts = np.random.default_rng(0).poisson(1.0, size=(4, len(x)))
    assert (counts[:, 0] == 0).any() and (counts[:, 0] > 0).any(), "the test needs row 0 drawn by some members only"
    plain = MLPEnsemble(3, n_members=4, hidden=32).fit(x, y, epochs=150, seed=0)
    bagged = MLPEnsemble(3, n_members=4, hidden=32).fit(x, y, epochs=150, seed=0, bootstrap=True)
    assert bagged.spread(x[:1])[0] > 2 * plain.spread(x[:1])[0]
    assert np.median(np.abs(bagged.predict(x[1:]) - y[1:])) < 0.05  # and still fits the rest


def test_subsampled_members_see_only_their_share_of_rows():
    """With ``subsample`` a row only some members saw is one they disagree on; the share must be a share."""
    x, y = _toy(200)
    y = y.copy()
    y[0] += 3.0
    drawn = np.random.default_rng(0).random((4, len(x))) < 0.4
    assert drawn[:, 0].any() and not drawn[:, 0].all(), "the test needs row 0 seen by some members only"
    plain = MLPEnsemble(3, n_members=4, hidden=32).fit(x, y, epochs=150, seed=0)
    sub = MLPEnsemble(3, n_members=4, hidden=32).fit(x, y, epochs=150, seed=0, subsample=0.4)
    assert sub.spread(x[:1])[0] > 2 * plain.spread(x[:1])[0]
    assert np.median(np.abs(sub.predict(x[1:]) - y[1:])) < 0.05
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="share"):
            MLPEnsemble(3, n_members=2, hidden=8).fit(x, y, epochs=1, subsample=bad)
    with pytest.raises(ValueError, match="not both"):
        MLPEnsemble(3, n_members=2, hidden=8).fit(x, y, epochs=1, bootstrap=True, subsample=0.5)


def test_designs_are_ranked_by_the_ranking_ensemble_not_the_localised_one():
    """The ranking ensemble's disagreement (not the surrogate's) chooses which designs are localised and kept."""
    from generators.inverse import MatDesINNe

    x, y = _toy(400)
    bounds = np.array([[0.0, 1.0]] * 3)
    pipe = MatDesINNe(bounds, FlowTraining(epochs=30, seed=0), ensemble_members=2, surrogate_epochs=60,
                      ranking_members=3).fit(x, y)
    assert pipe.ranking is not None and len(pipe.ranking.weights[0]) == 3
    assert pipe._spread() == pipe.ranking.spread

    class ThirdCoordinate:
        """A ranking whose "disagreement" is the free third parameter: kept designs must have it small."""

        def spread(self, a: np.ndarray) -> np.ndarray:
            return a[:, 2]

    free = pipe.generate(1.0, 40, seed=0).designs[:, 2]
    pipe.ranking = ThirdCoordinate()  # type: ignore[assignment]
    ranked = pipe.generate(1.0, 40, seed=0).designs
    assert np.all(in_bounds(ranked, bounds))
    assert ranked[:, 2].max() < np.quantile(free, 0.5)  # the lowest sixth of 6x preselection, then of 1.5x

    plain = MatDesINNe(bounds, FlowTraining(epochs=5, seed=0), ensemble_members=2, surrogate_epochs=20,
                       ranking_members=0).fit(x, y)
    assert plain.ranking is None and plain._spread() == plain.surrogate.spread
