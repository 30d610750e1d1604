"""A committee of small MACE models trained on the campaign's own DFT-level energies.

Each member sees the same data but starts from its own random initialisation and
data order; where the members disagree the data does not pin the answer down, so
their spread is an (epistemic) uncertainty the surrogate and acquisition can use
— the usual query-by-committee recipe for active learning of potentials.

The members are deliberately tiny (one interaction, scalar features, short
cutoff): they are trained inside the loop on a few dozen structures, on a CPU.
Per-element reference energies are fitted by least squares first, so the
networks only learn what composition alone does not explain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pymatgen.core import Structure

from surrogates.mlip.model_file import build_mace, save_mace_weights


def _import_mace():
    torch.serialization.add_safe_globals([slice])  # e3nn 0.4.4 vs torch's weights_only default
    from e3nn import o3
    from mace import modules
    from mace.data import AtomicData, Configuration
    from mace.tools import AtomicNumberTable, torch_geometric

    return o3, modules, AtomicData, Configuration, AtomicNumberTable, torch_geometric


@dataclass
class CommitteeSettings:
    n_models: int = 3
    r_max: float = 4.0
    channels: int = 8
    num_interactions: int = 1
    epochs: int = 40
    batch_size: int = 8
    learning_rate: float = 1e-2
    seed: int = 0
    threads: int | None = 1


class MACECommittee:
    """``fit(structures, energies_per_atom)`` then ``predict(structures) -> (mean, std)`` in eV/atom."""

    def __init__(self, settings: CommitteeSettings | None = None) -> None:
        self.settings = settings or CommitteeSettings()
        self.models: list[torch.nn.Module] = []
        self._z: list[int] = []
        self._e0: np.ndarray | None = None
        #: the members' constructor arguments (``model_file.build_mace``), set by ``fit``
        self.config: dict[str, Any] = {}

    # -- data ---------------------------------------------------------------
    def _graphs(self, structures: Sequence[Structure], energies: Sequence[float] | None = None) -> list:
        _, _, AtomicData, Configuration, AtomicNumberTable, _ = _import_mace()
        table = AtomicNumberTable(self._z)
        graphs = []
        for i, s in enumerate(structures):
            unknown = sorted({site.specie.symbol for site in s if site.specie.Z not in self._z})
            if unknown:
                raise ValueError(f"structure {i} ({s.composition.reduced_formula}) has elements {unknown} "
                                 "the committee was not trained on")
            energy = None if energies is None else float(energies[i]) * len(s)
            cfg = Configuration(
                atomic_numbers=np.array([site.specie.Z for site in s]),
                positions=s.cart_coords,
                properties={"energy": energy},
                property_weights={"energy": 1.0},
                cell=s.lattice.matrix,
                pbc=(True, True, True),
            )
            graphs.append(AtomicData.from_config(cfg, z_table=table, cutoff=self.settings.r_max))
        return graphs

    def _fit_e0(self, structures: Sequence[Structure], energies: np.ndarray) -> np.ndarray:
        """Per-element energies by least squares on total energies (the composition baseline)."""
        counts = np.array([[sum(1 for site in s if site.specie.Z == z) for z in self._z] for s in structures], float)
        totals = energies * counts.sum(axis=1)
        e0, *_ = np.linalg.lstsq(counts, totals, rcond=None)
        return e0

    # -- training -----------------------------------------------------------
    def fit(self, structures: Sequence[Structure], energies_per_atom: Sequence[float]) -> MACECommittee:
        if len(structures) != len(energies_per_atom) or len(structures) < 2:
            raise ValueError(f"need at least 2 structures with one energy each, got {len(structures)} / "
                             f"{len(energies_per_atom)}")
        y = np.asarray(energies_per_atom, dtype=float)
        if not np.all(np.isfinite(y)):
            raise ValueError("energies must be finite numbers")
        if self.settings.threads:
            torch.set_num_threads(self.settings.threads)
        _, _, _, _, _, torch_geometric = _import_mace()
        from mace.modules.utils import compute_avg_num_neighbors

        self._z = sorted({site.specie.Z for s in structures for site in s})
        self._e0 = self._fit_e0(structures, y)
        data = self._graphs(structures, y)
        avg_neighbors = compute_avg_num_neighbors(torch_geometric.dataloader.DataLoader(data, batch_size=len(data)))
        self.config = {
            "r_max": self.settings.r_max, "num_bessel": 4, "num_polynomial_cutoff": 5, "max_ell": 1,
            "interaction": "RealAgnosticResidualInteractionBlock", "num_interactions": self.settings.num_interactions,
            "hidden_irreps": f"{self.settings.channels}x0e", "MLP_irreps": f"{self.settings.channels}x0e",
            "atomic_energies": [float(e) for e in self._e0], "avg_num_neighbors": max(float(avg_neighbors), 1.0),
            "atomic_numbers": list(self._z), "correlation": 2, "gate": "silu",
        }
        self.models = []
        for m in range(self.settings.n_models):
            torch.manual_seed(self.settings.seed * 1000 + m)
            model = build_mace(self.config)
            self._train(model, data, torch_geometric, seed=self.settings.seed * 1000 + m)
            self.models.append(model.eval())
        return self

    def _train(self, model: torch.nn.Module, data: list, torch_geometric, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        loader = torch_geometric.dataloader.DataLoader(
            data, batch_size=self.settings.batch_size, shuffle=True, generator=gen
        )
        opt = torch.optim.Adam(model.parameters(), lr=self.settings.learning_rate)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.settings.epochs)
        model.train()
        for _ in range(self.settings.epochs):
            for batch in loader:
                opt.zero_grad()
                out = model(batch.to_dict(), training=True, compute_force=False)
                n_atoms = (batch.ptr[1:] - batch.ptr[:-1]).to(out["energy"].dtype)
                loss = (((out["energy"] - batch.energy) / n_atoms) ** 2).mean()
                loss.backward()
                opt.step()
            sched.step()

    # -- prediction ---------------------------------------------------------
    def predict_members(self, structures: Sequence[Structure]) -> np.ndarray:
        """Energy per atom from every member: shape ``(n_models, n_structures)``."""
        if not self.models:
            raise RuntimeError("the committee has not been fitted")
        _, _, _, _, _, torch_geometric = _import_mace()
        data = self._graphs(structures)
        loader = torch_geometric.dataloader.DataLoader(data, batch_size=max(1, len(data)), shuffle=False)
        out = np.zeros((len(self.models), len(structures)))
        for batch in loader:
            n_atoms = (batch.ptr[1:] - batch.ptr[:-1]).numpy()
            for m, model in enumerate(self.models):
                energy = model(batch.to_dict(), training=False, compute_force=False)["energy"]
                out[m] = energy.detach().numpy() / n_atoms
        return out

    def save(self, directory: str | Path) -> list[Path]:
        """Write each member as a MACE weights file (:class:`~surrogates.mlip.relax.MACERelaxer` loads it
        with ``weights_only=True``, so no trust setting is needed)."""
        if not self.models:
            raise RuntimeError("the committee has not been fitted")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        return [
            save_mace_weights(model, self.config, directory / f"committee_{m}.model")
            for m, model in enumerate(self.models)
        ]

    def predict(self, structures: Sequence[Structure]) -> tuple[np.ndarray, np.ndarray]:
        """Committee mean and standard deviation (the uncertainty) of energy per atom."""
        members = self.predict_members(structures)
        return members.mean(axis=0), members.std(axis=0, ddof=1) if len(self.models) > 1 else np.zeros(members.shape[1])
