"""The campaign report: a convergence plot (PNG), the batch history (CSV) and a markdown summary.

Everything is read back from the database, so a report can be written for any
campaign at any time, and it shows exactly what the store can justify.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from agent.loop.state import latest_recommendation, model_label
from agent.spec import Campaign
from agent.store import Database
from agent.store.campaigns import get_campaign, load_spec
from agent.store.models import (
    BatchItemRecord,
    BatchRecord,
    CandidateRecord,
    IterationRecord,
    JobRecord,
    MeasurementRecord,
)


@dataclass
class Report:
    """Where the report's files are, and the numbers its summary states."""

    plot: Path
    history: Path
    summary: Path
    best: float | None
    experiments: int
    iterations: int


def batch_history(db: Database, name: str) -> tuple[Campaign, pd.DataFrame]:
    """One row per batch item: iteration, batch decision, candidate, prediction, reason, measured value."""
    with db.reading() as session:
        record = get_campaign(session, name)
        spec = load_spec(record)
        first = spec.objectives[0].property
        rows = session.execute(
            select(IterationRecord.number, BatchRecord, BatchItemRecord, CandidateRecord)
            .join(BatchRecord, BatchRecord.iteration_id == IterationRecord.id)
            .join(BatchItemRecord, BatchItemRecord.batch_id == BatchRecord.id)
            .join(CandidateRecord, CandidateRecord.id == BatchItemRecord.candidate_id)
            .where(IterationRecord.campaign_id == record.id)
            .order_by(IterationRecord.number, BatchRecord.id, BatchItemRecord.rank)
        ).all()
        measured = {
            (m.candidate_id): m
            for m in session.scalars(
                select(MeasurementRecord)
                .join(JobRecord, JobRecord.id == MeasurementRecord.job_id)
                .where(MeasurementRecord.campaign_id == record.id, MeasurementRecord.property == first)
                .order_by(MeasurementRecord.id)
            )
        }
    out = []
    for number, batch, item, candidate in rows:
        m = measured.get(candidate.id)
        params = (candidate.representation or {}).get("params") or {}
        out.append({
            "iteration": number, "batch": batch.id, "batch_status": batch.status, "approver": batch.approver,
            "rank": item.rank, "candidate_id": candidate.id, "dropped": item.dropped,
            **{f"x.{k}": v for k, v in params.items()},
            "acquisition_value": item.acquisition_value, "predicted_mean": item.posterior_mean,
            "predicted_std": item.posterior_std, "reason": item.reason,
            first: None if m is None else m.value, "failed": None if m is None else m.failed,
            "error": None if m is None else m.error,
        })
    return spec, pd.DataFrame(out)


def _best_so_far(spec: Campaign, values: list[float | None]) -> list[float | None]:
    goal = spec.objectives[0]
    best: float | None = None
    out: list[float | None] = []
    for v in values:
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            if goal.goal == "maximize":
                better = best is None or v > best
            elif goal.goal == "minimize":
                better = best is None or v < best
            else:
                assert goal.target is not None
                better = best is None or abs(v - goal.target) < abs(best - goal.target)
            if better:
                best = v
        out.append(best)
    return out


def write_report(db: Database, name: str, out: Path, *, reference: float | None = None,
                 reference_label: str = "known best") -> Report:
    """Write ``convergence.png``, ``batches.csv`` and ``summary.md`` for campaign ``name`` into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    spec, frame = batch_history(db, name)
    first = spec.objectives[0].property
    history_path = out / "batches.csv"
    frame.to_csv(history_path, index=False)
    done = frame[frame[first].notna()] if not frame.empty else frame
    values = [float(v) for v in done[first]] if not done.empty else []
    best_curve = _best_so_far(spec, values)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    xs = list(range(1, len(values) + 1))
    ax.scatter(xs, values, s=12, alpha=0.6, label="measured")
    ax.step(xs, best_curve, where="post", color="C1", label="best so far")
    if reference is not None:
        ax.axhline(reference, color="C2", linestyle="--", label=reference_label)
        low, high = min(values + [reference]), max(values + [reference])
        pad = 0.05 * (high - low or 1.0)
        ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel("experiment")
    ax.set_ylabel(first + (f" ({spec.objectives[0].units})" if spec.objectives[0].units else ""))
    ax.set_title(f"{spec.name}: {spec.objectives[0].goal} {first}")
    ax.legend()
    fig.tight_layout()
    plot_path = out / "convergence.png"
    fig.savefig(plot_path)
    plt.close(fig)

    with db.reading() as session:
        record = get_campaign(session, name)
        iterations = session.scalar(
            select(IterationRecord.number).where(IterationRecord.campaign_id == record.id)
            .order_by(IterationRecord.number.desc()).limit(1)
        ) or 0
        status, reason = record.status, record.stop_reason
        pick = latest_recommendation(session, record.id)
    best = best_curve[-1] if best_curve else None
    experiments = int(frame.loc[~frame["dropped"], "candidate_id"].nunique()) if not frame.empty else 0
    lines = [
        f"# {spec.name}", "", spec.description, "",
        f"- status: **{status}**" + (f" — {reason}" if reason else ""),
        f"- iterations: {iterations}",
        f"- experiments: {experiments} ({len(values)} with a result)",
        f"- best {first}: {_fmt(best)}" + (f" (vs {reference_label} {_fmt(reference)})" if reference is not None else ""),
        "", "![convergence](convergence.png)", "",
        "The batch history (every pick with its reason, prediction and measured value) is in `batches.csv`.",
    ]
    best_row = _best_row(frame, first, best)
    extra = [f"- best candidate: {best_row}"] if best_row else []
    if pick and isinstance(pick.get("content"), dict):
        what = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in pick["content"].items())
        extra.append(f"- model's pick (best posterior mean among measured candidates, {model_label(pick)}): "
                     f"{what}; predicted {_fmt(pick['mean'])} ± {pick['std']:.2g}, "
                     f"measured {_fmt(pick['measured'])} (the model pools nearby measurements; the best single "
                     "reading may be lucky noise)")
    lines[8:8] = extra
    summary_path = out / "summary.md"
    summary_path.write_text("\n".join(lines) + "\n")
    return Report(plot=plot_path, history=history_path, summary=summary_path, best=best,
                  experiments=experiments, iterations=int(iterations))


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.4g}"


def _best_row(frame: pd.DataFrame, prop: str, best: float | None) -> str:
    if best is None or frame.empty:
        return ""
    row = frame[frame[prop] == best].iloc[0]
    params = {c.removeprefix("x."): row[c] for c in frame.columns if c.startswith("x.")}
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
