"""Seeded faults: instrument outages push work back, slow answers and client timeouts still run each key once."""

from __future__ import annotations

import time

import httpx

from lab_adapters.simlab.client import SimLabAdapter
from lab_adapters.simlab.faults import OutagePlan
from lab_adapters.simlab.inprocess import running_simlab
from lab_adapters.simlab.lab import Lab, LabConfig

from .conftest import TOKEN, branin_job


def test_outage_windows_are_seeded_and_no_step_overlaps_one() -> None:
    plan = OutagePlan(seed=5, rate=20.0, mean_hours=3.0)  # an outage every 5 lab hours on average
    again = OutagePlan(seed=5, rate=20.0, mean_hours=3.0)
    assert plan.windows("synthesis_robot", 200.0) == again.windows("synthesis_robot", 200.0)
    assert plan.windows("synthesis_robot", 200.0) != plan.windows("electrochem_station", 200.0)
    for start in [0.0, 3.3, 17.0, 41.5, 99.9]:
        begin = plan.earliest_start("synthesis_robot", start, 4.0)
        assert begin >= start
        assert all(hi <= begin or lo >= begin + 4.0 for lo, hi in plan.windows("synthesis_robot", begin + 10))


def test_lab_books_around_outages_and_reports_instruments_down() -> None:
    lab = Lab(LabConfig(scenarios=["oer_plate_3496"], outage_rate=20.0, outage_hours=3.0, seed=5, time_scale=1e-5))
    try:
        loads = {"ni_load": 0.1, "fe_load": 0.2, "co_load": 0.6, "mn_load": 0.1, "ce_load": 0.0, "la_load": 0.0}
        rows = [
            lab.submit(f"k{i}", {"scenario": "oer_plate_3496", "inputs": loads}, now=lab.epoch)[0] for i in range(6)
        ]
        for row in rows:
            for step in row.schedule:
                lo_h, hi_h = lab.lab_hours(step["start"]), lab.lab_hours(step["end"])
                for w_lo, w_hi in lab.outages.windows(step["instrument"], hi_h + 10):
                    # 1e-4 lab h: Unix timestamps carry ~1e-6 lab h of rounding at this time scale
                    assert w_hi <= lo_h + 1e-4 or w_lo >= hi_h - 1e-4, (step, (w_lo, w_hi))
        calm = Lab(LabConfig(scenarios=["oer_plate_3496"], seed=5, time_scale=1e-5))
        calm_rows = [
            calm.submit(f"k{i}", {"scenario": "oer_plate_3496", "inputs": loads}, now=calm.epoch)[0] for i in range(6)
        ]
        calm.close()
        # The outages cost time: the same six experiments finish later than in a lab without them.
        assert lab.lab_hours(rows[-1].finished_at) > calm.lab_hours(calm_rows[-1].finished_at) + 1.0
        first_outage = lab.outages.windows("synthesis_robot", 10)[0]
        during = lab.epoch + lab.real_seconds((first_outage[0] + first_outage[1]) / 2)
        robot = next(i for i in lab.instruments(now=during) if i["name"] == "synthesis_robot")
        assert robot["status"] == "down"
        assert robot["down_until"] == lab.epoch + lab.real_seconds(first_outage[1])
    finally:
        lab.close()


def test_slow_answers_and_client_timeouts_still_run_each_key_once() -> None:
    with (
        running_simlab(
            token=TOKEN, scenarios=["branin"], time_scale=1e-5, seed=2, slow_rate=0.3, slow_seconds=0.25
        ) as lab,
        SimLabAdapter(lab.url, TOKEN, timeout=0.1, max_retries=20, backoff=0.01, backoff_max=0.05) as adapter,
    ):
        jobs = [branin_job(float(i % 10), float(i // 10)) for i in range(20)]
        ids = [adapter.submit(job) for job in jobs]
        time.sleep(0.5)  # let the requests that the client gave up on finish on the server
        stats = httpx.get(f"{lab.url}/v1/stats", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert len(set(ids)) == 20
    assert stats["http_faults"]["slow"] > 0
    assert stats["experiments"] == 20 and stats["executions_max_per_experiment"] == 1
