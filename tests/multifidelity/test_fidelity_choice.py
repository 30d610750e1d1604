"""Cost-aware choice of fidelity on BoTorch's augmented Hartmann: a cheap fidelity is used when it is informative
and ignored when it is uncorrelated noise; a candidate measured cheaply is promoted, never re-measured cheaply."""

from __future__ import annotations

import pytest
import torch
from botorch.test_functions import AugmentedHartmann

from agent.selection.fidelity import select_with_fidelities
from agent.spec.objectives import Objective
from surrogates.multifidelity import FidelityData, fit_multifidelity

HARTMANN = AugmentedHartmann(negate=True)  # 6 design inputs and a fidelity s in [0, 1]; s = 1 is the truth


def hartmann(X: torch.Tensor, s: float) -> torch.Tensor:
    return HARTMANN(torch.cat([X, torch.full((len(X), 1), s, dtype=X.dtype)], -1))


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def choose(cheap_is_noise: bool) -> tuple[list, list[str]]:
    g = torch.Generator().manual_seed(0)
    X = torch.rand(30, 6, generator=g, dtype=torch.double)
    cheap = hartmann(X, 0.5)
    if cheap_is_noise:
        cheap = torch.randn(30, generator=g, dtype=torch.double) * float(cheap.std())
    Xt = X[:10]  # the first ten were measured at both fidelities (the initial design)
    data = [FidelityData("cheap", 0.1, X, cheap), FidelityData("truth", 1.0, Xt, hartmann(Xt, 1.0))]
    fitted = fit_multifidelity(data, 1, seed=0, cv_folds=0, property_name="y")
    pool = torch.cat([X[10:], torch.rand(200, 6, generator=g, dtype=torch.double)])  # 20 measured cheaply
    fingerprints = [f"p{i}" for i in range(len(pool))]
    jobs_at = {f"p{i}": {"cheap"} for i in range(20)}
    picks = select_with_fidelities(
        fitted, pool, fingerprints, jobs_at, objectives=[Objective(property="y", goal="maximize")],
        properties=["y"], q=6, X_observed=Xt, Y_observed=hartmann(Xt, 1.0).unsqueeze(-1), seed=0,
    )
    return picks, [fingerprints[p.index] for p in picks]


def test_an_informative_cheap_fidelity_is_used_and_cheap_results_are_promoted() -> None:
    picks, names = choose(cheap_is_noise=False)
    assert len(picks) == 6
    fresh = [p for p, name in zip(picks, names, strict=True) if int(name[1:]) >= 20]
    promoted = [p for p, name in zip(picks, names, strict=True) if int(name[1:]) < 20]
    assert fresh and all(p.fidelity == "cheap" for p in fresh), [p.reason for p in picks]
    assert all(p.fidelity == "truth" for p in promoted)  # never measured cheaply twice
    assert all("at cheap: removes" in p.reason for p in fresh)
    assert all("cheap:" in p.reason and "(already measured)" in p.reason for p in promoted)


def test_a_cheap_fidelity_that_is_noise_is_ignored() -> None:
    picks, _ = choose(cheap_is_noise=True)
    assert len(picks) == 6
    assert all(p.fidelity == "truth" for p in picks), [p.reason for p in picks]
    assert all("at truth (the target)" in p.reason for p in picks)


def test_the_initial_design_pairs_one_point_for_an_optimum_and_every_other_for_a_target_value() -> None:
    from agent.selection.fidelity import initial_design_fidelity, initial_target_results, one_anchor

    fids = ["cheap", "truth"]
    assert one_anchor([Objective(property="y", goal="maximize")])
    assert one_anchor([Objective(property="y", goal="minimize"), Objective(property="z", goal="maximize")])
    assert not one_anchor([Objective(property="y", goal="target", target=5.0, tolerance=0.1)])
    assert [initial_design_fidelity(r, 4, fids, True) for r in range(4)] == [None, "cheap", "cheap", "cheap"]
    assert [initial_design_fidelity(r, 4, fids, False) for r in range(4)] == [None, "cheap", None, "cheap"]
    assert [initial_design_fidelity(r, 2, fids, False) for r in range(2)] == [None, None]  # two paired
    for anchor in (True, False):
        for size in range(1, 9):  # the model waits for exactly the target results one initial batch yields
            paired = [initial_design_fidelity(r, size, ["a", "b", "c"], anchor) for r in range(size)].count(None)
            assert paired == initial_target_results(size, anchor) == (1 if anchor else max(min(size, 2),
                                                                                          (size + 1) // 2)), size


def test_the_model_starts_on_the_initial_designs_one_target_answer() -> None:
    """One paired point and three cheap screens (a batch of four) are enough to fit and choose the next batch;
    with no target answer at all the fit says so in one sentence."""
    g = torch.Generator().manual_seed(1)
    X = torch.rand(4, 6, generator=g, dtype=torch.double)
    Xt = X[:1]
    data = [FidelityData("cheap", 0.1, X, hartmann(X, 0.5)), FidelityData("truth", 1.0, Xt, hartmann(Xt, 1.0))]
    fitted = fit_multifidelity(data, 1, seed=0, cv_folds=5, property_name="y")
    assert fitted.n_train == 5 and fitted.metrics["0"]["n"] == 1
    pool = torch.rand(50, 6, generator=g, dtype=torch.double)
    picks = select_with_fidelities(
        fitted, pool, [f"p{i}" for i in range(50)], {}, objectives=[Objective(property="y", goal="maximize")],
        properties=["y"], q=4, X_observed=Xt, Y_observed=hartmann(Xt, 1.0).unsqueeze(-1), seed=0,
    )
    assert len(picks) == 4 and len({p.index for p in picks}) == 4
    assert all(p.fidelity in ("cheap", "truth") and f"at {p.fidelity}" in p.reason for p in picks)
    with pytest.raises(ValueError, match="'truth' has no results yet; need 1"):
        fit_multifidelity([data[0], FidelityData("truth", 1.0, X[:0], X[:0, 0])], 1, seed=0, cv_folds=0)
