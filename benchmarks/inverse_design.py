"""Inverse-design benchmark: MatDesINNe (cINN) on MoS2 band gaps, Janus on microstructure conductivity.

    python benchmarks/inverse_design.py [--quick] [--threads N] [--only cinn|janus]

Part 1 trains on 70 % of the shared MoS2 data; the other 30 % trains an *independent*
validator (different rows, different network, different seed) that scores every
generated design — the localisation surrogate never grades its own work.  The paper's
numbers are validated by its own surrogate; we print that column too ("self MAE").
Part 2 generates Gaussian-random-field microstructures, labels them with the
finite-volume solver, trains Janus, and checks every inverse design with the solver.
Ends with the ``summary:`` line of issue 9.  Timings are wall-clock on this machine,
which other work shares; ``--threads 1`` is the default because on a loaded 2-core box
two torch threads ran ~8× slower than one (measured while writing this).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generators.inverse import (  # noqa: E402
    FlowTraining,
    ForwardINN,
    Inversion,
    JanusTraining,
    MatDesINNe,
    MLPRegressor,
    in_bounds,
    train_janus,
)
from generators.inverse.image_regressor import ImageEnsemble, ImageEnsembleTraining, train_image_ensemble  # noqa: E402
from generators.inverse.janus import JanusModel, calibrate_fraction, candidates, select_designs  # noqa: E402
from lab_adapters.simlab.physics import effective_conductivity  # noqa: E402
from lab_adapters.simlab.physics.dataset import microstructure_dataset  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mos2_bandgap"
PAPER_MAE = {0.0: 0.020, 0.5: 0.013, 1.0: 0.015}
PAPER_MAE_RAW = {0.0: 0.063, 0.5: 0.219, 1.0: 0.193}


def _table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def _uniqueness(designs: np.ndarray, train: np.ndarray, bounds: np.ndarray) -> float:
    """Share of designs farther than 1e-3 (box-normalised) from every training row."""
    span = bounds[:, 1] - bounds[:, 0]
    d, t = torch.as_tensor((designs - bounds[:, 0]) / span), torch.as_tensor((train - bounds[:, 0]) / span)
    nearest = torch.cat([torch.cdist(chunk, t).min(1).values for chunk in d.split(2048)])
    return float((nearest > 1e-3).float().mean())


def _coverage(designs: np.ndarray, bounds: np.ndarray, bins: int = 10) -> float:
    """Mean over parameters of the share of ``bins`` equal slices of the range that hold a design."""
    u = np.clip(((designs - bounds[:, 0]) / (bounds[:, 1] - bounds[:, 0]) * bins).astype(int), 0, bins - 1)
    return float(np.mean([len(np.unique(u[:, j])) / bins for j in range(u.shape[1])]))


def near_target_error(predict, x: np.ndarray, y: np.ndarray, rows: np.ndarray, target: float,
                      window: float = 0.02) -> tuple[int, float]:
    """How many of ``rows`` have a measured gap within ``window`` of ``target``, and ``predict``'s mean error on them.

    This is the floor of an "indep MAE": a model that errs this much on measured rows near the target cannot
    grade designs for that target more finely.
    """
    near = rows[np.abs(y[rows] - target) <= window]
    return len(near), float(np.mean(np.abs(predict(x[near]) - y[near]))) if len(near) else float("nan")


def mos2_split(seed: int, quick: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The MoS2 data, its 70 % training / 30 % held-out rows (3,000 rows in all when ``quick``), and its box.

    The held-out rows train the independent validator, never the generator.
    """
    x = np.loadtxt(DATA / "data_x.csv", delimiter=",")
    y = np.loadtxt(DATA / "data_y.csv", delimiter=",")
    perm = np.random.default_rng(seed).permutation(len(x))
    if quick:
        perm = perm[:3000]
    cut = int(0.7 * len(perm))
    bounds = np.stack([x.min(0), x.max(0)], axis=1)  # the sampling box of the data set
    return x, y, perm[:cut], perm[cut:], bounds


def independent_validator(x: np.ndarray, y: np.ndarray, held_out: np.ndarray, seed: int, quick: bool = False
                          ) -> MLPRegressor:
    """The benchmark's grader: an MLP of its own width and seed, fitted on the held-out rows only."""
    return MLPRegressor(x.shape[1], hidden=96).fit(x[held_out], y[held_out], epochs=100 if quick else 300,
                                                  seed=seed + 7)


def run_cinn(quick: bool, seed: int) -> tuple[dict[float, float], float]:
    x, y, tr, ho, bounds = mos2_split(seed, quick)
    n = 1000 if quick else 10_000
    training = FlowTraining(epochs=15 if quick else 40, seed=seed)

    t0 = time.perf_counter()
    pipe = MatDesINNe(bounds, training, tolerance=0.1, surrogate_epochs=40 if quick else 200).fit(x[tr], y[tr])
    fit_s = time.perf_counter() - t0
    plain = ForwardINN(training).fit(x[tr], y[tr])
    validator = independent_validator(x, y, ho, seed, quick)
    val_mae = float(np.mean(np.abs(validator.predict(x[tr]) - y[tr])))
    sur_mae = float(np.mean(np.abs(pipe._predict(x[ho]) - y[ho])))
    print(f"cINN + surrogate ensemble trained on {len(tr)} rows in {fit_s:.1f} s; "
          f"surrogate MAE on held-out rows {sur_mae:.3f} eV; independent validator ({len(ho)} held-out rows) "
          f"MAE on training rows {val_mae:.3f} eV (its own error floor)")

    rows: list[list[str]] = []
    final_mae: dict[float, float] = {}
    times: list[float] = []
    for target in (0.0, 0.5, 1.0):
        results = {}
        t = time.perf_counter()
        results["INN (forward)"] = (plain.sample(target, n, seed=seed + 1), time.perf_counter() - t)
        t = time.perf_counter()
        results["cINN raw"] = (pipe.raw_samples(target, n, seed=seed + 1), time.perf_counter() - t)
        t = time.perf_counter()
        gen = pipe.generate(target, n, seed=seed + 1)
        dt = time.perf_counter() - t
        results["cINN + DS + loc"] = (gen.designs, dt)
        times.append(dt * 10_000 / max(len(gen.designs), 1))
        for name, (designs, secs) in results.items():
            inside = in_bounds(designs, bounds)
            made = designs[inside]  # only designs inside the data's box can be made (and graded fairly)
            mae = float(np.mean(np.abs(validator.predict(made) - target))) if len(made) else float("nan")
            self_mae = float(np.mean(np.abs(pipe._predict(made) - target))) if len(made) else float("nan")
            if name == "cINN + DS + loc":
                final_mae[target] = mae
            paper = PAPER_MAE[target] if name == "cINN + DS + loc" else PAPER_MAE_RAW[target] if name == "cINN raw" else None
            rows.append([f"{target:.1f}", name, str(len(designs)), f"{mae:.3f}", f"{self_mae:.3f}",
                         "-" if paper is None else f"{paper:.3f}", f"{secs:.1f}", f"{inside.mean():.0%}",
                         f"{_uniqueness(designs, x[tr], bounds):.0%}", f"{_coverage(designs, bounds):.2f}"])
    _table(f"MoS2 band gap: {n} designs per target (MAE in eV vs the target, over the designs inside the box)",
           ["target", "method", "n", "indep MAE", "self MAE", "paper MAE", "time s", "in box", "unique", "coverage"],
           rows)
    # How well can the independent validator check a design at all?  Score it on *measured* training rows whose
    # true gap is within ±0.02 eV of the target: a design's "indep MAE" cannot be trusted below this level.
    floor_rows = []
    for target in (0.0, 0.5, 1.0):
        n_near, floor = near_target_error(validator.predict, x, y, tr, target)
        floor_rows.append([f"{target:.1f}", str(n_near), f"{floor:.3f}", f"{final_mae[target]:.3f}"])
    _table("Validator's own error on measured rows with a gap within ±0.02 eV of the target (the floor of 'indep MAE')",
           ["target", "rows", "validator MAE vs measured gap", "cINN + DS + loc indep MAE"], floor_rows)
    return final_mae, float(np.mean(times))


def _decoded_training_images(model: JanusModel, images: np.ndarray, values: np.ndarray, n_targets: int,
                             inversion: Inversion, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Solver-labelled binary images from the decoder's distribution, for training the score model.

    Targets are drawn at random (their own seed, not the benchmark's evenly spaced
    targets); each start's soft decoding is thresholded at three random phase-1 counts
    within ±10 % of the 0.5 cut.  This is training data made before any design is asked
    for; no reported design is ever solved before it is reported.
    """
    rng = np.random.default_rng(seed)
    lo, hi = np.percentile(values, [2, 98])
    out, labels = [], []
    for target in rng.uniform(lo, hi, n_targets):
        soft, _ = candidates(model, float(target), images, values, cfg=inversion)
        for sf in soft:
            order = np.argsort(sf, axis=None)[::-1]
            m0 = int((sf > 0.5).sum())
            for f in rng.uniform(0.9, 1.1, 3):
                flat = np.zeros(sf.size)
                flat[order[: int(np.clip(round(m0 * f), 1, sf.size - 1))]] = 1.0
                out.append(flat.reshape(sf.shape))
                labels.append(effective_conductivity(out[-1]))
    return np.stack(out), np.array(labels)


def _score_models(model: JanusModel, train, quick: bool, seed: int, inversion: Inversion
                  ) -> dict[str, ImageEnsemble]:
    """Train the two binary-image ensembles (learned only; with the coarse-grid physics prior)."""
    t0 = time.perf_counter()
    extra = microstructure_dataset(300 if quick else 4000, seed=seed + 2)
    dec_x, dec_y = _decoded_training_images(model, train.images, train.conductivity, 3 if quick else 24, inversion,
                                            seed + 3)
    x = np.concatenate([train.images, extra.images, dec_x])
    y = np.concatenate([train.conductivity, extra.conductivity, dec_y])
    data_s = time.perf_counter() - t0
    out: dict[str, ImageEnsemble] = {}
    for name, prior in (("CNN ensemble", False), ("CNN + coarse prior", True)):
        t = time.perf_counter()
        out[name], _ = train_image_ensemble(x, y, ImageEnsembleTraining(epochs=6 if quick else 15, physics_prior=prior,
                                                                        seed=seed))
        print(f"score model '{name}': {len(x)} solver-labelled binary images ({len(dec_x)} of them thresholded "
              f"decodings; data {data_s:.1f} s), trained in {time.perf_counter() - t:.1f} s")
    return out


def run_janus(quick: bool, seed: int) -> tuple[float, float, float]:
    n_train, n_test, n_targets = (200, 50, 4) if quick else (1200, 300, 20)
    t0 = time.perf_counter()
    train = microstructure_dataset(n_train, seed=seed)
    test = microstructure_dataset(n_test, seed=seed + 1)
    data_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cfg = JanusTraining(width=16, epochs=4 if quick else 20, batch_size=32, lr=3e-3, seed=seed)
    model, history = train_janus(train.images, train.conductivity, cfg)
    train_s = time.perf_counter() - t0
    pred = model.predict_images(test.images)
    y = test.conductivity
    r2 = float(1 - np.sum((pred - y) ** 2) / np.sum((y - y.mean()) ** 2))
    pixel_err = float(np.mean(model.reconstruct(test.images) != test.images))
    print(f"\nJanus: {n_train} training / {n_test} test microstructures (64×64, k0=1, k1=10) generated and "
          f"solved in {data_s:.1f} s; trained {cfg.epochs} epochs in {train_s:.1f} s; "
          f"forward R² {r2:.3f} (paper 0.98); pixelwise reconstruction error {pixel_err:.2%} (paper < 5 %)")

    # Starts are measured images at least 3 % off the target, so the descent itself must move the property.
    inversion = Inversion(steps=40 if quick else 100, n_starts=4 if quick else 16, min_start_gap=0.03)
    scorers = _score_models(model, train, quick, seed, inversion)
    for name, scorer in scorers.items():
        rel = np.abs(scorer.predict(test.images) - y) / y
        print(f"score model '{name}' on the {n_test} test images: median relative error {np.median(rel):.2%}, "
              f"within 1 %: {np.mean(rel <= 0.01):.0%}")

    lo, hi = np.percentile(train.conductivity, [5, 95])
    rows: list[list[str]] = []
    errs: dict[str, list[float]] = {k: [] for k in ("head", *scorers, "solver-calibrated")}
    for target in np.linspace(lo, hi, n_targets):
        target = float(target)
        t = time.perf_counter()
        soft, head_pred = candidates(model, target, train.images, train.conductivity, cfg=inversion)
        gap = np.abs(train.conductivity - target)
        row = [f"{target:.3f}", f"{float(np.min(gap[gap >= 0.03 * target])) / target:.2%}"]
        picked = {"head": select_designs(model, soft, head_pred, target)[0][0]}
        for name, scorer in scorers.items():
            picked[name] = select_designs(model, soft, head_pred, target, score_model=scorer)[0][0]
        secs = time.perf_counter() - t  # design time (model-only); the solver below only grades
        # The head's design, thresholded where the *solver* (one lab measurement per step) meets the target.
        picked["solver-calibrated"] = calibrate_fraction(picked["head"], effective_conductivity, target, iters=14)
        for name, image in picked.items():
            k = effective_conductivity(image)
            errs[name].append(abs(k - target) / target)
            row += [f"{k:.3f}", f"{errs[name][-1]:.2%}"]
        rows.append(row + [f"{secs:.1f}"])
    header = ["target k", "best start err"]
    for name in errs:
        header += [f"{name} k", "rel err"]
    _table("Janus inverse design (every design's conductivity from the finite-volume solver, after it was chosen)",
           header + ["design s"], rows)
    for name, e in errs.items():
        e = np.array(e)
        kind = "uses the solver to pick the threshold" if name == "solver-calibrated" else "model-only"
        print(f"{name} ({kind}): median relative error {np.median(e):.2%}, within 1 %: {np.mean(e <= 0.01):.0%} "
              f"of targets")
    best = np.array(errs["CNN + coarse prior"])
    return r2, float(np.median(best)), float(np.mean(best <= 0.01))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data and short training (CI smoke form)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("cinn", "janus"), help="run one part (no summary line)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    if args.only == "janus":
        run_janus(args.quick, args.seed)
        return
    mae, s_10k = run_cinn(args.quick, args.seed)
    if args.only == "cinn":
        return
    r2, rel_err, within = run_janus(args.quick, args.seed)
    print(f"\ntotal {time.perf_counter() - start:.1f} s ({'quick' if args.quick else 'full'}, {args.threads} thread(s))")
    print(f"summary: cinn_mae_0={mae[0.0]:.4f} cinn_mae_05={mae[0.5]:.4f} cinn_mae_1={mae[1.0]:.4f} "
          f"cinn_s_10k={s_10k:.1f} janus_r2={r2:.4f} janus_inverse_rel_err={rel_err:.4f}")


if __name__ == "__main__":
    main()
