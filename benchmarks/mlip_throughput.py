"""MLIP relaxation throughput: batched against one at a time, in one process and on 1 and 2 Dask workers.

    python benchmarks/mlip_throughput.py [--quick]

Relaxes rattled and strained perovskite cells with CHGNet on the CPU (1 torch thread per process), through
the same code the screening funnel runs (``make_relaxer`` with ``MLIPSettings``' defaults, ``relax_all``):

1. one at a time: ``MLIPSettings(batch_size=1)``, CHGNet's own ``StructOptimizer`` per structure (the baseline);
2. batched: the default ``MLIPSettings()``, one batched optimiser over the pool (``surrogates/mlip/batched.py``,
   BFGS over the Fréchet cell filter from the elastic starting Hessian, ``surrogates/mlip/bfgs.py``);
3. batched, ASE BFGS: ``MLIPSettings(optimizer="bfgs")``, BFGS from ASE's starting Hessian (70 · I);
4. batched, FIRE: ``MLIPSettings(optimizer="fire")``, the same optimiser as the baseline, batched;
5. (full run) batched with 2 torch threads in one process (``MLIPSettings(threads=2)``);

for 5-atom cells (cubic ABO3) and 20-atom cells (2x2x1 supercells of them), then the batched relaxer on a
``distributed.LocalCluster`` of 1 and of 2 single-threaded worker processes over the same cells of both sizes,
split evenly between the workers, through the screen's own chunk function (each worker loads CHGNet once and
keeps it, as a campaign's long-lived workers do; that load is outside the measured time), with the malloc
settings matloop gives its workers (``matloop.compute.glibc_malloc_in_workers``), and (full run) the 20-atom
cells alone on the 2 workers, the issue's hardest case, in two forms: the screen's (64 cells in the screen's fixed
chunks of ``RELAX_CHUNK`` = 32, one per worker, as a screen of a large pool hands them out) and the earlier
6-cell form (three cells per worker, kept for comparison: a worker's time is the sum of its cells' steps, so one
slow cell among three sets the row).
``--quick`` (under a minute on an idle 2-core box): 5-atom cells only, a few of them, fmax 0.2.
Each row gives wall-clock relaxations per second, the process's CPU seconds per relaxation (less inflated by a
busy machine), the mean optimiser steps, and the largest energy difference from the one-at-a-time results on the
cells both relaxed.

Ends with ``summary: relax_per_s=<batched, all cells, 2 Dask workers: the 2 cores> vs_serial=<batched/one at a
time, one process each> two_workers_speedup=<2 workers/1 worker> relax_per_s_20atom=<20-atom cells alone, 2 Dask
workers, the screen's chunks; the full run only> relax_per_s_20atom_6=<the same, the earlier 6-cell form>``.
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


def build(s: MLIPSettings):
    """The relaxer a campaign's screen builds from these settings."""
    return make_relaxer(s.model_path, fmax=s.fmax, steps=s.steps, threads=s.threads, batch_size=s.batch_size,
                        optimizer=s.optimizer)


def relax_rate(structures: list[Structure], s: MLIPSettings) -> tuple[float, float, list]:
    """Relaxations per second (wall) and process CPU seconds per relaxation (all of its threads)."""
    relaxer = build(s)
    start, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = relax_all(relaxer, structures)
    n = len(structures)
    return n / (time.perf_counter() - start), (time.process_time() - cpu) / n, results


def _relax_chunk_timed(handle, structures: list[Structure]) -> tuple[list[float | None], float, int]:
    """One chunk through the screen's own chunk function, the worker's CPU seconds for it and the chunk's steps."""
    from surrogates.mlip.screen import relax_chunk

    cpu = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = relax_chunk(handle, structures)
    return [r.energy_per_atom for r in results], time.process_time() - cpu, sum(r.steps for r in results)


def dask_rate(structures: list[Structure], s: MLIPSettings, workers: int,
              chunk: int | None = None) -> tuple[float, float, list[int]]:
    """Relaxations per second on a LocalCluster of ``workers`` single-threaded processes, their CPU seconds
    per relaxation, and the optimiser steps each worker took.

    The chunks go through the screen's own path (``relax_chunk`` with a ``RelaxerHandle``, which a worker turns
    into its one CHGNet, built once and kept): each worker first relaxes one cell untimed, so what is measured is
    a long-lived worker's throughput (a campaign's workers load the potential once, not per step). Without
    ``chunk`` the pool is split evenly between the workers, one chunk each, the cell sizes mixed alike; with it,
    the pool is cut into consecutive chunks of that size (as ``matloop.compute.map_chunked`` cuts a screen's),
    dealt to the workers in turn.
    """
    from distributed import Client, LocalCluster

    from matloop.compute import glibc_malloc_in_workers
    from surrogates.mlip.screen import RelaxerHandle, build_relaxer

    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    handle = RelaxerHandle(build_relaxer(s), s)  # pickles as its settings: the worker builds the potential
    with glibc_malloc_in_workers(), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        addresses = list(client.scheduler_info()["workers"])
        warm = [client.submit(_relax_chunk_timed, handle, structures[:1], workers=[a], pure=False) for a in addresses]
        client.gather(warm)
        if chunk is None:
            parts = [structures[i::workers] for i in range(workers)]
        else:
            parts = [structures[i:i + chunk] for i in range(0, len(structures), chunk)]
        owners = [addresses[i % workers] for i in range(len(parts))]
        start = time.perf_counter()
        futures = [client.submit(_relax_chunk_timed, handle, part, workers=[a], pure=False)
                   for part, a in zip(parts, owners, strict=True)]
        answers = client.gather(futures)
        elapsed = time.perf_counter() - start
    energies = [e for a in answers for e in a[0]]
    if any(e is None for e in energies):
        raise SystemExit("a relaxation failed on a Dask worker")
    steps = [sum(a[2] for a, o in zip(answers, owners, strict=True) if o == w) for w in addresses]
    return len(structures) / elapsed, sum(a[1] for a in answers) / len(structures), steps


#: 20-atom cells in the screen-like row: two of the screen's chunks, one per worker
N_SCREEN_20 = 64


def dask_row(atoms: str, mode: str, n: int, rate: float, cpu: float, steps: list[int]) -> None:
    """A Dask row; its last column is the optimiser steps each worker took (their spread is the load imbalance)."""
    print(f"{atoms:>5} {mode:<25} {n:>3} {rate:>8.3f} {cpu:>11.2f} {sum(steps) / n:>10.1f} {'':>15} "
          f"steps per worker {'/'.join(map(str, steps))}", flush=True)


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
    modes = [("one at a time", {"batch_size": 1}), ("batched", {}), ("batched, ASE BFGS", {"optimizer": "bfgs"}),
             ("batched, FIRE", {"optimizer": "fire"})]
    batched_total, batched_time, serial_total, serial_time = 0, 0.0, 0, 0.0
    print(f"CHGNet on the CPU, 1 torch thread per process unless said, fmax {settings(q).fmax} eV/Å, "
          f"batch_size {settings(q).batch_size}, batched optimiser {settings(q).optimizer}")
    print(f"{'atoms':>5} {'mode':<25} {'n':>3} {'relax/s':>8} {'cpu s/relax':>11} {'mean steps':>10} {'max dE meV/atom':>15}")
    for atoms, supercell in sizes:
        structures = pool(n_batched[atoms], supercell, seed=atoms)
        reference: list = []
        # one process with 2 torch threads against 2 processes (the Dask rows), cells of both sizes
        for mode, kw in modes + ([("batched, 2 torch threads", {"threads": 2})] if not q else []):
            cells = structures[: n_serial[atoms]] if kw.get("batch_size") == 1 else structures
            rate, cpu, res = relax_rate(cells, settings(q, **kw))
            if not all(r.ok for r in res):
                raise SystemExit(f"a relaxation failed: {[r.error for r in res if not r.ok]}")
            reference = reference or res
            d_e = 1000 * max(abs(r.energy_per_atom - s.energy_per_atom) for r, s in zip(res, reference, strict=False))
            steps = float(np.mean([r.steps for r in res]))
            print(f"{atoms:>5} {mode:<25} {len(res):>3} {rate:>8.3f} {cpu:>11.2f} {steps:>10.1f} {d_e:>15.2f}", flush=True)
            if mode == "one at a time":
                serial_total, serial_time = serial_total + len(res), serial_time + len(res) / rate
            elif mode == "batched":
                batched_total, batched_time = batched_total + len(res), batched_time + len(res) / rate
    # the same cells as the one-process batched rows, both sizes, on 1 and on 2 workers (2 cores)
    dask_pool = [c for atoms, supercell in sizes for c in pool(2 if q else n_batched[atoms], supercell, seed=atoms)]
    rate_1, cpu_1, steps_1 = dask_rate(dask_pool, settings(q), 1)
    dask_row("all", "batched, 1 Dask worker", len(dask_pool), rate_1, cpu_1, steps_1)
    rate_2, cpu_2, steps_2 = dask_rate(dask_pool, settings(q), 2)
    dask_row("all", "batched, 2 Dask workers", len(dask_pool), rate_2, cpu_2, steps_2)
    large = ""
    if not q:  # the hardest case: 20-atom cells only, on the 2 cores; as a screen chunks them, and 6 cells
        from surrogates.mlip.screen import RELAX_CHUNK

        rate_20, cpu_20, steps_20 = dask_rate(pool(N_SCREEN_20, True, seed=20), settings(q), 2, chunk=RELAX_CHUNK)
        dask_row("20", "screen chunks, 2 workers", N_SCREEN_20, rate_20, cpu_20, steps_20)
        rate_6, cpu_6, steps_6 = dask_rate(pool(n_batched[20], True, seed=20), settings(q), 2)
        dask_row("20", "batched, 2 Dask workers", n_batched[20], rate_6, cpu_6, steps_6)
        large = f" relax_per_s_20atom={rate_20:.3f} relax_per_s_20atom_6={rate_6:.3f}"
    one_process = batched_total / batched_time
    vs_serial = one_process / (serial_total / serial_time)
    print(f"batched in one process (1 core): {one_process:.3f} relax/s; on 2 Dask workers (2 cores): {rate_2:.3f}"
          + (f"; 20-atom cells alone on 2 Dask workers: {rate_20:.3f} ({N_SCREEN_20} cells in the screen's chunks), "
             f"{rate_6:.3f} (6 cells)" if large else ""))
    print(f"summary: relax_per_s={rate_2:.3f} vs_serial={vs_serial:.2f} two_workers_speedup={rate_2 / rate_1:.2f}"
          + large)

if __name__ == "__main__":
    main()
