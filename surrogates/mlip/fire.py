"""ASE's FIRE over ASE's ``FrechetCellFilter``, for many structures at once, in torch.

One step of a whole batch is a handful of tensor operations on the model's device instead of one Python
optimiser and one filter per structure: ASE's filter takes a scipy matrix logarithm and nine
``expm_frechet`` calls per structure per step, which cost about as much CPU time as the CHGNet
evaluation of a 5-atom cell (benchmarks/RESULTS-mlip.md). The arithmetic is ASE's, so each structure
follows the same path as ``FIRE(FrechetCellFilter(atoms))`` (tested against it):

- the degrees of freedom are the positions in the undeformed cell, ``u = r F⁻ᵀ``, and the scaled log of the
  deformation gradient ``F`` (``cell = cell₀ Fᵀ``), ``x_cell = n · log F`` for ``n`` atoms;
- their forces are ``f F`` and the derivative of ``-E`` along ``log F``, divided by ``n``: ASE sums the virial
  against ``expm_frechet`` in nine directions, which is the gradient of ``<G, expm(X)>`` with respect to
  ``X`` and here one batched ``autograd.grad`` through ``torch.linalg.matrix_exp`` (taken per structure);
- the log is kept as state rather than recomputed from the cell (ASE's ``logm(expm(X))`` gives back ``X``);
- FIRE's time step, mixing and velocity are per structure, with ASE's defaults and its maximum step over
  all of a structure's degrees of freedom.

torch-sim batches FIRE the same way (one state tensor for all atoms, ``segment`` sums per structure).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: ASE FIRE's defaults (``ase.optimize.FIRE``)
DT, MAXSTEP, DTMAX, NMIN, FINC, FDEC, ASTART, FA = 0.1, 0.2, 1.0, 5, 1.1, 0.5, 0.1, 0.99


@dataclass
class FireState:
    """One structure's optimiser state (float64 tensors on the model's device)."""

    cell0: torch.Tensor  # (3, 3) the starting cell, rows are lattice vectors
    u: torch.Tensor  # (n, 3) positions in the undeformed cell
    x_cell: torch.Tensor  # (3, 3) n · log F
    relax_cell: bool
    v_atoms: torch.Tensor | None = None  # None before the first step, as ASE's FIRE
    v_cell: torch.Tensor | None = None
    dt: float = DT
    a: float = ASTART
    n_positive: int = 0  # ASE's ``Nsteps``: steps since the last uphill reset
    hessian: torch.Tensor | None = None  # BFGS (surrogates/mlip/bfgs.py): its Hessian and last point and forces
    x0: torch.Tensor | None = None
    f0: torch.Tensor | None = None

    @classmethod
    def start(cls, lattice: torch.Tensor, positions: torch.Tensor, relax_cell: bool) -> FireState:
        return cls(lattice.clone(), positions.clone(), torch.zeros_like(lattice), relax_cell)

    @property
    def n(self) -> int:
        return len(self.u)

    def geometry(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The current cell (rows) and Cartesian positions: ``cell = cell₀ Fᵀ``, ``r = u Fᵀ``."""
        f = torch.linalg.matrix_exp(self.x_cell / self.n)
        return self.cell0 @ f.T, self.u @ f.T


def _segment_sum(values: torch.Tensor, owner: torch.Tensor, k: int) -> torch.Tensor:
    return torch.zeros(k, dtype=values.dtype, device=values.device).index_add_(0, owner, values)


def filter_forces(
    states: list[FireState], forces: torch.Tensor, stress: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The filter's forces on every degree of freedom, and each structure's largest row norm (ASE's fmax test).

    ``forces`` are all atoms' Cartesian forces concatenated (eV/Å), ``stress`` one 3x3 per structure (eV/Å³,
    ASE's sign). Returns the atom rows ``f F`` (N, 3), the cell rows (k, 3, 3) and the max row norm (k,).
    """
    k = len(states)
    device, dtype = forces.device, forces.dtype
    n = torch.tensor([s.n for s in states], device=device)
    owner = torch.repeat_interleave(torch.arange(k, device=device), n)
    log_f = torch.stack([s.x_cell for s in states]) / n.to(dtype)[:, None, None]
    cell0 = torch.stack([s.cell0 for s in states])
    with torch.enable_grad():
        x = log_f.detach().requires_grad_(True)
        # one matrix at a time: torch's batched matrix_exp chooses its series for the whole batch, which would make
        # a structure's path depend on its batch neighbours (at rounding level, but a relaxation amplifies it)
        f_mat = torch.stack([torch.linalg.matrix_exp(m) for m in x])
        cell = cell0 @ f_mat.detach().transpose(1, 2)
        volume = torch.linalg.det(cell).abs()
        virial = -volume[:, None, None] * stress
        ucf = virial @ torch.linalg.inv(f_mat.detach().transpose(1, 2))  # UnitCellFilter's cell gradient
        (g_log,) = torch.autograd.grad((ucf * f_mat).sum(), x)  # Σ_{μν} <ucf, L(log F, E_μν)> E_μν
    atom_rows = torch.bmm(forces[:, None, :], f_mat.detach()[owner]).squeeze(1)
    relax = torch.tensor([s.relax_cell for s in states], device=device, dtype=dtype)
    cell_rows = g_log * (relax / n.to(dtype))[:, None, None]
    atom_max = torch.zeros(k, dtype=dtype, device=device).scatter_reduce_(
        0, owner, atom_rows.norm(dim=1), reduce="amax", include_self=True
    )
    return atom_rows, cell_rows, torch.maximum(atom_max, cell_rows.norm(dim=2).amax(dim=1))


def fire_step(states: list[FireState], atom_rows: torch.Tensor, cell_rows: torch.Tensor) -> None:
    """One FIRE step (``ase.optimize.FIRE.step``) of every state, from the filter's forces, in place."""
    k = len(states)
    device, dtype = atom_rows.device, atom_rows.dtype
    n = torch.tensor([s.n for s in states], device=device)
    owner = torch.repeat_interleave(torch.arange(k, device=device), n)
    started = [s.v_atoms is not None for s in states]
    v_atoms = torch.cat([s.v_atoms if s.v_atoms is not None else torch.zeros_like(s.u) for s in states])
    v_cell = torch.stack([s.v_cell if s.v_cell is not None else torch.zeros_like(s.x_cell) for s in states])

    def dot(a_atoms: torch.Tensor, a_cell: torch.Tensor, b_atoms: torch.Tensor, b_cell: torch.Tensor) -> torch.Tensor:
        return _segment_sum((a_atoms * b_atoms).sum(dim=1), owner, k) + (a_cell * b_cell).sum(dim=(1, 2))

    vf = dot(atom_rows, cell_rows, v_atoms, v_cell).tolist()
    grad_norm = dot(atom_rows, cell_rows, atom_rows, cell_rows).sqrt()
    v_norm = dot(v_atoms, v_cell, v_atoms, v_cell).sqrt()
    # FIRE's parameter updates are scalar bookkeeping per structure; the vectors stay batched
    keep, mix = [], []
    for i, s in enumerate(states):
        if not started[i]:
            keep.append(1.0), mix.append(0.0)
        elif vf[i] > 0.0:
            keep.append(1.0 - s.a), mix.append(s.a)
            if s.n_positive > NMIN:
                s.dt = min(s.dt * FINC, DTMAX)
                s.a *= FA
            s.n_positive += 1
        else:
            keep.append(0.0), mix.append(0.0)
            s.a, s.dt, s.n_positive = ASTART, s.dt * FDEC, 0
    keep_t = torch.tensor(keep, dtype=dtype, device=device)
    coef = torch.tensor(mix, dtype=dtype, device=device) * v_norm / grad_norm.clamp_min(torch.finfo(dtype).tiny)
    dt = torch.tensor([s.dt for s in states], dtype=dtype, device=device)
    v_atoms = keep_t[owner, None] * v_atoms + coef[owner, None] * atom_rows + dt[owner, None] * atom_rows
    v_cell = keep_t[:, None, None] * v_cell + (coef + dt)[:, None, None] * cell_rows
    dr_atoms, dr_cell = dt[owner, None] * v_atoms, dt[:, None, None] * v_cell
    dr_norm = dot(dr_atoms, dr_cell, dr_atoms, dr_cell).sqrt()
    scale = torch.where(dr_norm > MAXSTEP, MAXSTEP / dr_norm.clamp_min(torch.finfo(dtype).tiny), 1.0)
    dr_atoms, dr_cell = dr_atoms * scale[owner, None], dr_cell * scale[:, None, None]
    for s, va, vc, da, dc in zip(states, v_atoms.split(n.tolist()), v_cell, dr_atoms.split(n.tolist()), dr_cell,
                                 strict=True):
        s.v_atoms, s.v_cell = va, vc
        s.u = s.u + da
        s.x_cell = s.x_cell + dc
