"""Discrete-pool selection: finds known optima, respects constraints, target bands, pending points, no repeats."""

from __future__ import annotations

import pytest
import torch

from agent.selection import Pick, fit_feasibility, select_batch
from agent.selection.screening import posterior_moments
from agent.spec.objectives import Objective, OutcomeConstraint
from tests.selection.helpers import bumpy, fit_gp, grid_2d

MAX = [Objective(property="y", goal="maximize")]


def _loop(pool, f, objectives, q, rounds, seed=0, properties=("y",), constraints=None, acquisition="auto"):
    """Replay a campaign on an analytic pool; returns the observed row indices in order."""
    gen = torch.Generator().manual_seed(seed)
    observed = torch.randperm(len(pool), generator=gen)[:6].tolist()
    for _ in range(rounds):
        X = pool[observed]
        Y = f(X)
        model = fit_gp(X, Y)
        picks = select_batch(model, pool, objectives=objectives, constraints=constraints, properties=list(properties),
                             q=q, X_observed=X, Y_observed=Y, seed=seed, acquisition=acquisition)
        assert len(picks) == q
        new = [p.index for p in picks]
        assert not set(new) & set(observed), "picked an already measured row"
        assert len(set(new)) == q, "picked a row twice"
        observed += new
    return observed


def test_finds_the_global_maximum_of_a_bumpy_function():
    pool = grid_2d(21)
    best = int(torch.argmax(bumpy(pool)))
    observed = _loop(pool, lambda X: bumpy(X).unsqueeze(-1), MAX, q=3, rounds=6)
    assert best in observed  # found within 6 + 18 of 441 experiments


def test_minimize_finds_the_minimum():
    pool = grid_2d(21)
    best = int(torch.argmin(-bumpy(pool)))
    observed = _loop(pool, lambda X: -bumpy(X).unsqueeze(-1), [Objective(property="y", goal="minimize")], q=3, rounds=6)
    assert best in observed


@pytest.mark.parametrize("acquisition", ["qlognei", "ucb", "thompson"])
def test_other_acquisitions_find_the_maximum(acquisition):
    pool = grid_2d(15)
    best = int(torch.argmax(bumpy(pool)))
    observed = _loop(pool, lambda X: bumpy(X).unsqueeze(-1), MAX, q=3, rounds=7, acquisition=acquisition)
    assert best in observed


def test_auto_resolves_to_plugin_ei_for_one_objective_and_ehvi_for_several():
    from agent.selection.acquisition import resolve_acquisition
    from agent.selection.objectives import ObjectiveMap

    one = ObjectiveMap.build(MAX, None, ["y"])
    two = ObjectiveMap.build(MAX + [Objective(property="z", goal="minimize")], None, ["y", "z"])
    assert resolve_acquisition("auto", one) == "qlogei"
    assert resolve_acquisition("auto", two) == "qlognehvi"


def test_plugin_incumbent_is_the_best_posterior_mean_not_a_sample_maximum():
    """The plug-in incumbent never exceeds the best posterior mean at the measured points (NEI's does)."""
    from agent.selection.improvement import plugin_incumbent
    from agent.selection.objectives import ObjectiveMap

    pool = grid_2d(9)
    X = pool[::3]
    Y = (bumpy(X) + 0.05 * torch.randn(len(X), generator=torch.Generator().manual_seed(0))).unsqueeze(-1)
    model = fit_gp(X, Y)
    omap = ObjectiveMap.build(MAX, None, ["y"])
    with torch.no_grad():
        best_mean = float(model.posterior(X).mean.max())
    assert plugin_incumbent(model, omap, X) == pytest.approx(best_mean, rel=1e-6)


def test_outcome_constraint_steers_to_the_best_feasible_point():
    pool = grid_2d(21)

    def f(X):  # objective: bumpy; constraint property: x0 - 0.5 <= 0 forbids the global max at x0 = 0.7
        return torch.stack([bumpy(X), X[:, 0] - 0.5], dim=-1)

    constraints = [OutcomeConstraint.parse("c <= 0")]
    observed = _loop(pool, f, MAX, q=3, rounds=6, properties=("y", "c"), constraints=constraints)
    Y = f(pool)
    feasible = Y[:, 1] <= 0
    best_feasible = int(torch.argmax(torch.where(feasible, Y[:, 0], -torch.inf)))
    assert best_feasible in observed
    late = observed[-9:]
    assert feasible[late].double().mean() >= 0.6, "most late picks should be feasible"


def test_target_band_picks_land_in_the_band():
    pool = torch.linspace(0, 1, 501, dtype=torch.double).unsqueeze(-1)

    def f(X):
        return 3 * X**2  # in [1.4, 1.6] for x in about [0.683, 0.730]

    X = pool[::50]
    model = fit_gp(X, f(X))
    objective = [Objective(property="band_gap", goal="target", target=1.5, tolerance=0.1)]
    picks = select_batch(model, pool, objectives=objective, properties=["band_gap"], q=4, X_observed=X,
                         Y_observed=f(X))
    values = f(pool[[p.index for p in picks]]).squeeze(-1)
    assert (values - 1.5).abs().max() <= 0.1 + 1e-9, values
    assert picks[0].reason.startswith("band: exploit")


def test_pending_and_measured_rows_are_never_picked_and_pending_diversifies():
    pool = grid_2d(21)
    X = pool[torch.arange(0, 441, 23)]
    Y = bumpy(X).unsqueeze(-1)
    model = fit_gp(X, Y)
    first = select_batch(model, pool, objectives=MAX, properties=["y"], q=4, X_observed=X, Y_observed=Y)
    pending = pool[[p.index for p in first]]
    second = select_batch(model, pool, objectives=MAX, properties=["y"], q=4, X_observed=X, Y_observed=Y,
                          X_pending=pending)
    taken = {p.index for p in first} | set(torch.arange(0, 441, 23).tolist())
    assert not taken & {p.index for p in second}
    assert [p.rank for p in second] == [0, 1, 2, 3]


def test_duplicate_rows_and_measured_rows_are_not_picked():
    base = grid_2d(6)
    pool = torch.cat([base, base])  # every candidate twice
    X = base[::7]
    Y = bumpy(X).unsqueeze(-1)
    model = fit_gp(X, Y)
    picks = select_batch(model, pool, objectives=MAX, properties=["y"], q=31, X_observed=X, Y_observed=Y)
    rows = [tuple(pool[p.index].tolist()) for p in picks]
    assert len(rows) == len(set(rows))
    assert not set(rows) & {tuple(x) for x in X.tolist()}
    assert len(picks) == 30  # 36 distinct rows, 6 measured: the pool runs out


def test_several_objectives_use_hypervolume_and_spread_over_the_front():
    pool = torch.linspace(0, 1, 201, dtype=torch.double).unsqueeze(-1)

    def f(X):
        return torch.cat([X, 1 - X**2], dim=-1)  # every point is Pareto-optimal: a trade-off

    X = pool[::40]
    model = fit_gp(X, f(X))
    objectives = [Objective(property="a", goal="maximize"), Objective(property="b", goal="maximize", reference=0.0)]
    picks = select_batch(model, pool, objectives=objectives, properties=["a", "b"], q=3, X_observed=X,
                         Y_observed=f(X))
    assert len({p.index for p in picks}) == 3
    assert all(p.reason.startswith("qlognehvi") for p in picks)
    xs = sorted(float(pool[p.index]) for p in picks)
    assert xs[-1] - xs[0] > 0.1  # the batch covers different trade-offs, not one spot


def test_learnt_feasibility_avoids_where_experiments_fail():
    pool = torch.linspace(0, 1, 201, dtype=torch.double).unsqueeze(-1)
    X = pool[::10]
    fails = X[:, 0] > 0.6  # the objective grows to the right, but experiments there fail
    Y = X.clone()
    feasibility = fit_feasibility(X, ~fails)
    assert feasibility.probability(torch.tensor([[0.95]], dtype=torch.double)) < 0.3
    assert feasibility.probability(torch.tensor([[0.2]], dtype=torch.double)) > 0.7
    ok = ~fails
    model = fit_gp(X[ok], Y[ok])
    picks = select_batch(model, pool, objectives=MAX, properties=["y"], q=3, X_observed=X[ok], Y_observed=Y[ok],
                         X_pending=X[fails], feasibility_model=feasibility)
    assert all(float(pool[p.index]) < 0.7 for p in picks), [float(pool[p.index]) for p in picks]
    plain = select_batch(model, pool, objectives=MAX, properties=["y"], q=3, X_observed=X[ok], Y_observed=Y[ok],
                         X_pending=X[fails])
    assert max(float(pool[p.index]) for p in plain) > 0.7  # without it, selection does go there


def test_picks_carry_their_evidence():
    pool = grid_2d(11)
    X = pool[::9]
    Y = bumpy(X).unsqueeze(-1)
    model = fit_gp(X, Y)
    picks = select_batch(model, pool, objectives=MAX, properties=["y"], q=2, X_observed=X, Y_observed=Y)
    for p in picks:
        assert isinstance(p, Pick)
        assert p.features == pool[p.index].tolist()
        with torch.no_grad():
            post = model.posterior(pool[p.index : p.index + 1])
        assert p.mean["y"] == pytest.approx(float(post.mean), rel=1e-6)
        assert p.std["y"] == pytest.approx(float(post.variance.sqrt()), rel=1e-6)
        assert p.reason.split(": ")[1] in ("exploit", "explore")
        assert torch.isfinite(torch.tensor(p.acquisition_value))


def test_fast_moments_match_the_posterior():
    gen = torch.Generator().manual_seed(0)
    X = torch.rand(60, 3, generator=gen, dtype=torch.double)
    Y = torch.stack([X.sum(-1), torch.sin(4 * X[:, 0])], dim=-1)
    model = fit_gp(X, Y)
    P = torch.rand(300, 3, generator=gen, dtype=torch.double)
    mean, std = posterior_moments(model, P, chunk=128)
    with torch.no_grad():
        post = model.posterior(P)
    torch.testing.assert_close(mean, post.mean, atol=1e-8, rtol=1e-6)
    torch.testing.assert_close(std, post.variance.sqrt(), atol=1e-6, rtol=1e-4)


def test_bad_input_is_named():
    pool = grid_2d(5)
    X = pool[:4]
    Y = bumpy(X).unsqueeze(-1)
    model = fit_gp(X, Y)
    with pytest.raises(ValueError, match="properties"):
        select_batch(model, pool, objectives=[Objective(property="gap", goal="maximize")], properties=["y"], q=1,
                     X_observed=X, Y_observed=Y)
    with pytest.raises(ValueError, match="Y_observed"):
        select_batch(model, pool, objectives=MAX, properties=["y", "z"], q=1, X_observed=X, Y_observed=Y)
    with pytest.raises(ValueError, match="unknown acquisition"):
        select_batch(model, pool, objectives=MAX, properties=["y"], q=1, X_observed=X, Y_observed=Y,
                     acquisition="ei")


def test_fast_moments_of_a_model_list_match_the_posterior():
    from botorch.models import ModelListGP

    gen = torch.Generator().manual_seed(1)
    X = torch.rand(40, 2, generator=gen, dtype=torch.double)
    model = ModelListGP(fit_gp(X, X.sum(-1, keepdim=True)), fit_gp(X, torch.cos(3 * X[:, :1])))
    P = torch.rand(100, 2, generator=gen, dtype=torch.double)
    mean, std = posterior_moments(model, P)
    with torch.no_grad():
        post = model.posterior(P)
    torch.testing.assert_close(mean, post.mean, atol=1e-8, rtol=1e-6)
    torch.testing.assert_close(std, post.variance.sqrt(), atol=1e-6, rtol=1e-4)


def test_an_exploit_share_gives_its_picks_to_the_best_posterior_means_and_qlogei_the_rest():
    pool = grid_2d(15)
    gen = torch.Generator().manual_seed(3)
    observed = torch.randperm(len(pool), generator=gen)[:12].tolist()
    X, Y = pool[observed], bumpy(pool[observed]).unsqueeze(-1)
    model = fit_gp(X, Y)
    kwargs = dict(objectives=MAX, properties=["y"], q=8, X_observed=X, Y_observed=Y, seed=0)
    picks = select_batch(model, pool, **kwargs, exploit_share=0.25)
    mean, _ = posterior_moments(model, pool)
    ranked = [i for i in torch.argsort(mean[:, 0], descending=True).tolist() if i not in observed]
    assert [p.index for p in picks[:2]] == ranked[:2]
    assert all(p.reason.startswith("posterior mean: ") for p in picks[:2])
    assert all(p.reason.startswith("qlogei: ") for p in picks[2:4])  # auto: picks beyond four are Thompson's
    assert all(p.reason.startswith("thompson: ") for p in picks[4:])
    assert len({p.index for p in picks}) == 8 and not {p.index for p in picks} & set(observed)
    # qlogei asked for by name (no share) gives the whole batch to the acquisition
    assert all(p.reason.startswith("qlogei: ") for p in select_batch(model, pool, **kwargs, acquisition="qlogei"))
    with pytest.raises(ValueError, match="exploit_share"):
        select_batch(model, pool, **kwargs, exploit_share=1.0)


def test_greedy_share_skips_rows_that_break_an_outcome_constraint():
    pool = grid_2d(15)
    observed = torch.randperm(len(pool), generator=torch.Generator().manual_seed(1))[:20].tolist()
    X = pool[observed]
    Y = torch.stack([bumpy(X), X[:, 0]], -1)  # c = x0 must stay below 0.5
    model = fit_gp(X, Y)
    mean, _ = posterior_moments(model, pool)
    assert pool[int(torch.argmax(mean[:, 0])), 0] >= 0.5  # the unconstrained best mean breaks the constraint
    picks = select_batch(model, pool, objectives=MAX, constraints=[OutcomeConstraint.parse("c < 0.5")],
                         properties=["y", "c"], q=4, X_observed=X, Y_observed=Y, seed=0, exploit_share=0.25)
    assert picks[0].reason.startswith("posterior mean: ")
    assert picks[0].mean["c"] < 0.5


def test_auto_gives_a_large_batch_the_small_batch_and_thompson_samples_after_it():
    """``auto`` at q=8 is qLogEI's q=4 batch followed by four batch Thompson samples (``AUTO_GREEDY_PICKS``); at
    q<=4, above ``AUTO_THOMPSON_MAX_BATCH`` and with ``qlogei`` by name every pick is qLogEI's."""
    from agent.selection.discrete import AUTO_GREEDY_PICKS, AUTO_THOMPSON_MAX_BATCH

    pool = grid_2d(15)
    observed = torch.randperm(len(pool), generator=torch.Generator().manual_seed(5))[:10].tolist()
    X, Y = pool[observed], bumpy(pool[observed]).unsqueeze(-1)
    model = fit_gp(X, Y)
    kwargs = dict(objectives=MAX, properties=["y"], X_observed=X, Y_observed=Y, seed=2)
    small = select_batch(model, pool, q=AUTO_GREEDY_PICKS, **kwargs)
    large = select_batch(model, pool, q=8, **kwargs)
    named = select_batch(model, pool, q=8, acquisition="qlogei", **kwargs)
    assert [p.index for p in large[:AUTO_GREEDY_PICKS]] == [p.index for p in small]
    assert [p.index for p in named[:AUTO_GREEDY_PICKS]] == [p.index for p in small]
    assert all(p.reason.startswith("qlogei: ") for p in small + named)
    assert all(p.reason.startswith("thompson: ") for p in large[AUTO_GREEDY_PICKS:])
    indices = [p.index for p in large]
    assert len(set(indices)) == 8 and not set(indices) & set(observed)
    assert [p.rank for p in large] == list(range(8))
    larger = select_batch(model, pool, q=AUTO_THOMPSON_MAX_BATCH + 1, **kwargs)
    assert len(larger) == AUTO_THOMPSON_MAX_BATCH + 1 and all(p.reason.startswith("qlogei: ") for p in larger)
