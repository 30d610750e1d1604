"""ASE's BFGS over the Fréchet cell filter's degrees of freedom, for many structures at once.

The same degrees of freedom and filter forces as the batched FIRE (:mod:`surrogates.mlip.fire`); the step is
``ase.optimize.BFGS``'s: a quasi-Newton step through the eigen-decomposition of a Hessian that starts at
``70 · I`` (ASE's ``alpha``, eV/Å²), updated by BFGS from the last step, with the largest row of the step
capped at 0.2 Å (ASE's ``maxstep``).  Each structure keeps its own Hessian (3(n+3) square: tiny for the cells screened), so
the step is a loop of small ``eigh`` calls; the model evaluation that feeds it is the batched part.  A
quasi-Newton step reaches the same ``fmax`` in fewer force evaluations than FIRE's damped dynamics on these
near-harmonic cells (benchmarks/RESULTS-mlip.md), and the evaluation is what a step costs.
"""

from __future__ import annotations

import torch

from surrogates.mlip.fire import FireState

#: ASE BFGS's defaults (``ase.optimize.BFGS``)
ALPHA, MAXSTEP = 70.0, 0.2


def bfgs_step(states: list[FireState], atom_rows: torch.Tensor, cell_rows: torch.Tensor) -> None:
    """One ``ase.optimize.BFGS.step`` of every state, from the filter's forces, in place."""
    sizes = [s.n for s in states]
    for s, f_atoms, f_cell in zip(states, atom_rows.split(sizes), cell_rows, strict=True):
        x = torch.cat([s.u, s.x_cell]).reshape(-1)
        f = torch.cat([f_atoms, f_cell]).reshape(-1)
        if s.hessian is None:
            s.hessian = ALPHA * torch.eye(len(x), dtype=x.dtype, device=x.device)
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
