"""Relaxing many structures at once: one batched CHGNet prediction per optimiser step for the whole batch.

Relaxing one structure at a time pays the model's fixed cost (graph batching,
autograd for forces and stress, Python overhead of the layers) once per
structure per step; a 10-atom cell is far too small to keep even one CPU core
busy.  Here every still-running structure of a batch is evaluated in one
``CHGNet.predict_graph`` call per step, and each structure then takes its own
FIRE step — the scheme of batched relaxers such as torch-sim.

The optimiser is ASE's own: one ``ase.optimize.FIRE`` over one
``ase.filters.FrechetCellFilter`` per structure (the same pair CHGNet's
``StructOptimizer`` runs), fed with the batched energies, forces and stresses
through a ``SinglePointCalculator``.  So each structure follows ASE's FIRE
semantics exactly (its own time step, mixing and velocity; positions and cell),
and it leaves the batch on its own convergence test (max row of the filter's
forces below ``fmax``) or step limit.  The optimiser's arithmetic is a few
dozen numbers per structure and stays in numpy; the model runs on the GPU when
``torch.cuda.is_available()``.

torch-sim itself would be the library for this, but its releases for Python 3.11
(up to 0.3.0) have no CHGNet model; the ones that do need Python 3.12.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Lattice, Structure

from surrogates.mlip.relax import RelaxResult, limit_threads, one_blas_thread


def energies_forces_stresses(model, graphs: list) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """Energy per atom (eV), forces (eV/Å) and stress (eV/Å³, ASE's sign) of each graph, from one backward pass.

    ``CHGNet.predict_graph(task="efs")`` takes two backward passes (forces, then stress), each building a
    graph for higher derivatives that training needs and relaxation does not; that is most of its cost.
    Here the energy comes from the model's public forward and both derivatives from one ``autograd.grad``
    with respect to the graphs' own inputs, fractional coordinates ``s`` and lattice ``L`` (rows):
    with ``r = s L``, forces are ``-dE/ds · L⁻ᵀ``, and for a strain ``ε`` (``L → L(1+ε)`` at fixed ``s``)
    the stress is ``Lᵀ · dE/dL / V``, which is CHGNet's own definition (tested against ``predict_graph``).
    """
    import torch

    out = model(graphs, task="e")
    n_atoms = torch.tensor([len(g.atomic_number) for g in graphs], dtype=out["e"].dtype, device=out["e"].device)
    total = (out["e"] * n_atoms).sum()  # CHGNet's energy is per atom
    inputs = [g.atom_frac_coord for g in graphs] + [g.lattice for g in graphs]
    grads = torch.autograd.grad(total, inputs)
    k = len(graphs)
    energies = out["e"].detach().cpu().double().numpy()
    results = []
    for i, g in enumerate(graphs):
        lattice = g.lattice.detach().cpu().double().numpy()
        d_frac = grads[i].detach().cpu().double().numpy()
        d_lattice = grads[k + i].detach().cpu().double().numpy()
        forces = -d_frac @ np.linalg.inv(lattice).T
        stress = lattice.T @ d_lattice / abs(np.linalg.det(lattice))
        results.append((float(energies[i]), forces, 0.5 * (stress + stress.T)))
    return results


@dataclass
class _Run:
    """One structure's relaxation in flight: its atoms, the optimiser over them, and where it stands."""

    index: int
    atoms: object  # ase.Atoms
    target: object  # the filter (positions and cell) or the atoms themselves
    optimizer: object  # ase.optimize.FIRE
    species: list[str]
    steps: int = 0
    energy_per_atom: float | None = None
    converged: bool = False
    error: str | None = None
    done: bool = False


class BatchedCHGNetRelaxer:
    """CHGNet relaxations, many at once; ``relax`` (the :class:`Relaxer` protocol) is a batch of one.

    ``batch_size`` caps how many structures share one model call (memory, and on a CPU the point where
    a larger batch stops paying); more structures are relaxed in consecutive chunks of that size, each
    chunk topped up from the queue as its members converge.
    """

    def __init__(
        self,
        fmax: float = 0.1,
        steps: int = 200,
        threads: int | None = 1,
        batch_size: int = 32,
        device: str | None = None,
    ) -> None:
        limit_threads(threads)
        import torch
        from chgnet.model import CHGNet

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = CHGNet.load(verbose=False, use_device=self.device)
        self.model.eval()
        self.model.graph_converter.set_isolated_atom_response("ignore")  # as CHGNet's calculator: relax anyway
        self.fmax = fmax
        self.steps = steps
        self.batch_size = max(1, int(batch_size))
        # the same potential as CHGNetRelaxer: energies agree within the optimiser's tolerance, so they share
        # the elemental-reference cache
        self.name = f"chgnet-{self.model.version or 'default'}"

    # -- the Relaxer protocol -------------------------------------------------
    def relax(self, structure: Structure, relax_cell: bool = True) -> RelaxResult:
        return self.relax_many([structure], relax_cell=relax_cell)[0]

    def relax_many(self, structures: Sequence[Structure], relax_cell: bool = True) -> list[RelaxResult]:
        """Relax all ``structures``; one result per structure, in order (a failure is a result, not a raise)."""
        with one_blas_thread():
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
            if not running:
                continue
            self._evaluate(running)
            for run in running:
                if not run.done:
                    self._advance(run)
            for run in [r for r in running if r.done]:
                results[run.index] = self._result(run)
            running = [r for r in running if not r.done]
        return results  # type: ignore[return-value]

    # -- one structure --------------------------------------------------------
    def _start(self, index: int, structure: Structure, relax_cell: bool) -> _Run:
        from ase.filters import FrechetCellFilter
        from ase.optimize import FIRE
        from pymatgen.io.ase import AseAtomsAdaptor

        try:
            atoms = AseAtomsAdaptor.get_atoms(structure)
            target = FrechetCellFilter(atoms) if relax_cell else atoms
            optimizer = FIRE(target, logfile=None)
        except Exception as exc:  # an unreadable structure fails alone
            return _Run(index, None, None, None, [], done=True,
                        error=f"CHGNet relaxation failed: {type(exc).__name__}: {exc}")
        species = [site.specie.symbol for site in structure]
        return _Run(index, atoms, target, optimizer, species)

    def _structure(self, run: _Run) -> Structure:
        """The atoms' current geometry as the pymatgen structure CHGNet's graph converter reads."""
        atoms = run.atoms
        return Structure(Lattice(atoms.cell[:]), run.species, atoms.positions, coords_are_cartesian=True)  # type: ignore[attr-defined]

    def _evaluate(self, runs: list[_Run]) -> None:
        """Energies, forces and stresses of every unfinished run in one batched model call."""
        from ase.calculators.singlepoint import SinglePointCalculator
        from ase.stress import full_3x3_to_voigt_6_stress

        graphs, live = [], []
        for run in runs:
            try:
                graphs.append(self.model.graph_converter(self._structure(run)).to(self.device))
                live.append(run)
            except Exception as exc:  # e.g. an atom with no neighbour within the cutoff
                self._fail(run, exc)
        if not live:
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                predictions = energies_forces_stresses(self.model, graphs)
        except Exception as exc:
            for run in live:
                self._fail(run, exc)
            return
        for run, (e, forces, stress) in zip(live, predictions, strict=True):
            if not (math.isfinite(e) and np.all(np.isfinite(forces)) and np.all(np.isfinite(stress))):
                self._fail(run, ValueError("the potential gave a non-finite energy, force or stress"))
                continue
            n = len(run.species)
            run.energy_per_atom = e
            run.atoms.calc = SinglePointCalculator(  # type: ignore[attr-defined]
                run.atoms, energy=e * n, free_energy=e * n, forces=forces, stress=full_3x3_to_voigt_6_stress(stress)
            )

    def _advance(self, run: _Run) -> None:
        """ASE's ``Optimizer.irun`` for one step: test convergence at the evaluated point, else step."""
        forces = run.target.get_forces()  # type: ignore[attr-defined]
        if float(np.sqrt((forces**2).sum(axis=1)).max()) < self.fmax:
            run.converged, run.done = True, True
            return
        if run.steps >= self.steps:
            run.done = True
            return
        run.optimizer.step()  # type: ignore[attr-defined]
        run.steps += 1

    def _fail(self, run: _Run, exc: Exception) -> None:
        run.error = f"CHGNet relaxation failed: {type(exc).__name__}: {exc}"
        run.done = True

    def _result(self, run: _Run) -> RelaxResult:
        if run.error is not None:
            return RelaxResult(None, None, False, run.steps, run.error)
        return RelaxResult(self._structure(run), run.energy_per_atom, run.converged, run.steps)
