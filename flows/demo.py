"""``matloop demo``: the OER campaign end to end on embedded defaults, and its report.

SQLite in the output folder, Prefect's ephemeral API, the simulated lab
in-process on a free port answering from the real Rohr et al. plate 3496.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from agent.report import Report, write_report
from agent.spec import Campaign, parse_campaign
from agent.store import Database

DEMO_TEMPLATE = "oer.yaml"


def demo_campaign() -> Campaign:
    """The OER template, with the surrogate fixed to a GP.

    ``auto`` cross-validates a deep ensemble against the GP at every iteration,
    which costs several times the GP's time on a 2-core machine (measured: 38 s
    vs 8 s for 16 points on a loaded machine); the demo must finish in minutes,
    so it also cross-validates with 3 folds instead of 5 and runs the in-process
    lab ten times faster (a lab hour is 36 ms instead of 360 ms).
    """
    text = (resources.files("agent.templates") / DEMO_TEMPLATE).read_text()
    spec = parse_campaign(text, source=f"agent/templates/{DEMO_TEMPLATE}")
    data = spec.model_dump(mode="json")
    from surrogates.config import GPSurrogate

    kept = {k: v for k, v in data["surrogate"].items() if k in GPSurrogate.model_fields}  # an auto's GP settings
    data["surrogate"] = {**kept, "type": "gp", "cv_folds": 3}
    for name, adapter in data["adapters"].items():
        if adapter["type"] == "simlab" and adapter["url"] is None and "time_scale" not in spec.adapters[name].lab.model_fields_set:
            adapter["lab"]["time_scale"] = 1e-5
    return Campaign.model_validate(data)


def plate_best(campaign: Campaign) -> float | None:
    """The best value on the scenario's plate (what a perfect campaign would find), if the lab knows it."""
    scenario = next((m.options.get("scenario") for m in campaign.measurements if "scenario" in m.options), None)
    if scenario is None:
        return None
    try:
        from lab_adapters.simlab.scenarios import get_scenario

        info = get_scenario(str(scenario)).info()
        return float(info["best_measured"][campaign.objectives[0].property])
    except Exception:  # noqa: BLE001 - the reference is a nicety of the summary
        return None


def run_demo(out: Path, progress: Callable[[Campaign, str], Any] | None = None) -> tuple[dict[str, Any], Report, float | None]:
    """Run the demo campaign into ``out`` (a fresh demo database each time) and write the report there."""
    from flows.campaign import campaign_flow
    from flows.inputs import CampaignSource

    out.mkdir(parents=True, exist_ok=True)
    db_path = (out / "demo.sqlite").resolve()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)  # the demo starts from scratch every time
    url = f"sqlite:///{db_path}"
    spec = demo_campaign()
    with progress(spec, url) if progress is not None else contextlib.nullcontext():
        result = campaign_flow(CampaignSource(spec=spec), database_url=url, resume=False,
                               poll_initial_seconds=0.05, poll_max_seconds=1.0)
    reference = plate_best(spec)
    db = Database(url)
    try:
        report = write_report(db, spec.name, out, reference=reference, reference_label="plate best")
    finally:
        db.dispose()
    return result, report, reference
