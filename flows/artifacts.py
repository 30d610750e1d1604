"""What each iteration publishes to the Prefect UI: the batch with reasons, model metrics, budget progress.

Artifacts are a view; the database remains the record.  Publishing never
fails a campaign: a failed artifact call is logged and skipped.
"""

from __future__ import annotations

import logging
import math
import re
from datetime import timedelta
from typing import Any

from agent.loop.context import LoopContext
from agent.loop.state import progress
from agent.store.models import BatchRecord, ModelVersionRecord

log = logging.getLogger(__name__)


def artifact_key(campaign: str, what: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{campaign}-{what}".lower()).strip("-")


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def batch_markdown(ctx: LoopContext, batch_id: int) -> str:
    """The proposed batch as a markdown table: candidate id, what it is, prediction, acquisition, reason."""
    with ctx.db.reading() as session:
        batch = session.get(BatchRecord, batch_id)
        assert batch is not None
        rows = [(item, item.candidate) for item in batch.items]
        lines = [
            f"### {ctx.campaign.name}: batch {batch.id} ({batch.status}, approval: {batch.policy})",
            "",
            "| rank | candidate id | candidate | predicted mean | predicted std | acquisition | reason |",
            "|---|---|---|---|---|---|---|",
        ]
        from agent.loop.state import candidate_from_record

        for item, record in rows:
            label = candidate_from_record(record).label(80).replace("|", "/")
            lines.append(
                f"| {item.rank} | {record.id} | {label} | {_fmt(item.posterior_mean)} | {_fmt(item.posterior_std)} "
                f"| {_fmt(item.acquisition_value)} | {item.reason.replace('|', '/')} |"
            )
    return "\n".join(lines)


def metrics_markdown(ctx: LoopContext, model_version_id: int | None) -> str:
    if model_version_id is None:
        return f"### {ctx.campaign.name}: no model yet (initial design)"
    with ctx.db.reading() as session:
        version = session.get(ModelVersionRecord, model_version_id)
        assert version is not None
        lines = [
            f"### {ctx.campaign.name}: model version {version.id} ({version.kind}, {version.n_train} training points)",
            "",
            f"{version.reason}",
            "",
            "| output | metric | value |",
            "|---|---|---|",
        ]
        for output, metrics in sorted((version.metrics or {}).items()):
            if isinstance(metrics, dict):
                for name, value in sorted(metrics.items()):
                    lines.append(f"| {output} | {name} | {_fmt(value)} |")
            else:
                lines.append(f"| – | {output} | {_fmt(metrics)} |")
    return "\n".join(lines)


def budget_fraction(ctx: LoopContext) -> tuple[float, str]:
    """Share of the budget spent (the most-spent limit), and a sentence saying what."""
    with ctx.db.reading() as session:
        snap = progress(session, ctx.campaign, ctx.campaign_id)
    b = ctx.campaign.budget
    parts: list[tuple[float, str]] = []
    if b.max_experiments:
        parts.append((snap.experiments / b.max_experiments, f"{snap.experiments}/{b.max_experiments} experiments"))
    if b.max_cost:
        parts.append((snap.cost / b.max_cost, f"cost {snap.cost:g}/{b.max_cost:g}"))
    if b.max_iterations:
        parts.append((snap.completed_iterations / b.max_iterations,
                      f"{snap.completed_iterations}/{b.max_iterations} iterations"))
    if b.wall_clock:
        elapsed = timedelta(seconds=int(snap.elapsed.total_seconds()))
        parts.append((snap.elapsed / b.wall_clock, f"{elapsed} of {b.wall_clock}"))
    fraction = min(max((p for p, _ in parts), default=0.0), 1.0)
    best = "" if snap.best is None else f"; best {ctx.campaign.objectives[0].property} {snap.best:.4g}"
    return fraction, ", ".join(text for _, text in parts) + best


class ArtifactPublisher:
    """Publishes per-iteration artifacts from inside a flow run (keeps the progress artifact's id)."""

    def __init__(self) -> None:
        self._progress_id: Any = None

    def batch(self, ctx: LoopContext, batch_id: int, fit: Any) -> None:
        from prefect.artifacts import create_markdown_artifact

        try:
            create_markdown_artifact(markdown=batch_markdown(ctx, batch_id),
                                     key=artifact_key(ctx.campaign.name, "batch"),
                                     description=f"batch {batch_id} with the reason for each candidate")
            create_markdown_artifact(markdown=metrics_markdown(ctx, getattr(fit, "model_version_id", None)),
                                     key=artifact_key(ctx.campaign.name, "model"),
                                     description="surrogate cross-validated metrics")
        except Exception as exc:  # noqa: BLE001 - a view must not stop the campaign
            log.warning("could not publish batch artifacts: %s", exc)
        self.progress(ctx)

    def progress(self, ctx: LoopContext, *_: Any) -> None:
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        fraction, text = budget_fraction(ctx)
        try:
            if self._progress_id is None:
                self._progress_id = create_progress_artifact(
                    progress=100 * fraction, key=artifact_key(ctx.campaign.name, "budget"), description=text
                )
            else:
                update_progress_artifact(self._progress_id, progress=100 * fraction, description=text)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not publish the progress artifact: %s", exc)
