"""Deep ensembles (Lakshminarayanan et al. 2017) for one property, as a BoTorch ``Model``.

Each member is a small MLP that predicts a mean and a variance and is trained with
the Gaussian negative log-likelihood (optionally beta-NLL, Seitzer et al. 2022) from
its own random initialisation and its own minibatch order, after a short mean-only
warm-up. The ensemble's predictive distribution is the moment-matched
Gaussian of the uniform mixture:

    mean = avg_i mu_i,   total var = avg_i (sigma_i² + mu_i²) - mean²

``posterior(X)`` returns a ``GPyTorchPosterior`` over a ``MultivariateNormal`` with a
diagonal covariance, so BoTorch's Monte-Carlo acquisitions (qLogNEI, qLogEHVI, ...)
draw samples from it and differentiate through the members. Without
``observation_noise`` the variance is the members' disagreement only (epistemic,
the latent function's uncertainty); with it, the members' predicted noise is added.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from botorch.models.model import Model
from botorch.posteriors import GPyTorchPosterior
from gpytorch.distributions import MultivariateNormal
from linear_operator.operators import DiagLinearOperator
from torch import Tensor, nn

from surrogates.config import ENSEMBLE_DEFAULTS
from surrogates.threads import one_thread

#: Measured on the three benchmark data sets (~480 training rows each, 5-fold CV, two seeds):
#: the former 5 members x 64 wide x 1,000 steps overfitted, collapsing the members' noise
#: estimates (raw held-out NLL +0.8 on OER, +8.7 on perovskites, 95% coverage 0.46-0.60
#: before recalibration). 300 steps (80 epochs), 32 wide, 10 members gave the best
#: recalibrated NLL on perovskites and OER (0.46 / -2.48 vs 0.59 / -2.44) at equal or better
#: RMSE, kept MoS2 (-1.10 / -1.16 vs -1.02) and costs less. Longer training, weight decay
#: 1e-2/1e-1, a longer mean-only warm-up and beta-NLL (beta = 0.5) were each no better on at
#: least two of the three. What matters is epochs, not steps: with 3,000 training rows 300
#: steps underfit (held-out NLL -1.42 / 0.30 / -2.53 on MoS2 / perovskites / OER against
#: -2.48 / -0.04 / -2.71 with 2,000 steps, ~85 epochs), so ``steps=None`` trains for
#: ``epochs`` passes over the data, within ``STEPS_RANGE``.
DEFAULTS = ENSEMBLE_DEFAULTS  # the settings and their defaults live with the campaign-file check

STEPS_RANGE = (300, 4000)  # below: too few updates on small data; above: cost grows with n for little gain
MIN_VAR = 1e-6  # in standardised units: a floor that keeps the NLL finite
#: A warm-started ensemble (``fit(..., start=...)``: the previous fit's members, a few more results) trains for
#: this share of a fresh fit's steps, without the mean-only warm-up and at the learning rates of the fresh
#: schedule's last steps: the members already fit all but the newest results, and each keeps its own weights and
#: minibatch stream. At the full rate (the first try) 60 steps moved them far enough on 20 results that they
#: disagreed 2-5x more than fresh members (the recalibration, fitted on fresh ones, then over-explores); on the
#: schedule's tail they disagree 0.93x / 0.98x as much on 20 / 100 results of OER plate 3496 (RESULTS-ask-speed).
WARM_FRACTION = 0.2


class BatchedMeanVarianceMLP(nn.Module):
    """``M`` independent MLPs evaluated in one batched matmul per layer (members share nothing but the call).

    Each gives a mean and a softplus-positive variance, in standardised units.
    Batching the members makes training ~M times cheaper in Python overhead than a loop.
    """

    def __init__(self, members: int, d: int, hidden: int, layers: int) -> None:
        super().__init__()
        widths = [d] + [hidden] * layers + [2]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(members, a, b, dtype=torch.double)) for a, b in zip(widths, widths[1:], strict=False)
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.empty(members, 1, b, dtype=torch.double)) for b in widths[1:]
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` is ``(M, N, d)`` (or ``(N, d)``, shared by all members); returns two ``(M, N)`` tensors."""
        h = x if x.dim() == 3 else x.unsqueeze(0).expand(len(self.weights[0]), *x.shape)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = nn.functional.silu(h)
        return h[..., 0], nn.functional.softplus(h[..., 1]) + MIN_VAR


def training_steps(n: int, batch: int, settings: dict[str, Any]) -> int:
    """Optimiser steps for ``n`` training rows: ``settings["steps"]`` if set, else ``epochs`` passes, clamped."""
    if settings.get("steps") is not None:
        return int(settings["steps"])
    steps = math.ceil(float(settings["epochs"]) * n / max(batch, 1))
    return int(min(max(steps, STEPS_RANGE[0]), STEPS_RANGE[1]))


class DeepEnsemble(Model):
    """A fitted ensemble of mean-variance MLPs for one output (``num_outputs == 1``)."""

    def __init__(self, d: int, settings: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.settings = {**DEFAULTS, **(settings or {})}
        s = self.settings
        self.members = BatchedMeanVarianceMLP(int(s["n_members"]), d, int(s["hidden"]), int(s["layers"]))
        self.register_buffer("x_shift", torch.zeros(d, dtype=torch.double))
        self.register_buffer("x_scale", torch.ones(d, dtype=torch.double))
        self.register_buffer("y_shift", torch.zeros((), dtype=torch.double))
        self.register_buffer("y_scale", torch.ones((), dtype=torch.double))
        self.double()

    @property
    def num_outputs(self) -> int:
        return 1

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size()

    def fit(self, X: Tensor, y: Tensor, seed: int, start: dict[str, Tensor] | None = None) -> DeepEnsemble:
        """Train every member from its own seed; ``y`` is ``(n,)`` or ``(n, 1)``.

        ``start`` (a ``state_dict`` of an ensemble with the same settings and features, e.g. the previous fit's)
        warm-starts the members from its weights and keeps its standardisation, so those weights mean what they
        meant; they are then trained for the last :data:`WARM_FRACTION` of a fresh fit's steps (the tail of its
        learning-rate schedule).

        Members share nothing but the data, so they are trained in chunks (:func:`member_chunk`) on the run's
        executor (:mod:`matloop.compute`: in this process, or fanned out on Dask) and stitched back in order; each
        member's initialisation and minibatch order come from its own seed (:func:`member_seed`), so the result
        is the same wherever, and in whichever chunks, the members were trained.
        """
        from matloop.compute import map_chunked

        y = y.reshape(-1)
        init = None
        if start is not None:
            with torch.no_grad():
                for name in ("x_shift", "x_scale", "y_shift", "y_scale"):
                    getattr(self, name).copy_(start[name])
            layers = len(self.members.weights)
            init = ([start[f"members.weights.{i}"] for i in range(layers)],
                    [start[f"members.biases.{i}"] for i in range(layers)])
        else:
            self.standardize_on(X, y)
        xs = (X - self.x_shift) / self.x_scale
        ys = (y - self.y_shift) / self.y_scale
        members = int(self.settings["n_members"])
        trained = map_chunked(functools.partial(train_members, xs, ys, dict(self.settings), seed, init=init),
                              list(range(members)), member_chunk(members), name="ensemble-members")
        return self.load_members(trained)

    def standardize_on(self, X: Tensor, y: Tensor) -> None:
        """Set the input and target standardisation from fresh training data (``y``: ``(n,)``)."""
        self.x_shift = X.mean(dim=0)
        # a feature constant in the training rows (a category not yet measured) keeps its unit: dividing by its
        # zero spread would hand the members inputs of 1e8 at any row where it differs, and they answer nonsense
        std = X.std(dim=0, unbiased=False)
        self.x_scale = torch.where(std > 1e-8, std, torch.ones_like(std))
        self.y_shift = y.mean()
        self.y_scale = y.std(unbiased=False).clamp_min(1e-12)

    def load_members(self, trained: list[tuple[list[Tensor], list[Tensor]]]) -> DeepEnsemble:
        """Take every member's trained weights and biases (layer by layer, in member order)."""
        with torch.no_grad():
            for layer, (w, b) in enumerate(zip(self.members.weights, self.members.biases, strict=True)):
                w.copy_(torch.stack([member[0][layer] for member in trained]))
                b.copy_(torch.stack([member[1][layer] for member in trained]))
        self.eval()
        return self

    def member_predictions(self, X: Tensor) -> tuple[Tensor, Tensor]:
        """Means and variances of every member, in the data's units: ``(members, *X.shape[:-1])``."""
        xs = ((X - self.x_shift) / self.x_scale).reshape(-1, X.shape[-1])
        mu, var = self.members(xs)
        shape = (mu.shape[0], *X.shape[:-1])
        return (mu * self.y_scale + self.y_shift).reshape(shape), (var * self.y_scale**2).reshape(shape)

    def spread(self, X: Tensor) -> float:
        """The members' disagreement at ``X``: mean std of their means, in units of the data's std.

        What fine-tuning from the previous members could shrink (members that agree more are over-confident
        under a recalibration fitted on freshly trained ones), so a warm start is checked against it.
        """
        with torch.no_grad():
            mu, _ = self.member_predictions(X.to(torch.double))
            return float(mu.std(dim=0, unbiased=False).mean() / self.y_scale)

    def _moments(self, X: Tensor, observation_noise: bool | Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance over the members (epistemic; plus their mean noise for a new measurement)."""
        mu, var = self.member_predictions(X.to(torch.double))
        mean = mu.mean(dim=0)
        epistemic = mu.var(dim=0, unbiased=False)
        variance = epistemic + 1e-10 * self.y_scale**2
        if isinstance(observation_noise, Tensor):
            variance = variance + observation_noise.reshape(variance.shape)
        elif observation_noise:
            variance = variance + var.mean(dim=0)
        return mean, variance

    def marginal_moments(self, X: Tensor, observation_noise: bool = False, chunk: int = 2048) -> tuple[Tensor, Tensor]:
        """The posterior's mean and variance (``n x 1``) at the rows of ``X``, in chunks, without gradients."""
        means, variances = [], []
        with torch.no_grad():
            for start in range(0, len(X), chunk):
                mean, variance = self._moments(X[start : start + chunk], observation_noise)
                means.append(mean)
                variances.append(variance)
        return torch.cat(means).unsqueeze(-1), torch.cat(variances).unsqueeze(-1)

    def posterior(
        self,
        X: Tensor,
        output_indices: list[int] | None = None,
        observation_noise: bool | Tensor = False,
        posterior_transform: Any = None,
        **kwargs: Any,
    ) -> GPyTorchPosterior:
        if output_indices not in (None, [0]):
            raise ValueError(f"a single-output ensemble has no outputs {output_indices}")
        mean, variance = self._moments(X, observation_noise)
        posterior = GPyTorchPosterior(MultivariateNormal(mean, DiagLinearOperator(variance)))
        return posterior_transform(posterior) if posterior_transform is not None else posterior


#: Members trained together in one batched module (one chunk of the fan-out): the default ensemble (10) is two.
MEMBER_CHUNK = 5


def member_chunk(members: int) -> int:
    """Members per chunk: :data:`MEMBER_CHUNK` when chunks run on a cluster, all of them in this process.

    In one process the chunks would run one after the other, and a step costs about the same for 5 members as
    for 10 (it is Python and kernel-launch overhead at these sizes), so one batched module halves the time;
    the members are the same either way (their own seeds, batched matmuls that do not mix them).
    """
    from matloop.compute import IN_PROCESS, current_fan_out

    return max(members, 1) if current_fan_out() is IN_PROCESS else MEMBER_CHUNK


def member_seed(seed: int, member: int) -> int:
    """Member ``member``'s own seed: its stream depends on nothing but the fit's seed and its index."""
    return (seed * 1_000_003 + member * 7_919 + 17) % (2**63 - 1)


def train_members(
    xs: Tensor, ys: Tensor, settings: dict[str, Any], seed: int, indices: list[int],
    init: tuple[list[Tensor], list[Tensor]] | None = None,
) -> list[tuple[list[Tensor], list[Tensor]]]:
    """Train the members ``indices`` on standardised data; each member's weights and biases, layer by layer.

    ``init`` (every member's weights and biases, layer by layer, ``(members, ...)``) warm-starts them: they
    start from those and train for the last :data:`WARM_FRACTION` of the steps, with no mean-only warm-up.
    A module-level function of plain tensors and settings, so a Dask worker can run a chunk of members.
    """
    return train_member_groups([(xs, ys, seed)], settings, indices, init=init)[0]


def train_member_groups(
    groups: list[tuple[Tensor, Tensor, int]], settings: dict[str, Any], indices: list[int],
    init: tuple[list[Tensor], list[Tensor]] | None = None,
) -> list[list[tuple[list[Tensor], list[Tensor]]]]:
    """:func:`train_members` for several ensembles at once, each on its own data: ``groups`` of standardised
    ``(xs, ys, seed)`` (e.g. the training rows of each cross-validation fold), all members in one batched module.

    Every member of every group gets exactly what :func:`train_members` would give it alone (its own seed's
    initialisation and minibatches, from its own group's rows; the members share no arithmetic), so the groups
    must have the same number of steps and minibatch size. One module of 5 x 10
    members costs about what one of 10 does per step at these sizes (Python and kernel-launch overhead), which is
    what makes the ensemble's cross-validation cheaper than training fold after fold.
    """
    s = settings
    d = groups[0][0].shape[-1]
    n_max = max(int(xs.shape[0]) for xs, _, _ in groups)
    batch, steps = _schedule(int(groups[0][0].shape[0]), s)
    if any(_schedule(int(xs.shape[0]), s) != (batch, steps) for xs, _, _ in groups):
        raise ValueError("train_member_groups needs groups with the same steps and minibatch size")
    warmup = int(float(s["warmup_fraction"]) * steps)
    fresh_steps = steps
    if init is not None:
        steps, warmup = max(math.ceil(WARM_FRACTION * steps), 1), 0
    beta = float(s["nll_beta"])
    slots = [(g, member) for g in range(len(groups)) for member in indices]
    net = BatchedMeanVarianceMLP(len(slots), d, int(s["hidden"]), int(s["layers"]))
    draws = []
    with torch.no_grad():
        for k, (g, member) in enumerate(slots):
            xs, _, seed = groups[g]
            gen = torch.Generator().manual_seed(member_seed(seed, member))
            for layer, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
                if init is not None:
                    w[k].copy_(init[0][layer][member])
                    b[k].copy_(init[1][layer][member])
                    continue
                # nn.Linear's default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), from the member's stream
                bound = 1.0 / w.shape[1] ** 0.5
                w[k].copy_(torch.rand(w.shape[1:], generator=gen, dtype=w.dtype) * 2 * bound - bound)
                b[k].copy_(torch.rand(b.shape[1:], generator=gen, dtype=b.dtype) * 2 * bound - bound)
            # every member draws its own minibatches: different data order is part of the diversity
            draws.append(torch.randint(int(xs.shape[0]), (steps, batch), generator=gen))
    order = torch.stack(draws, dim=1)  # steps x slots x batch
    # each group's rows, padded to the longest (a member's draws never reach past its own group's rows)
    xs_all = torch.zeros(len(groups), n_max, d, dtype=torch.double)
    ys_all = torch.zeros(len(groups), n_max, dtype=torch.double)
    for g, (xs, ys, _) in enumerate(groups):
        xs_all[g, : xs.shape[0]] = xs
        ys_all[g, : ys.shape[0]] = ys
    group_of = torch.tensor([g for g, _ in slots]).unsqueeze(-1)  # slots x 1
    # foreach: one C++ loop over the six tensors per step instead of a Python one; the same arithmetic, bit for bit
    opt = torch.optim.AdamW(net.parameters(), lr=float(s["lr"]), weight_decay=float(s["weight_decay"]), foreach=True)
    if init is None:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    else:
        # the fresh fit's cosine schedule, its last ``steps`` of ``fresh_steps``: the small steps that settle members
        # near their optimum, so they take in the new rows without wandering from what the recalibration saw
        tail = fresh_steps - steps
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(tail + k, fresh_steps) / fresh_steps)))
    net.train()
    with one_thread():
        _train(net, opt, sched, xs_all, ys_all, group_of, order, steps, warmup, beta)
    trained = [([w[k].detach().clone() for w in net.weights], [b[k].detach().clone() for b in net.biases])
               for k in range(len(slots))]
    return [trained[g * len(indices) : (g + 1) * len(indices)] for g in range(len(groups))]


def _schedule(n: int, settings: dict[str, Any]) -> tuple[int, int]:
    """Minibatch size and (fresh) steps for ``n`` training rows."""
    batch = min(int(settings["batch_size"]), n)
    return batch, training_steps(n, batch, settings)


def _train(net: BatchedMeanVarianceMLP, opt: Any, sched: Any, xs: Tensor, ys: Tensor, group_of: Tensor,
           order: Tensor, steps: int, warmup: int, beta: float) -> None:
    """The optimiser loop of :func:`train_member_groups` (members batched: every tensor has them as its first axis;
    member ``k`` reads the rows ``xs[group_of[k]]``)."""
    for step in range(steps):
        idx = order[step]
        mu, var = net(xs[group_of, idx])
        target = ys[group_of, idx]
        # A short mean-only warm-up first: fitting the mean before the variance
        # avoids the NLL's known trap of explaining everything as noise.
        if step < warmup:
            loss = ((mu - target) ** 2).mean(dim=1).sum()
        else:
            nll = 0.5 * (torch.log(var) + (target - mu) ** 2 / var)
            if beta > 0:
                # beta-NLL (Seitzer et al. 2022): weight each point's NLL by var^beta (no gradient
                # through the weight), so high-noise points do not stop the mean from being learned.
                nll = nll * var.detach() ** beta
            loss = nll.mean(dim=1).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def fit_ensemble(X: Tensor, y: Tensor, yvar: Tensor | None, seed: int, settings: dict[str, Any]) -> tuple[Model, dict]:
    """Fit an ensemble to one output column (measured ``yvar`` is not used: members learn the noise)."""
    ens_settings = {k: v for k, v in settings.get("ensemble", {}).items()}
    model = DeepEnsemble(X.shape[-1], ens_settings).fit(X, y, seed)
    return model, {"settings": model.settings}


def fit_ensemble_folds(
    X: Tensor, y: Tensor, trains: list[Tensor], seeds: list[int], settings: dict[str, Any]
) -> list[DeepEnsemble]:
    """One ensemble per fold, on the rows ``trains[i]`` from seed ``seeds[i]``: what ``fit_ensemble`` gives each
    fold. In this process, the members of all folds that share a schedule (steps and minibatch size: on fewer
    than ``batch_size`` rows the minibatch is every row, so folds of 12 and 13 rows make two groups) are trained
    as one batched module; on a cluster, every fold's chunks of members at once (:func:`_fit_folds_fanned_out`).
    Each fold's members see only their fold's rows: the cross-validation stays held-out."""
    from matloop.compute import IN_PROCESS, current_fan_out

    ens_settings = dict(settings.get("ensemble", {}))
    y = y.reshape(-1)
    models = [DeepEnsemble(X.shape[-1], ens_settings) for _ in trains]
    s = models[0].settings
    data = []  # each fold's standardised rows and seed, as DeepEnsemble.fit would train them
    for m, t, seed in zip(models, trains, seeds, strict=True):
        m.standardize_on(X[t], y[t])
        data.append(((X[t] - m.x_shift) / m.x_scale, (y[t] - m.y_shift) / m.y_scale, seed))
    if current_fan_out() is not IN_PROCESS:
        return _fit_folds_fanned_out(models, data)
    by_schedule: dict[tuple[int, int], list[int]] = {}
    for i, t in enumerate(trains):
        by_schedule.setdefault(_schedule(len(t), s), []).append(i)
    for folds in by_schedule.values():
        trained = train_member_groups([data[i] for i in folds], dict(s), list(range(int(s["n_members"]))))
        for i, members in zip(folds, trained, strict=True):
            models[i].load_members(members)
    return models


def _fit_folds_fanned_out(
    models: list[DeepEnsemble], data: list[tuple[Tensor, Tensor, int]]
) -> list[DeepEnsemble]:
    """The folds on a cluster (``data``: each fold's standardised rows and seed): one map over every fold's chunks
    of members, so that five folds of ten members keep ten workers busy instead of two, fold after fold. Each chunk
    trains exactly what ``DeepEnsemble.fit`` would send for its fold (the same member indices), so the ensembles
    are the same as fitting fold after fold; the folds' data reach each worker once (``map_shared``)."""
    from matloop.compute import checked_chunk, chunks, current_fan_out

    settings = dict(models[0].settings)
    members = int(settings["n_members"])
    tasks = [(i, part) for i in range(len(models)) for part in chunks(list(range(members)), member_chunk(members))]
    results = current_fan_out().map_shared(_train_fold_chunk, (data, settings), tasks, name="ensemble-members")
    per_fold: list[list[tuple[list[Tensor], list[Tensor]]]] = [[] for _ in models]
    for (i, part), trained in zip(tasks, results, strict=True):
        per_fold[i].extend(checked_chunk("ensemble-members", part, trained))
    return [model.load_members(trained) for model, trained in zip(models, per_fold, strict=True)]


def _train_fold_chunk(
    shared: tuple[list[tuple[Tensor, Tensor, int]], dict[str, Any]], task: tuple[int, list[int]]
) -> list[tuple[list[Tensor], list[Tensor]]]:
    """One chunk of one fold's members (a module-level function, so a Dask worker can run it)."""
    (data, settings), (fold, indices) = shared, task
    xs, ys, seed = data[fold]
    return train_members(xs, ys, settings, seed, indices)


def rebuild_ensemble(X: Tensor, recipe: dict, state: dict) -> Model:
    model = DeepEnsemble(X.shape[-1], recipe["settings"])
    model.load_state_dict(state)
    return model.eval()
