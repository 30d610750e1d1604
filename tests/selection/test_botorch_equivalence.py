"""The sample-table acquisitions (``agent/selection/exact.py``, ``improvement.py``) are BoTorch's, pinned.

Two kinds of check:

* **On the same samples.** A joint Sobol QMC sample table of a fitted GP (``joint_samples``: one
  ``SobolQMCNormalSampler`` over every row) is served to BoTorch's own acquisitions through a model whose
  "posterior" at a row is that row's column of the table (the input is the row's index). BoTorch then runs its
  own objective, constraint weighting, log-improvement, q-batch reduction, incumbent and pending-point code on
  exactly the samples our greedy reduces, so the values must agree to float rounding: qLogEI (``fat=False``),
  qLogNEI (``prune_baseline=False``), qUCB and the band probability (qSimpleRegret) at q=1, and
  ``optimize_acqf_discrete`` at q=8 over 200 rows must return our batch with our values.
* **End to end.** ``select_batch`` on a fitted GP against BoTorch's acquisitions with their own QMC samplers on
  the same GP: the q=1 values agree within the Monte Carlo error of 512 samples, and our q=8 batch is worth at
  least what ``optimize_acqf_discrete``'s batch is worth, by BoTorch's joint batch value on 4096 fresh samples.
"""

from __future__ import annotations

import pytest
import torch
from botorch.acquisition import qSimpleRegret, qUpperConfidenceBound
from botorch.acquisition.logei import qLogExpectedImprovement, qLogNoisyExpectedImprovement
from botorch.acquisition.objective import ConstrainedMCObjective
from botorch.models.model import Model
from botorch.optim import optimize_acqf_discrete
from botorch.posteriors import Posterior
from botorch.sampling import SobolQMCNormalSampler, StochasticSampler

from agent.selection.acquisition import UCB_BETA
from agent.selection.discrete import select_batch
from agent.selection.exact import band_table, greedy_from_table, joint_samples, nei_table, ucb_table
from agent.selection.improvement import ei_table, plugin_incumbent
from agent.selection.objectives import ObjectiveMap
from agent.spec.objectives import Objective, OutcomeConstraint
from tests.selection.helpers import fit_gp

S = 512  # QMC samples, as select_batch draws
#: BoTorch's default ``eta`` (1e-3) given as a double: passed as a float, BoTorch stores it in float32, which moves
#: the smoothed feasibility by ~5e-8 relative; the sharpness itself is the same.
ETA = torch.tensor([1e-3], dtype=torch.double)


class TablePosterior(Posterior):
    """The posterior at the rows ``idx`` (``batch x q``): their columns of a fixed sample table ``Z`` (S x N x m)."""

    def __init__(self, Z: torch.Tensor, idx: torch.Tensor) -> None:
        self.Z, self.idx = Z, idx

    def rsample(self, sample_shape: torch.Size | None = None) -> torch.Tensor:
        assert sample_shape is None or tuple(sample_shape) == (self.Z.shape[0],)
        return self.Z[:, self.idx]  # S x batch x q x m

    @property
    def mean(self) -> torch.Tensor:
        return self.Z.mean(dim=0)[self.idx]

    @property
    def variance(self) -> torch.Tensor:
        return self.Z.var(dim=0)[self.idx]

    @property
    def device(self) -> torch.device:
        return self.Z.device

    @property
    def dtype(self) -> torch.dtype:
        return self.Z.dtype

    def _extended_shape(self, sample_shape: torch.Size = torch.Size()) -> torch.Size:  # noqa: B008
        return sample_shape + self.idx.shape + self.Z.shape[-1:]


class TableModel(Model):
    """A model whose input is a row index and whose posterior samples are that row's column of ``Z``."""

    def __init__(self, Z: torch.Tensor) -> None:
        super().__init__()
        self.Z = Z

    @property
    def num_outputs(self) -> int:
        return self.Z.shape[-1]

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size()

    def posterior(self, X, output_indices=None, observation_noise=False, posterior_transform=None, **kwargs):
        return TablePosterior(self.Z, X[..., 0].round().long())


def rows(idx) -> torch.Tensor:
    """Row indices as the table model's inputs (``n x 1``)."""
    return torch.as_tensor(list(idx), dtype=torch.double).unsqueeze(-1)


def _problem(constrained: bool, seed: int = 0):
    """A fitted GP (objective ``y``, and a constraint property ``c`` when constrained), 200 pool rows, 24 observed."""
    gen = torch.Generator().manual_seed(seed)
    X_obs = torch.rand(24, 3, generator=gen, dtype=torch.double)
    pool = torch.rand(200, 3, generator=gen, dtype=torch.double)

    def f(X):
        return torch.sin(5 * X[:, 0]) * torch.cos(3 * X[:, 1]) + 0.5 * X[:, 2]

    Y = f(X_obs).unsqueeze(-1)
    objectives = [Objective(property="y", goal="maximize")]
    if not constrained:
        return fit_gp(X_obs, Y), pool, X_obs, Y, objectives, [], ["y"]
    Y = torch.cat([Y, (X_obs[:, :1] + X_obs[:, 1:2])], dim=-1)
    from botorch.models import ModelListGP

    model = ModelListGP(fit_gp(X_obs, Y[:, :1]), fit_gp(X_obs, Y[:, 1:]))
    return model, pool, X_obs, Y, objectives, [OutcomeConstraint(property="c", op="<", bound=1.2)], ["y", "c"]


def _table(omap, model, pool, X_obs, n_pending: int, seed: int = 7):
    """The joint table over pool rows, then ``n_pending`` pending rows, then the observed rows (the incumbents)."""
    X_pending = pool[-n_pending:] if n_pending else pool[:0]
    X_cand = pool[: len(pool) - n_pending]
    Z = joint_samples(model, torch.cat([X_cand, X_pending, X_obs]), S, seed)
    n_c, n_p = len(X_cand), len(X_pending)
    return Z, n_c, n_p, slice(n_c, n_c + n_p) if n_p else None, slice(n_c + n_p, n_c + n_p + len(X_obs))


def _botorch(name: str, omap: ObjectiveMap, Z, pending_cols, incumbent_cols, best=None, cost=0.0):
    model = TableModel(Z)
    sampler = StochasticSampler(sample_shape=torch.Size([S]))
    X_pending = rows(pending_cols) if len(pending_cols) else None
    constraints = omap.constraint_callables() or None
    if name == "qlogei":
        return qLogExpectedImprovement(model, best_f=torch.tensor(best, dtype=torch.double), sampler=sampler, objective=omap.scalar_objective(),
                                       constraints=constraints, X_pending=X_pending, fat=False, eta=ETA)
    if name == "qlognei":
        return qLogNoisyExpectedImprovement(model, X_baseline=rows(incumbent_cols), sampler=sampler,
                                            objective=omap.scalar_objective(), constraints=constraints,
                                            X_pending=X_pending, prune_baseline=False, cache_root=False, fat=False, eta=ETA)
    objective = omap.scalar_objective()
    if omap.constraints:
        objective = ConstrainedMCObjective(objective=lambda Z, X=None: omap.scalar_objective()(Z, X),
                                           constraints=omap.constraint_callables(), infeasible_cost=cost, eta=ETA)
    if name == "ucb":
        return qUpperConfidenceBound(model, beta=UCB_BETA, sampler=sampler, objective=objective, X_pending=X_pending)
    return qSimpleRegret(model, sampler=sampler, objective=objective, X_pending=X_pending)


def _ours(name: str, omap: ObjectiveMap, model, X_obs, Z, incumbents, cost=0.0):
    if name == "qlogei":
        best = plugin_incumbent(model, omap, X_obs)
        return ei_table(omap, Z, best), best
    if name == "qlognei":
        return nei_table(omap, Z, incumbents), None
    if name == "ucb":
        return ucb_table(omap, Z, UCB_BETA, infeasible_cost=cost), None
    return band_table(omap, Z), None


CASES = [("qlogei", False), ("qlognei", False), ("ucb", False), ("qlogei", True), ("qlognei", True), ("ucb", True),
         ("band", True)]


def _objectives(name, objectives, constrained):
    if name == "band":
        return [Objective(property="y", goal="target", target=0.6, tolerance=0.1)]
    return objectives


@pytest.mark.parametrize(("name", "constrained"), CASES)
@pytest.mark.parametrize("n_pending", [0, 3])
def test_q1_values_equal_botorch_on_the_same_samples(name, constrained, n_pending):
    model, pool, X_obs, _, objectives, constraints, props = _problem(constrained)
    omap = ObjectiveMap.build(_objectives(name, objectives, constrained), constraints, props)
    Z, n_c, n_p, pending, incumbents = _table(omap, model, pool, X_obs, n_pending)
    cost = 2.5 if constrained and name == "ucb" else 0.0  # the band probability is never negative: no cost
    table, best = _ours(name, omap, model, X_obs, Z, incumbents, cost)
    _, ours = greedy_from_table(table, n_c, 1, pending)  # one pick: its value
    pending_cols = range(n_c, n_c + n_p)
    incumbent_cols = range(incumbents.start, incumbents.stop)
    acq = _botorch(name, omap, Z, pending_cols, incumbent_cols, best, cost)
    with torch.no_grad():
        theirs = acq(rows(range(n_c)).unsqueeze(-2))
    # every candidate's value, not only the winner's: the whole q=1 acquisition surface is BoTorch's
    full = _all_values(table, n_c, pending)
    torch.testing.assert_close(full, theirs, atol=1e-9, rtol=1e-9)
    assert ours[0] == pytest.approx(float(theirs.max()), abs=1e-9)


def _all_values(table, n_c, pending):
    """Every candidate's q=1 value, as the greedy's first step computes it."""
    if table.rescore is not None:
        cols = [] if pending is None else list(range(pending.start, pending.stop))
        return table.reduce(table.rescore(cols, n_c))
    current = torch.full((table.h.shape[0], 1), -float("inf"), dtype=table.h.dtype)
    if pending is not None:
        for c in range(pending.start, pending.stop):
            current = table.batch_max(current, table.h[:, c : c + 1])
    return table.reduce(table.batch_max(table.h[:, :n_c], current))


@pytest.mark.parametrize(("name", "constrained"), CASES)
def test_q8_batch_equals_optimize_acqf_discrete_on_the_same_samples(name, constrained):
    model, pool, X_obs, _, objectives, constraints, props = _problem(constrained, seed=1)
    omap = ObjectiveMap.build(_objectives(name, objectives, constrained), constraints, props)
    Z, n_c, n_p, pending, incumbents = _table(omap, model, pool, X_obs, 2)
    cost = 2.5 if constrained and name == "ucb" else 0.0
    table, best = _ours(name, omap, model, X_obs, Z, incumbents, cost)
    order, values = greedy_from_table(table, n_c, 8, pending)
    acq = _botorch(name, omap, Z, range(n_c, n_c + n_p), range(incumbents.start, incumbents.stop), best, cost)
    base_pending = acq.X_pending
    with torch.no_grad():
        picks, acq_values = optimize_acqf_discrete(acq, q=8, choices=rows(range(n_c)), unique=True)
        torch.testing.assert_close(torch.tensor(values, dtype=torch.double), acq_values.reshape(-1),
                                   atol=1e-9, rtol=1e-9)
        # each of our picks is an argmax of BoTorch's acquisition given the earlier picks as pending points; where
        # several candidates tie (to rounding) the two greedies may take different ones, so picks are compared
        # through BoTorch's values rather than by index
        for k, j in enumerate(order):
            acq.set_X_pending(torch.cat([p for p in (base_pending, rows(order[:k])) if p is not None]))
            every = acq(rows(range(n_c)).unsqueeze(-2)).index_fill(0, torch.tensor(order[:k], dtype=torch.long),
                                                                   -float("inf"))
            assert float(every[j]) == pytest.approx(values[k], abs=1e-9)
            assert float(every[j]) >= float(every.max()) - 1e-9
    untied = next((k for k, v in enumerate(values[1:], 1) if abs(v - values[k - 1]) < 1e-12), len(order))
    assert picks[:untied, 0].round().long().tolist() == order[:untied]


def _native(name, model, omap, X_obs, seed, n):
    sampler = SobolQMCNormalSampler(sample_shape=torch.Size([n]), seed=seed)
    if name == "qlogei":
        return qLogExpectedImprovement(model, best_f=plugin_incumbent(model, omap, X_obs), sampler=sampler,
                                       objective=omap.scalar_objective(), fat=False)
    if name == "qlognei":
        return qLogNoisyExpectedImprovement(model, X_baseline=X_obs, sampler=sampler,
                                            objective=omap.scalar_objective(), prune_baseline=False, fat=False)
    return qUpperConfidenceBound(model, beta=UCB_BETA, sampler=sampler, objective=omap.scalar_objective())


@pytest.mark.parametrize("name", ["qlogei", "qlognei", "ucb"])
def test_select_batch_agrees_with_botorch_end_to_end(name):
    model, pool, X_obs, Y, objectives, _, props = _problem(False, seed=2)
    omap = ObjectiveMap.build(objectives, [], props)
    one = select_batch(model, pool, objectives=objectives, properties=props, q=1, X_observed=X_obs, Y_observed=Y,
                       acquisition=name, seed=3)
    acq = _native(name, model, omap, X_obs, seed=3, n=S)
    with torch.no_grad():
        theirs = acq(pool.unsqueeze(-2))
    # q=1: our value of our pick is BoTorch's value there, within the Monte Carlo error of 512 samples ...
    assert one[0].acquisition_value == pytest.approx(float(theirs[one[0].index]), abs=0.05, rel=0.02)
    # ... and BoTorch rates our pick within that error of its own best
    assert float(theirs[one[0].index]) >= float(theirs.max()) - 0.05 * max(1.0, abs(float(theirs.max())))

    batch = select_batch(model, pool, objectives=objectives, properties=props, q=8, X_observed=X_obs, Y_observed=Y,
                         acquisition=name, seed=3)
    with torch.no_grad():
        picks, _ = optimize_acqf_discrete(_native(name, model, omap, X_obs, seed=3, n=S), q=8, choices=pool)
        judge = _native(name, model, omap, X_obs, seed=11, n=4096)  # fresh samples, the whole batch jointly
        ours_value = float(judge(pool[[p.index for p in batch]].unsqueeze(0)))
        theirs_value = float(judge(picks.unsqueeze(0)))
    assert len({p.index for p in batch}) == 8
    assert ours_value >= theirs_value - 0.02 * max(1.0, abs(theirs_value))
