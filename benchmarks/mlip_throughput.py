"""MLIP relaxation throughput: batched against one at a time, in one process and on 1 and 2 Dask workers.

    python benchmarks/mlip_throughput.py [--quick]

Relaxes rattled and strained perovskite cells with CHGNet on the CPU (1 torch thread per process), through
the same code the screening funnel runs (``make_relaxer`` with ``MLIPSettings``' defaults, ``relax_all``):

1. one at a time: ``MLIPSettings(batch_size=1)``, CHGNet's own ``StructOptimizer`` per structure (the baseline);
2. batched: the default ``MLIPSettings()``, one batched optimiser over the pool (``surrogates/mlip/batched.py``);

for 5-atom cells (cubic ABO3) and 20-atom cells (2x2x1 supercells of them), then the batched relaxer on a
``distributed.LocalCluster`` of 1 and of 2 single-threaded worker processes, the pool split evenly between
the workers (each worker loads CHGNet once; that start-up is inside the measured time, as in a campaign).
``--quick`` (under a minute on an idle 2-core box): 5-atom cells only, a few of them, fmax 0.2.

Ends with ``summary: relax_per_s=<batched, all cells> vs_serial=<batched/one at a time>
two_workers_speedup=<2 workers/1 worker>``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from pymatgen.core import Lattice, Structure  # noqa: E402

from surrogates.mlip import MLIPSettings, make_relaxer, relax_all  # noqa: E402

A_SITES = ["Sr", "Ba", "Ca", "K", "Na", "La"]
B_SITES = ["Ti", "Zr", "Nb", "Ta", "Sn", "Hf"]


def pool(n: int, supercell: bool, seed: int) -> list[Structure]:
    """``n`` ABO3 cells (5 atoms, or 20 as 2x2x1 supercells), each strained by ~3% and rattled by 0.05 Å."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a, b = A_SITES[i % len(A_SITES)], B_SITES[(5 * i + i // len(A_SITES)) % len(B_SITES)]
        s = Structure(Lattice.cubic(4.0), [a, b, "O", "O", "O"],
                      [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
        if supercell:
            s.make_supercell([2, 2, 1])
        strained = Lattice(s.lattice.matrix @ (np.eye(3) + 0.03 * rng.standard_normal((3, 3))))
        cart = strained.get_cartesian_coords(s.frac_coords) + 0.05 * rng.standard_normal((len(s), 3))
        out.append(Structure(strained, s.species, cart, coords_are_cartesian=True))
    return out


def settings(quick: bool, **kw) -> MLIPSettings:
    return MLIPSettings(fmax=0.2 if quick else 0.1, **kw)


def relax_rate(structures: list[Structure], s: MLIPSettings) -> tuple[float, list]:
    relaxer = make_relaxer(s.model_path, fmax=s.fmax, steps=s.steps, threads=s.threads, batch_size=s.batch_size)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = relax_all(relaxer, structures)
    return len(structures) / (time.perf_counter() - start), results


_WORKER_RELAXER: dict = {}


def _relax_on_worker(settings_json: str, structures_json: list[str]) -> list[float | None]:
    """Runs in a Dask worker: the worker's relaxer is built once and kept, as a long-lived worker would."""
    import warnings

    from pymatgen.core import Structure

    from surrogates.mlip import MLIPSettings, make_relaxer, relax_all

    if settings_json not in _WORKER_RELAXER:
        s = MLIPSettings.model_validate_json(settings_json)
        _WORKER_RELAXER[settings_json] = make_relaxer(
            s.model_path, fmax=s.fmax, steps=s.steps, threads=s.threads, batch_size=s.batch_size
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = relax_all(_WORKER_RELAXER[settings_json], [Structure.from_str(j, fmt="json") for j in structures_json])
    return [r.energy_per_atom for r in results]


def dask_rate(structures: list[Structure], s: MLIPSettings, workers: int) -> float:
    """Relaxations per second on a fresh LocalCluster, cluster start-up excluded, worker model loading included."""
    from distributed import Client, LocalCluster

    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        chunks = [[x.to_json() for x in structures[i::workers]] for i in range(workers)]
        start = time.perf_counter()
        futures = [client.submit(_relax_on_worker, s.model_dump_json(), chunk, pure=False) for chunk in chunks]
        energies = [e for f in futures for e in f.result()]
        elapsed = time.perf_counter() - start
    if any(e is None for e in energies):
        raise SystemExit("a relaxation failed on a Dask worker")
    return len(structures) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5-atom cells only, a few of them (under a minute)")
    args = parser.parse_args()
    q = args.quick
    import torch

    torch.set_num_threads(1)
    sizes = [(5, False)] if q else [(5, False), (20, True)]
    n_batched = {5: 4 if q else 16, 20: 6}
    n_serial = {5: 1 if q else 3, 20: 1}
    rows, batched_total, batched_time, serial_total, serial_time = [], 0, 0.0, 0, 0.0
    print(f"CHGNet on the CPU, 1 torch thread per process, fmax {settings(q).fmax} eV/Å, "
          f"batch_size {settings(q).batch_size}")
    print(f"{'atoms':>5} {'mode':<22} {'n':>3} {'relax/s':>8} {'mean steps':>10}")
    for atoms, supercell in sizes:
        structures = pool(n_batched[atoms], supercell, seed=atoms)
        rate_s, res_s = relax_rate(structures[: n_serial[atoms]], settings(q, batch_size=1))
        rate_b, res_b = relax_rate(structures, settings(q))
        if not all(r.ok for r in res_s + res_b):
            raise SystemExit(f"a relaxation failed: {[r.error for r in res_s + res_b if not r.ok]}")
        for mode, rate, res in (("one at a time", rate_s, res_s), ("batched", rate_b, res_b)):
            steps = float(np.mean([r.steps for r in res]))
            rows.append((atoms, mode, len(res), rate, steps))
            print(f"{atoms:>5} {mode:<22} {len(res):>3} {rate:>8.3f} {steps:>10.1f}", flush=True)
        batched_total += len(res_b)
        batched_time += len(res_b) / rate_b
        serial_total += len(res_s)
        serial_time += len(res_s) / rate_s
    dask_pool = pool(2 if q else n_batched[5], False, seed=5)
    rate_1 = dask_rate(dask_pool, settings(q), 1)
    print(f"{5:>5} {'batched, 1 Dask worker':<22} {len(dask_pool):>3} {rate_1:>8.3f}", flush=True)
    rate_2 = dask_rate(dask_pool, settings(q), 2)
    print(f"{5:>5} {'batched, 2 Dask workers':<22} {len(dask_pool):>3} {rate_2:>8.3f}", flush=True)
    relax_per_s = batched_total / batched_time
    vs_serial = relax_per_s / (serial_total / serial_time)
    print(f"summary: relax_per_s={relax_per_s:.3f} vs_serial={vs_serial:.2f} two_workers_speedup={rate_2 / rate_1:.2f}")


if __name__ == "__main__":
    main()
