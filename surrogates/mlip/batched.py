"""Relaxing many structures at once: one batched CHGNet prediction and one optimiser step of all per step.

Relaxing one structure at a time pays the model's fixed cost (graph batching,
autograd for forces and stress, Python overhead of the layers) once per
structure per step; a 10-atom cell is far too small to keep even one CPU core
busy.  Here every still-running structure of a batch is evaluated in one CHGNet
forward and backward pass per step, and all of them then take one optimiser
step together over ASE's ``FrechetCellFilter`` coordinates (:mod:`surrogates.mlip.fire`
for the filter and FIRE, :mod:`surrogates.mlip.bfgs` for BFGS, the default) — the
scheme of batched relaxers such as torch-sim.  Each structure keeps its own
optimiser state (FIRE's time step and velocity, BFGS's Hessian), and leaves the batch on its own convergence test (max row of the filter's forces
below ``fmax``) or step limit; the freed places are topped up from the queue.
Each step's graphs are CHGNet's own, built from the neighbour list with numpy (:mod:`surrogates.mlip.graph`).
Everything runs on the model's device (the GPU when ``torch.cuda.is_available()``).

torch-sim itself would be the library for this, but its releases for Python 3.11
(up to 0.3.0) have no CHGNet model; the ones that do need Python 3.12.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Lattice, Structure

from surrogates.mlip.bfgs import bfgs_elastic_step, bfgs_step
from surrogates.mlip.fire import FireState, filter_forces, fire_step
from surrogates.mlip.graph import crystal_graph
from surrogates.mlip.relax import RelaxResult, limit_threads, one_blas_thread


def efs_tensors(model, graphs: list):
    """Energy per atom (eV, (k,)), all atoms' forces (eV/Å, (N, 3)) and stresses (eV/Å³, ASE's sign, (k, 3, 3)).

    ``CHGNet.predict_graph(task="efs")`` takes two backward passes (forces, then stress), each building a
    graph for higher derivatives that training needs and relaxation does not; that is most of its cost.
    Here the energy comes from the model's public forward and both derivatives from one ``autograd.grad``
    with respect to the graphs' own inputs, fractional coordinates ``s`` and lattice ``L`` (rows):
    with ``r = s L``, forces are ``-dE/ds · L⁻ᵀ``, and for a strain ``ε`` (``L → L(1+ε)`` at fixed ``s``)
    the stress is ``Lᵀ · dE/dL / V``, which is CHGNet's own definition (tested against ``predict_graph``).
    Returned in float64 on the model's device.
    """
    import torch

    out = model(graphs, task="e")
    energy = out["e"]
    n_atoms = torch.tensor([len(g.atomic_number) for g in graphs], device=energy.device)
    total = (energy * n_atoms.to(energy.dtype)).sum()  # CHGNet's energy is per atom
    inputs = [g.atom_frac_coord for g in graphs] + [g.lattice for g in graphs]
    grads = torch.autograd.grad(total, inputs)
    k = len(graphs)
    lattice = torch.stack([g.lattice.detach() for g in graphs]).double()
    d_frac = torch.cat(grads[:k]).double()
    d_lattice = torch.stack(grads[k:]).double()
    owner = torch.repeat_interleave(torch.arange(k, device=energy.device), n_atoms)
    inv_t = torch.linalg.inv(lattice).transpose(1, 2)
    forces = -torch.bmm(d_frac[:, None, :], inv_t[owner]).squeeze(1)
    stress = lattice.transpose(1, 2) @ d_lattice / torch.linalg.det(lattice).abs()[:, None, None]
    return energy.detach().double(), forces, 0.5 * (stress + stress.transpose(1, 2))


#: On a CPU, the most three-body angles (rows of CHGNet's bond graph, ~2,700 per 20-atom cell, ~700 per 5-atom one)
#: evaluated in one model call. The bond-graph layers hold ``[angles, 256]`` float32 activations (1 KiB per angle)
#: and autograd keeps them for the backward: a call over a whole batch of 32 twenty-atom cells allocated ~88 MB
#: blocks, above glibc's largest mmap threshold (32 MiB), so every block was mapped afresh and faulted in page by
#: page at each step (2.4 GB peak, 10-25k page faults and 25-75 ms of kernel time per cell-evaluation on top of
#: ~80 ms of compute). Calls of at most this many angles keep each block well inside the heap. On a CPU a call
#: costs what its atoms cost, so splitting loses nothing; the numbers are the same bit for bit (each graph's
#: energy, forces and stress do not depend on its batch neighbours); on a GPU the batch stays one call.
CPU_ANGLES_PER_CALL = 16_384


def calls(angles: Sequence[int], limit: int | None) -> list[slice]:
    """Consecutive groups of graphs with at most ``limit`` angles in all (a larger graph alone); one without a limit."""
    if limit is None or not angles:
        return [slice(0, len(angles))]
    out, start, total = [], 0, 0
    for i, n in enumerate(angles):
        if i > start and total + n > limit:
            out.append(slice(start, i))
            start, total = i, 0
        total += n
    out.append(slice(start, len(angles)))
    return out


def efs_in_calls(model, graphs: list, max_angles: int | None):
    """:func:`efs_tensors` over ``graphs`` in calls of at most ``max_angles`` angles (:data:`CPU_ANGLES_PER_CALL`),
    joined back into one batch's tensors."""
    import torch

    parts = [efs_tensors(model, graphs[part]) for part in calls([len(g.bond_graph) for g in graphs], max_angles)]
    if len(parts) == 1:
        return parts[0]
    return tuple(torch.cat(tensors) for tensors in zip(*parts, strict=True))


def energies_forces_stresses(model, graphs: list,
                             max_angles: int | None = None) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """:func:`efs_tensors` per graph, as numpy: (energy per atom, forces, 3x3 stress)."""
    energy, forces, stress = efs_in_calls(model, graphs, max_angles)
    split = forces.cpu().numpy()
    bounds = np.cumsum([0] + [len(g.atomic_number) for g in graphs])
    return [(float(e), split[bounds[i]:bounds[i + 1]], s) for i, (e, s) in
            enumerate(zip(energy.cpu().numpy(), stress.cpu().numpy(), strict=True))]


#: the batched optimisers by name: ASE's FIRE or BFGS (from its own or the elastic starting Hessian) over the
#: Fréchet cell filter
OPTIMIZERS = {"fire": fire_step, "bfgs": bfgs_step, "bfgs-elastic": bfgs_elastic_step}


@dataclass
class _Run:
    """One structure's relaxation in flight: its species, optimiser state and where it stands."""

    index: int
    species: list[str]
    state: FireState | None
    steps: int = 0
    energy_per_atom: float | None = None
    converged: bool = False
    error: str | None = None
    done: bool = False


class BatchedCHGNetRelaxer:
    """CHGNet relaxations, many at once; ``relax`` (the :class:`Relaxer` protocol) is a batch of one.

    ``batch_size`` caps how many structures share one optimiser step (on a GPU one model call; on a CPU
    the call is split into calls of at most :data:`CPU_ANGLES_PER_CALL` angles, the point where a larger call
    stops paying); more structures are relaxed in consecutive chunks of that size, each chunk topped up from
    the queue as its members converge.
    """

    def __init__(
        self,
        fmax: float = 0.1,
        steps: int = 200,
        threads: int | None = 1,
        batch_size: int = 32,
        device: str | None = None,
        optimizer: str = "bfgs-elastic",
    ) -> None:
        limit_threads(threads)
        import torch
        from chgnet.model import CHGNet

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = CHGNet.load(verbose=False, use_device=self.device)
        self.model.eval()
        # forces and stress are derivatives with respect to the graphs' coordinates and lattice only: with the
        # weights frozen, autograd records no weight-gradient paths in the forward pass and skips them in the
        # backward (the same numbers; ~20% less CPU per evaluation of 20-atom cells, benchmarks/RESULTS-mlip.md)
        self.model.requires_grad_(False)
        self.model.graph_converter.set_isolated_atom_response("ignore")  # as CHGNet's calculator: relax anyway
        self.max_angles = CPU_ANGLES_PER_CALL if torch.device(self.device).type == "cpu" else None
        self.fmax = fmax
        self.steps = steps
        self.batch_size = max(1, int(batch_size))
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}: one of {', '.join(OPTIMIZERS)}")
        self._step_all = OPTIMIZERS[optimizer]
        # the same potential as CHGNetRelaxer: energies agree within the optimiser's tolerance, so they share
        # the elemental-reference cache
        self.name = f"chgnet-{self.model.version or 'default'}"

    # -- the Relaxer protocol -------------------------------------------------
    def relax(self, structure: Structure, relax_cell: bool = True) -> RelaxResult:
        return self.relax_many([structure], relax_cell=relax_cell)[0]

    def relax_many(self, structures: Sequence[Structure], relax_cell: bool = True) -> list[RelaxResult]:
        """Relax all ``structures``; one result per structure, in order (a failure is a result, not a raise)."""
        with one_blas_thread(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self._relax_many(structures, relax_cell)

    def _relax_many(self, structures: Sequence[Structure], relax_cell: bool) -> list[RelaxResult]:
        results: list[RelaxResult | None] = [None] * len(structures)
        queue = list(range(len(structures)))
        running: list[_Run] = []
        while queue or running:
            while queue and len(running) < self.batch_size:
                i = queue.pop(0)
                run = self._start(i, structures[i], relax_cell)
                if run.done:
                    results[i] = self._result(run)
                else:
                    running.append(run)
            if running:
                self._step(running)
            for run in [r for r in running if r.done]:
                results[run.index] = self._result(run)
            running = [r for r in running if not r.done]
        return results  # type: ignore[return-value]

    # -- one batch step -------------------------------------------------------
    def _start(self, index: int, structure: Structure, relax_cell: bool) -> _Run:
        import torch

        try:
            species = [site.specie.symbol for site in structure]
            as_tensor = {"dtype": torch.float64, "device": self.device}
            state = FireState.start(torch.tensor(structure.lattice.matrix, **as_tensor),
                                    torch.tensor(structure.cart_coords, **as_tensor), relax_cell)
        except Exception as exc:  # an unreadable structure fails alone
            return _Run(index, [], None, done=True, error=f"CHGNet relaxation failed: {type(exc).__name__}: {exc}")
        return _Run(index, species, state)

    def _structure(self, run: _Run) -> Structure:
        """The run's current geometry as the pymatgen structure CHGNet's graph converter reads."""
        cell, positions = run.state.geometry()  # type: ignore[union-attr]
        return Structure(Lattice(cell.cpu().numpy()), run.species, positions.cpu().numpy(), coords_are_cartesian=True)

    def _step(self, runs: list[_Run]) -> None:
        """Evaluate every run (one model call, or bounded calls on a CPU), test convergence, and move the rest one
        optimiser step together."""
        import torch

        graphs, live = [], []
        for run in runs:
            try:
                graphs.append(crystal_graph(self.model.graph_converter, self._structure(run)).to(self.device))
                live.append(run)
            except Exception as exc:  # e.g. an atom with no neighbour within the cutoff
                self._fail(run, exc)
        if not live:
            return
        try:
            energy, forces, stress = efs_in_calls(self.model, graphs, self.max_angles)
        except Exception as exc:
            for run in live:
                self._fail(run, exc)
            return
        sizes = [len(r.species) for r in live]
        finite = (torch.isfinite(energy) & torch.isfinite(stress).flatten(1).all(dim=1)
                  & torch.stack([f.isfinite().all() for f in forces.split(sizes)])).tolist()
        if not all(finite):
            for run, ok in zip(live, finite, strict=True):
                if not ok:
                    self._fail(run, ValueError("the potential gave a non-finite energy, force or stress"))
            keep = torch.tensor(finite, device=forces.device)
            forces = torch.cat([f for f, ok in zip(forces.split(sizes), finite, strict=True) if ok])
            energy, stress = energy[keep], stress[keep]
            live = [r for r, ok in zip(live, finite, strict=True) if ok]
            if not live:
                return
        states = [r.state for r in live]
        atom_rows, cell_rows, fmax = filter_forces(states, forces, stress)  # type: ignore[arg-type]
        moving = []
        for i, (run, e, f) in enumerate(zip(live, energy.tolist(), fmax.tolist(), strict=True)):
            run.energy_per_atom = e
            if f < self.fmax:
                run.converged, run.done = True, True
            elif run.steps >= self.steps:
                run.done = True
            else:
                moving.append(i)
                run.steps += 1
        if moving:
            sizes_t = torch.tensor([len(r.species) for r in live])
            owner = torch.repeat_interleave(torch.arange(len(live)), sizes_t).to(atom_rows.device)
            pick = torch.tensor(moving, device=atom_rows.device)
            atom_pick = torch.isin(owner, pick)
            self._step_all([states[i] for i in moving], atom_rows[atom_pick], cell_rows[pick])  # type: ignore[misc]

    def _fail(self, run: _Run, exc: Exception) -> None:
        run.error = f"CHGNet relaxation failed: {type(exc).__name__}: {exc}"
        run.done = True

    def _result(self, run: _Run) -> RelaxResult:
        if run.error is not None:
            return RelaxResult(None, None, False, run.steps, run.error)
        return RelaxResult(self._structure(run), run.energy_per_atom, run.converged, run.steps)
