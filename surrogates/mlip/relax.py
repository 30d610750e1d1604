"""Relaxing structures with a machine-learned interatomic potential (CHGNet by default, MACE from a file).

Both are wrapped behind one small protocol, :class:`Relaxer`, so the screening
funnel and the elemental references never care which potential is in use — only
that every energy on one phase diagram comes from the same one.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from pymatgen.core import Structure


@dataclass(frozen=True)
class RelaxResult:
    """One relaxation: final structure and energy per atom (eV), or the error that stopped it."""

    structure: Structure | None
    energy_per_atom: float | None
    converged: bool
    steps: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.energy_per_atom is not None and math.isfinite(self.energy_per_atom)


@runtime_checkable
class Relaxer(Protocol):
    """Relaxes structures; ``name`` identifies the potential (it keys the elemental-reference cache)."""

    name: str

    def relax(self, structure: Structure, relax_cell: bool = True) -> RelaxResult: ...


def relax_all(relaxer: Relaxer, structures: Sequence[Structure], relax_cell: bool = True) -> list[RelaxResult]:
    """Relax every structure: in one batch when the relaxer can (``relax_many``), else one at a time."""
    many = getattr(relaxer, "relax_many", None)
    if callable(many):
        return list(many(structures, relax_cell=relax_cell))
    return [relaxer.relax(s, relax_cell=relax_cell) for s in structures]


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """One BLAS thread while relaxing: ASE's cell filter takes a 3x3 matrix log and exponential (scipy) every
    step, and a multi-threaded BLAS spends far longer waking its threads for a 3x3 solve than solving it; on a
    busy machine that wait was most of a relaxation's time (measured: 14 of 17 s; benchmarks/RESULTS-mlip.md)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def limit_threads(n: int | None) -> None:
    """CPU relaxations of small cells gain nothing from many threads; on shared CI they lose."""
    if n:
        import torch

        torch.set_num_threads(n)


class CHGNetRelaxer:
    """CHGNet (pretrained weights ship in its wheel, so this works offline)."""

    def __init__(self, fmax: float = 0.1, steps: int = 200, threads: int | None = 1) -> None:
        limit_threads(threads)
        from chgnet.model import CHGNet, StructOptimizer

        model = CHGNet.load(verbose=False)
        self._optimizer = StructOptimizer(model=model, optimizer_class="FIRE")
        self.fmax = fmax
        self.steps = steps
        self.name = f"chgnet-{model.version or 'default'}"

    def relax(self, structure: Structure, relax_cell: bool = True) -> RelaxResult:
        try:
            with warnings.catch_warnings(), one_blas_thread():
                warnings.simplefilter("ignore")
                out = self._optimizer.relax(
                    structure, fmax=self.fmax, steps=self.steps, relax_cell=relax_cell, verbose=False
                )
        except Exception as exc:  # a failed relaxation is a result, not a crash of the batch
            return RelaxResult(None, None, False, 0, f"CHGNet relaxation failed: {type(exc).__name__}: {exc}")
        final: Structure = out["final_structure"]
        energies = out["trajectory"].energies
        steps = len(energies)
        return RelaxResult(final, float(energies[-1]) / len(final), steps < self.steps, steps)


class MACERelaxer:
    """Any MACE model from a local file (e.g. a MACE-MP foundation model), relaxed with ASE's FIRE.

    The file is loaded with ``weights_only=True`` (see ``model_file``): matloop's own weights files always load;
    a model saved whole is a pickle that could run code, and loads only with ``trust_model_file=True``.
    """

    def __init__(
        self,
        model_path: str | Path,
        fmax: float = 0.1,
        steps: int = 200,
        threads: int | None = 1,
        trust_model_file: bool = False,
    ) -> None:
        limit_threads(threads)
        path = Path(model_path)
        from mace.calculators import MACECalculator
        from mace.calculators.mace import get_model_dtype

        from surrogates.mlip.model_file import load_mace_model

        model = load_mace_model(path, trust_model_file=trust_model_file)
        self._calc = MACECalculator(models=[model], device="cpu", default_dtype=get_model_dtype(model))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        self.name = f"mace-{digest}"
        self.fmax = fmax
        self.steps = steps

    def relax(self, structure: Structure, relax_cell: bool = True) -> RelaxResult:
        from ase.filters import FrechetCellFilter
        from ase.optimize import FIRE
        from pymatgen.io.ase import AseAtomsAdaptor

        try:
            atoms = AseAtomsAdaptor.get_atoms(structure)
            atoms.calc = self._calc
            target = FrechetCellFilter(atoms) if relax_cell else atoms
            opt = FIRE(target, logfile=None)
            with one_blas_thread():
                converged = bool(opt.run(fmax=self.fmax, steps=self.steps))
            energy = float(atoms.get_potential_energy()) / len(atoms)
            final = AseAtomsAdaptor.get_structure(atoms)
        except Exception as exc:
            return RelaxResult(None, None, False, 0, f"MACE relaxation failed: {type(exc).__name__}: {exc}")
        return RelaxResult(final, energy, converged, int(opt.nsteps))


def make_relaxer(
    model_path: str | None = None,
    fmax: float = 0.1,
    steps: int = 200,
    threads: int | None = 1,
    trust_model_file: bool = False,
    batch_size: int = 32,
    optimizer: str = "bfgs-elastic",
) -> Relaxer:
    """MACE when a model file is configured, CHGNet otherwise: batched unless ``batch_size`` is 1.

    ``batch_size=1`` keeps CHGNet's own one-structure ``StructOptimizer`` (the reference the batched
    relaxer is tested against); MACE models from a file are relaxed one at a time. ``optimizer`` is the
    batched relaxer's (``"bfgs-elastic"``, ``"bfgs"`` or ``"fire"``: ``surrogates.mlip.batched.OPTIMIZERS``).
    """
    if model_path:
        return MACERelaxer(model_path, fmax=fmax, steps=steps, threads=threads, trust_model_file=trust_model_file)
    if batch_size > 1:
        from surrogates.mlip.batched import BatchedCHGNetRelaxer

        return BatchedCHGNetRelaxer(fmax=fmax, steps=steps, threads=threads, batch_size=batch_size,
                                    optimizer=optimizer)
    return CHGNetRelaxer(fmax=fmax, steps=steps, threads=threads)
