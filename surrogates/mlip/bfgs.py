"""ASE's BFGS over the Fréchet cell filter's degrees of freedom, for many structures at once.

The same degrees of freedom and filter forces as the batched FIRE (:mod:`surrogates.mlip.fire`); the step is
``ase.optimize.BFGS``'s: a quasi-Newton step through the eigen-decomposition of a Hessian, updated by BFGS from
the last step, with the largest row of the step capped at 0.2 Å (ASE's ``maxstep``).  Each structure keeps its own
Hessian (3(n+3) square: tiny for the cells screened), so the step is a loop of small ``eigh`` calls; the model
evaluation that feeds it is the batched part.  A quasi-Newton step reaches the same ``fmax`` in fewer force
evaluations than FIRE's damped dynamics on these near-harmonic cells (benchmarks/RESULTS-mlip.md), and the
evaluation is what a step costs.

Two starting Hessians:

- ``bfgs``: ASE's, ``70 · I`` (``alpha``, eV/Å²) for every degree of freedom;
- ``bfgs-elastic`` (the default): for the cell, the curvature an elastic solid actually has along the filter's
  cell coordinates, and 35 eV/Å² (half ASE's ``alpha``) for the atoms.  The filter moves the cell through
  ``x = n · log F`` (``n`` atoms), so ``E ≈ ½ V ε:C:ε`` with ``ε = x / n`` has curvature ``V C / n²`` there:
  about 0.6-2.6 eV for 5-20-atom oxide cells with ``C ~ 1 eV/Å³`` (160 GPa), against ASE's 70.  Starting the
  cell at 70 makes its first steps some 30-100x too short and leaves BFGS to learn each strain direction from its
  updates; with this start a 20-atom cell needs about a third fewer force evaluations for the same fmax, a 5-atom
  cell almost half (benchmarks/RESULTS-mlip.md, where the atoms' 35 measured better than 70 with this cell block).
  The catch of any quicker optimiser: a cell that starts near a saddle can reach fmax there before its
  instability has grown (1 of 24 measured cells stopped 21 meV/atom higher).  This is the cell block of ASE's
  preconditioners (``mu_c``, ``ase.optimize.precon``) without their extra evaluations to estimate it; ASE's
  ``PreconLBFGS`` with the ``Exp`` preconditioner itself took more evaluations than plain BFGS on these cells (its
  line search; ASE switches ``Exp`` off by default below 100 atoms).
"""

from __future__ import annotations

from functools import partial

import torch

from surrogates.mlip.fire import FireState

#: ASE BFGS's defaults (``ase.optimize.BFGS``)
ALPHA, MAXSTEP = 70.0, 0.2
#: eV/Å³: the elastic stiffness the ``bfgs-elastic`` cell block assumes (~160 GPa, an oxide's order of magnitude;
#: BFGS corrects it from the first step on)
STIFFNESS = 1.0
#: eV/Å²: the ``bfgs-elastic`` atom block
ELASTIC_ALPHA = 35.0


def initial_hessian(state: FireState, elastic: bool) -> torch.Tensor:
    """The starting Hessian over the filter's 3(n+3) coordinates: ASE's ``alpha · I``, or the elastic one."""
    alpha = ELASTIC_ALPHA if elastic else ALPHA
    diagonal = torch.full((3 * (state.n + 3),), alpha, dtype=state.u.dtype, device=state.u.device)
    if elastic:
        volume = torch.linalg.det(state.cell0).abs()  # x_cell is 0 at the start: the cell is cell0
        diagonal[3 * state.n:] = STIFFNESS * volume / state.n**2
    return torch.diag(diagonal)


def bfgs_step(states: list[FireState], atom_rows: torch.Tensor, cell_rows: torch.Tensor, elastic: bool = False) -> None:
    """One ``ase.optimize.BFGS.step`` of every state, from the filter's forces, in place."""
    sizes = [s.n for s in states]
    for s, f_atoms, f_cell in zip(states, atom_rows.split(sizes), cell_rows, strict=True):
        x = torch.cat([s.u, s.x_cell]).reshape(-1)
        f = torch.cat([f_atoms, f_cell]).reshape(-1)
        if s.hessian is None:
            s.hessian = initial_hessian(s, elastic)
        else:
            dx = x - s.x0  # type: ignore[operator]
            if dx.abs().max() >= 1e-7:
                df = f - s.f0  # type: ignore[operator]
                a = dx @ df
                dg = s.hessian @ dx
                b = dx @ dg
                s.hessian = s.hessian - torch.outer(df, df) / a - torch.outer(dg, dg) / b
        omega, v = torch.linalg.eigh(s.hessian)
        step = (v @ ((f @ v) / omega.abs())).reshape(-1, 3)
        longest = step.norm(dim=1).max()
        if longest >= MAXSTEP:
            step = step * (MAXSTEP / longest)
        s.x0, s.f0 = x, f
        s.u = s.u + step[: s.n]
        s.x_cell = s.x_cell + step[s.n:]


#: BFGS from the elastic starting Hessian
bfgs_elastic_step = partial(bfgs_step, elastic=True)
