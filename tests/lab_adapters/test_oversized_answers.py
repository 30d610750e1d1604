"""A lab's answer too large to keep, or too large to read, never crashes a campaign or bloats its database.

A real simulated lab answers over loopback HTTP; a tampering transport pads its records: 1 MB of raw payload
(stored as a note, the value kept) or 17 MB (more than the client reads: the job fails with one sentence).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from agent.loop.raw_payload import MAX_RAW_BYTES, bounded_raw
from agent.store.models import CampaignRecord, JobRecord, MeasurementRecord
from lab_adapters.simlab.client import MAX_ANSWER_BYTES
from tests.lab_adapters.tampering import TamperingTransport, run_tampered_campaign


def _padded(size: int):
    def tamper(record: dict[str, Any]) -> str:
        result = record.get("result")
        if isinstance(result, dict):
            result.setdefault("raw", {})["spectrum"] = "x" * size
        return json.dumps(record)

    return tamper


def test_a_small_raw_payload_is_kept_as_it_is_and_a_large_one_becomes_a_note() -> None:
    small = {"noise": 0.01, "instrument": "branin"}
    assert bounded_raw(small) is small
    large = {"spectrum": "x" * (MAX_RAW_BYTES + 1), "noise": 0.01}
    note = bounded_raw(large)
    assert note["keys"] == ["spectrum", "noise"]
    assert note["omitted"].startswith("the raw payload was 262,") and "more than the 262,144 a measurement keeps" in (
        note["omitted"])


def test_padded_answers_are_stored_without_their_padding_or_fail_in_one_sentence(db_url: str) -> None:
    """Experiment 1: 1 MB of raw (value kept, raw a note); 2: 17 MB (job failed, unread); the rest untouched."""
    transport = TamperingTransport([("1 MB raw", _padded(1_000_000)), ("17 MB raw", _padded(MAX_ANSWER_BYTES + 10**6))])
    db, campaign_id, outcome = run_tampered_campaign(db_url, transport, name="branin-oversized", experiments=4)
    assert outcome.status == "stopped", outcome
    by_name = {name: external_id for external_id, name in transport.assigned.items()}
    with db.reading() as session:
        campaign = session.get(CampaignRecord, campaign_id)
        assert campaign is not None and campaign.status == "stopped"
        jobs = {j.external_id: j for j in session.scalars(select(JobRecord))}
        measurements = {m.job_id: m for m in session.scalars(select(MeasurementRecord))}
        kept = measurements[jobs[by_name["1 MB raw"]].id]
        assert not kept.failed and kept.value is not None
        assert set(kept.raw) == {"omitted", "keys"} and "more than the 262,144 a measurement keeps" in kept.raw["omitted"]
        unread_job = jobs[by_name["17 MB raw"]]
        unread = measurements[unread_job.id]
        assert unread_job.status == "failed" and unread.failed
        assert f"longer than the {MAX_ANSWER_BYTES:,} bytes this controller reads" in (unread.error or "")
        others = [m for j, m in ((j, measurements[j.id]) for j in jobs.values()) if j.external_id not in transport.assigned]
        assert len(others) == 2 and all(not m.failed and "spectrum" not in m.raw["measurement"] for m in others)
        assert max(len(json.dumps(m.raw)) for m in measurements.values()) < MAX_RAW_BYTES
    db.dispose()
