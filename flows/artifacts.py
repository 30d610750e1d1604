"""What a campaign shows in the Prefect UI: its batches, model metrics, budget progress and final summary.

Artifacts are a view; the database remains the record.  Every artifact is
rebuilt from the store, so a resumed run (another flow run, another process)
publishes the same views: the budget progress artifact is looked up by its key
and updated in place (one per campaign, not one per run), and the batch table is
published again under its key once the gate has decided, so the UI never shows
a decided batch as "proposed".  Publishing never fails a campaign: a failed
artifact call is logged and skipped.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import re
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import select

from agent.loop.context import LoopContext
from agent.loop.state import candidate_from_record, latest_recommendation, model_label, modelled_properties, progress
from agent.store.ledger import LedgerTotals, ledger_totals
from agent.store.models import BatchRecord, MeasurementRecord, ModelVersionRecord

log = logging.getLogger(__name__)


def artifact_key(campaign: str, what: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{campaign}-{what}".lower()).strip("-")


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def units_of(ctx: LoopContext, prop: str) -> str | None:
    """The units of ``prop``: as the campaign file states them, else as the lab last reported them."""
    for objective in ctx.campaign.objectives:
        if objective.property == prop and objective.units:
            return objective.units
    with ctx.db.reading() as session:
        return session.scalar(
            select(MeasurementRecord.units)
            .where(MeasurementRecord.campaign_id == ctx.campaign_id, MeasurementRecord.property == prop,
                   MeasurementRecord.units.is_not(None))
            .order_by(MeasurementRecord.id.desc())
            .limit(1)
        )


def with_units(value: Any, units: str | None) -> str:
    text = fmt(value)
    return text if units is None or text == "–" else f"{text} {units}"


def _header(prop: str, units: str | None, what: str) -> str:
    return f"{what} {prop}" + (f" ({units})" if units else "")


# ----------------------------------------------------------------------------------------------- the batch


def batch_title(ctx: LoopContext, batch: BatchRecord) -> str:
    """One line saying where the batch stands: proposed and waiting, or decided by whom, dropping what."""
    size = len(batch.items)
    if batch.status == "proposed":
        return (f"batch {batch.id} of {ctx.campaign.name}: {size} candidates proposed (approval: {batch.policy}); "
                f"`matloop approve {ctx.campaign.name} --by NAME` or the run's form decides")
    dropped = [item.candidate_id for item in batch.items if item.dropped]
    # a batch moves on from its decision (dispatched, complete); the decision is what a person looks for
    decided = batch.status in ("approved", "edited", "rejected")
    decision = batch.status if decided else ("edited" if dropped else "approved")
    who = f" by {batch.approver}" if batch.approver else ""
    text = f"batch {batch.id} of {ctx.campaign.name}: {decision}{who}"
    if dropped:
        text += f", dropped candidates {dropped}"
    if batch.note:
        text += f" — {batch.note}"
    return text if decided else f"{text} ({batch.status})"


def batch_table(ctx: LoopContext, batch_id: int) -> tuple[list[dict[str, str]], str]:
    """The batch as table rows (short columns first, the reason before the long candidate text) and its title.

    Predictions carry their units in the column header (the standard deviation, "±", follows its mean; it names
    the property only when there are several); a dropped candidate says so in its "kept" column.
    """
    props = modelled_properties(ctx.campaign)
    units = {p: units_of(ctx, p) for p in props}
    first = ctx.campaign.objectives[0].property
    with ctx.db.reading() as session:
        batch = session.get(BatchRecord, batch_id)
        if batch is None:
            raise LookupError(f"no batch {batch_id}")
        title = batch_title(ctx, batch)
        decided = batch.status != "proposed"
        rows: list[dict[str, str]] = []
        for item in batch.items:
            row = {"rank": str(item.rank), "candidate id": str(item.candidate_id)}
            if decided:
                row["kept"] = "dropped" if item.dropped else "yes"
            predictions = item.predictions or {}
            for p in props:
                mean = (predictions.get(p) or {}).get("mean", item.posterior_mean if p == first else None)
                std = (predictions.get(p) or {}).get("std", item.posterior_std if p == first else None)
                row[_header(p, units[p], "predicted")] = fmt(mean)
                row["±" + (f" ({units[p]})" if units[p] else "") + ("" if len(props) == 1 else f" {p}")] = fmt(std)
            if ctx.campaign.is_multifidelity:  # where the pick is measured; the initial design's, at every fidelity
                row["fidelity"] = item.fidelity or "every fidelity"
            row["acquisition"] = fmt(item.acquisition_value)
            row["reason"] = item.reason or "–"
            row["candidate"] = candidate_from_record(item.candidate).label(120)
            rows.append(row)
    return rows, title


# ----------------------------------------------------------------------------------------------- the model

#: How each cross-validated metric reads in words: (label, whether it has the property's units, what good is).
METRIC_WORDS: dict[str, tuple[str, bool, str]] = {
    "rmse": ("cross-validated RMSE", True, "lower is better"),
    "mae": ("cross-validated mean absolute error", True, "lower is better"),
    "r2": ("cross-validated R²", False, "1 is perfect, 0 is no better than the mean"),
    "nll": ("negative log-likelihood per point", False, "lower is better: the predicted spread fits the errors"),
    "cov68": ("68 % interval coverage", False, "ideal 0.68"),
    "cov95": ("95 % interval coverage", False, "ideal 0.95"),
    "spearman_err_std": ("rank correlation of |error| with predicted std", False,
                         "higher is better: the model knows where it is unsure"),
    "n": ("points cross-validated", False, ""),
}


def _metric_sentence(name: str, value: Any, units: str | None) -> str:
    label, has_units, good = METRIC_WORDS.get(name, (name, False, ""))
    shown = with_units(value, units if has_units else None)
    if name == "n" and isinstance(value, float) and value.is_integer():
        shown = str(int(value))
    return f"{label} {shown}" + (f" ({good})" if good else "")


def metrics_markdown(ctx: LoopContext, model_version_id: int | None) -> str:
    """The model version's cross-validated metrics in words, per property, with units."""
    if model_version_id is None:
        return f"### {ctx.campaign.name}: no model yet (initial design: candidates spread over the space)"
    props = modelled_properties(ctx.campaign)
    with ctx.db.reading() as session:
        version = session.get(ModelVersionRecord, model_version_id)
        if version is None:
            raise LookupError(f"no model version {model_version_id}")
        lines = [
            f"### {ctx.campaign.name}: model version {version.id} ({version.kind}, {version.n_train} training points)",
            "", f"{version.reason}", "",
        ]
        metrics = dict(version.metrics or {})
    for key, values in sorted(metrics.items()):
        # outputs are stored by column number, in the order of the campaign's modelled properties
        prop = props[int(key)] if key.isdigit() and int(key) < len(props) else key
        if not isinstance(values, dict):
            lines.append(f"- {_metric_sentence(key, values, None)}")
            continue
        units = units_of(ctx, prop)
        lines.append(f"**{prop}**" + (f" ({units})" if units else ""))
        lines.append("")
        order = [k for k in METRIC_WORDS if k in values] + sorted(k for k in values if k not in METRIC_WORDS)
        lines.extend(f"- {_metric_sentence(k, values[k], units)}" for k in order)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------------------------- the budget


def budget_fraction(ctx: LoopContext) -> tuple[float, str]:
    """Share of the budget spent (the most-spent limit), and a sentence saying what, with the ledger's totals."""
    with ctx.db.reading() as session:
        snap = progress(session, ctx.campaign, ctx.campaign_id)
        totals = ledger_totals(session, ctx.campaign_id)
    b = ctx.campaign.budget
    parts: list[tuple[float, str]] = []
    if b.max_experiments:
        parts.append((snap.experiments / b.max_experiments, f"{snap.experiments}/{b.max_experiments} experiments"))
    if b.max_cost:
        parts.append((snap.cost / b.max_cost, f"cost {snap.cost:g}/{b.max_cost:g} {b.currency}"))
    if b.max_iterations:
        parts.append((snap.completed_iterations / b.max_iterations,
                      f"{snap.completed_iterations}/{b.max_iterations} iterations"))
    if b.wall_clock:
        elapsed = timedelta(seconds=int(snap.elapsed.total_seconds()))
        parts.append((snap.elapsed / b.wall_clock, f"{elapsed} of {b.wall_clock}"))
    fraction = min(max((p for p, _ in parts), default=0.0), 1.0)
    prop = ctx.campaign.objectives[0].property
    best = "" if snap.best is None else f"; best {prop} {with_units(snap.best, units_of(ctx, prop))}"
    return fraction, ", ".join(text for _, text in parts) + best + ledger_sentence(totals, b.currency)


def ledger_sentence(totals: LedgerTotals, currency: str) -> str:
    """The ledger's spend by fidelity and adapter, for the budget artifact (empty before the first dispatch)."""
    if not totals.jobs:
        return ""
    groups = ", ".join(f"{row.key} {row.net:g}" for row in totals.by_fidelity_adapter)
    refunded = f" after {totals.refunded:g} refunded" if totals.refunded else ""
    return f"; ledger: {totals.net:g} {currency} spent{refunded} (fidelity / adapter: {groups})"


def latest_artifact_id(key: str, kind: str) -> UUID | None:
    """The newest artifact under ``key`` if it is of ``kind``: how a resumed run finds the campaign's progress bar."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

    with get_client(sync_client=True) as client:
        latest = client.read_latest_artifacts(
            artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=[key])), limit=1
        )
    if not latest or latest[0].type != kind:
        return None
    return latest[0].latest_id


def publish_progress(ctx: LoopContext) -> None:
    """Update the campaign's one budget progress artifact, creating it only if the API has none under its key."""
    from prefect.artifacts import create_progress_artifact, update_progress_artifact

    fraction, text = budget_fraction(ctx)
    key = artifact_key(ctx.campaign.name, "budget")
    existing = latest_artifact_id(key, "progress")
    if existing is None:
        create_progress_artifact(progress=100 * fraction, key=key, description=f"budget spent: {text}")
    else:
        update_progress_artifact(existing, progress=100 * fraction, description=f"budget spent: {text}")


# ----------------------------------------------------------------------------------------------- the summary


def convergence_png(ctx: LoopContext) -> bytes | None:
    """Every measured value of the first objective in order, and the best so far, as a PNG (None before any)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    objective = ctx.campaign.objectives[0]
    with ctx.db.reading() as session:
        values = [float(v) for v in session.scalars(
            select(MeasurementRecord.value)
            .where(MeasurementRecord.campaign_id == ctx.campaign_id, MeasurementRecord.property == objective.property,
                   MeasurementRecord.failed.is_(False), MeasurementRecord.value.is_not(None))
            .order_by(MeasurementRecord.id)
        ) if math.isfinite(v)]
    if not values:
        return None
    best: list[float] = []
    for v in values:
        if not best:
            best.append(v)
        elif objective.goal == "maximize":
            best.append(max(best[-1], v))
        elif objective.goal == "minimize":
            best.append(min(best[-1], v))
        else:
            target = float(objective.target or 0.0)
            best.append(v if abs(v - target) < abs(best[-1] - target) else best[-1])
    fig = Figure(figsize=(6.4, 3.6), dpi=100)  # no pyplot: no global state in a flow that runs in threads
    ax = fig.subplots()
    xs = list(range(1, len(values) + 1))
    ax.scatter(xs, values, s=12, alpha=0.6, label="measured")
    ax.step(xs, best, where="post", color="C1", label="best so far")
    if objective.goal == "target" and objective.target is not None:
        ax.axhspan(objective.target - (objective.tolerance or 0.0), objective.target + (objective.tolerance or 0.0),
                   color="C2", alpha=0.15, label="target window")
    units = units_of(ctx, objective.property)
    ax.set_xlabel("experiment")
    ax.set_ylabel(objective.property + (f" ({units})" if units else ""))
    ax.set_title(f"{ctx.campaign.name}: {objective.goal} {objective.property}")
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def summary_markdown(ctx: LoopContext, result: dict[str, Any]) -> str:
    """Why the campaign stopped (or paused), its best candidate, the model's pick and the convergence plot.

    The plot is a ``data:image/png;base64`` URL in a markdown image: the Prefect UI's markdown renderer
    (prefect-design's ``PMarkdownRenderer``, Prefect 3.8) turns an image token into an ``<img src=...>``
    with the URL as given (no sanitiser on that path; checked in headless Chromium against Prefect 3.8.8's UI:
    the PNG shows at its natural size), so the picture needs nothing served anywhere else.
    """
    prop = ctx.campaign.objectives[0].property
    units = units_of(ctx, prop)
    reason = result.get("stop_reason") or result.get("pause_reason") or ""
    lines = [
        f"### {ctx.campaign.name}: {result.get('status')}" + (f" — {reason}" if reason else ""),
        "",
        f"- iterations: {result.get('iterations')}; experiments: {result.get('experiments')} "
        f"({result.get('failed')} failed); cost {fmt(result.get('cost'))}",
        f"- best {prop}: {with_units(result.get('best'), units)}"
        + (f" — {result['best_label']}" if result.get("best_label") else ""),
    ]
    with ctx.db.reading() as session:
        pick = latest_recommendation(session, ctx.campaign_id)
    if pick:
        lines.append(
            f"- model's pick ({model_label(pick)}; best posterior mean among measured candidates): "
            f"{pick.get('label') or pick.get('candidate')}: predicted {with_units(pick.get('mean'), units)} "
            f"± {fmt(pick.get('std'))}, measured {with_units(pick.get('measured'), units)}"
        )
    else:
        lines.append("- model's pick: none yet (no model fitted on enough results)")
    png = convergence_png(ctx)
    lines.append("")
    if png is None:
        lines.append("no measured value yet, so no convergence plot")
    else:
        encoded = base64.b64encode(png).decode("ascii")
        alt = f"convergence of {prop}: every measurement and the best so far"
        lines.append(f"![{alt}](data:image/png;base64,{encoded})")
    lines.append("")
    lines.append(f"Every pick with its reason: `matloop history {ctx.campaign.name}`.")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- publishing


def publish_batch(ctx: LoopContext, batch_id: int) -> None:
    """Publish (or publish again, after the gate) the batch as a table artifact under the campaign's batch key."""
    from prefect.artifacts import create_table_artifact

    rows, title = batch_table(ctx, batch_id)
    create_table_artifact(table=rows, key=artifact_key(ctx.campaign.name, "batch"), description=title)


def _safely(what: str, publish: Any, *args: Any) -> None:
    try:
        publish(*args)
    except Exception as exc:  # noqa: BLE001 - a view must not stop the campaign
        log.warning("could not publish the %s artifact: %s", what, exc)


class ArtifactPublisher:
    """Publishes the artifacts from inside a flow run; holds nothing a resumed run would need (see module doc)."""

    def batch(self, ctx: LoopContext, batch_id: int, fit: Any) -> None:
        from prefect.artifacts import create_markdown_artifact

        _safely("batch", publish_batch, ctx, batch_id)
        version = getattr(fit, "model_version_id", None)
        _safely("model", lambda: create_markdown_artifact(
            markdown=metrics_markdown(ctx, version), key=artifact_key(ctx.campaign.name, "model"),
            description="the surrogate's cross-validated metrics, in words",
        ))
        self.progress(ctx)

    def decided(self, ctx: LoopContext, batch_id: int) -> None:
        """After the gate: the batch table again, now saying approved/edited/rejected, by whom, what was dropped."""
        _safely("batch", publish_batch, ctx, batch_id)

    def progress(self, ctx: LoopContext, *_: Any) -> None:
        _safely("progress", publish_progress, ctx)

    def finish(self, ctx: LoopContext, result: dict[str, Any], reason: str | None = None) -> None:
        """When the run stops or pauses: the budget bar, and the summary with its convergence plot."""
        from prefect.artifacts import create_markdown_artifact

        self.progress(ctx)
        _safely("summary", lambda: create_markdown_artifact(
            markdown=summary_markdown(ctx, {**result, "pause_reason": reason}),
            key=artifact_key(ctx.campaign.name, "summary"),
            description=f"{ctx.campaign.name}: {result.get('status')}, best candidate, model's pick, convergence",
        ))
