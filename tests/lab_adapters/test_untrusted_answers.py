"""A lab's answer can never crash or block a campaign (issue 25).

A real simulated lab answers over loopback HTTP; a tampering transport rewrites its answers (a value that is
text, null, a list, NaN, ±inf or overflows, an unexpected field, other units, an unknown status).  Each bad
answer must become a failed measurement with its reason, on SQLite and on PostgreSQL alike, and the campaign
must run to its end.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from sqlalchemy import select

from agent.store import Database
from agent.store.events import record_event
from agent.store.models import (
    CampaignRecord,
    EventRecord,
    IterationRecord,
    JobRecord,
    MeasurementRecord,
    json_safe,
)
from lab_adapters.simlab.client import SimLabAdapter
from lab_adapters.simlab.inprocess import running_simlab
from matloop.types import (
    MAX_ABS_VALUE,
    AdapterError,
    JobStatus,
    LabAnswerError,
    number_problem,
    property_value_from_answer,
)
from matloop.units import UnitsError, convert
from tests.lab_adapters.conftest import branin_job
from tests.lab_adapters.tampering import TAMPERINGS, TamperingTransport, run_tampered_campaign

#: What the stored reason must say for each bad answer.
REASONS = {
    "string": "the value is text, not a number",
    "null": "the value is null, not a number",
    "list": "the value is a list, not a number",
    "extra field": "unexpected field(s) 'calibrated'",
    "NaN": "the value is NaN",
    "+inf": "the value is +infinite",
    "-inf": "the value is -infinite",
    "overflow": "the value is +infinite",  # 1e999 in JSON text is read as inf: it overflows a float
    "incompatible units": "'s' cannot be converted to '1': they measure different things",
    "unknown status": "reported status 'exploded' for experiment",
}


# -- one property, one value -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("answer", "reason"), [
    ({"value": "1.5"}, "the value is text, not a number"),
    ({"value": None}, "the value is null, not a number"),
    ({"value": [1.0]}, "the value is a list, not a number"),
    ({"value": {"v": 1}}, "the value is an object, not a number"),
    ({"value": True}, "the value is a boolean, not a number"),
    ({"value": math.nan}, "the value is NaN, not a number"),
    ({"value": math.inf}, "the value is +infinite"),
    ({"value": -math.inf}, "the value is -infinite"),
    ({"value": 1e308}, "larger in magnitude than 1e+150"),
    ({"value": 10**400}, "too large to be a measurement"),
    ({"value": 1.0, "std": -0.1}, "the std -0.1 is negative"),
    ({"value": 1.0, "std": math.nan}, "the std is NaN"),
    ({"value": 1.0, "units": 3}, "the units are int, not text"),
    ({"value": 1.0, "note": "x"}, "unexpected field(s) 'note'"),
    ({"std": 1.0}, "the answer has no value"),
    ([1.0], "the answer is a list, not an object"),
    (None, "the answer is null, not an object"),
])
def test_a_bad_property_answer_is_refused_with_one_sentence(answer: Any, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        property_value_from_answer(answer)
    assert reason in str(caught.value)


def test_a_good_property_answer_is_read_as_it_was_sent() -> None:
    value = property_value_from_answer({"value": 3, "std": 0.5, "units": "mV"})
    assert (value.value, value.std, value.units) == (3.0, 0.5, "mV")
    assert number_problem(-MAX_ABS_VALUE) is None and number_problem(0) is None


def test_compatible_units_are_converted_and_incompatible_ones_refused() -> None:
    assert convert(1500.0, 10.0, "mV", "V") == pytest.approx((1.5, 0.01))
    assert convert(250.0, 5.0, "meV", "eV") == pytest.approx((0.25, 0.005))
    assert convert(25.0, 1.0, "degC", "K") == pytest.approx((298.15, 1.0))  # the std is a difference
    assert convert(-12.0, None, "meV/atom", "eV/atom") == pytest.approx((-0.012, None))
    assert convert(2.0, 0.1, "px", "px") == (2.0, 0.1)  # equal strings: nothing to parse
    assert convert(2.0, 0.1, None, "eV") == (2.0, 0.1)  # the lab said nothing: the campaign's units
    assert convert(2.0, 0.1, "mV", None) == (2.0, 0.1)  # the campaign declared none: kept as reported
    for source, target, reason in [
        ("s", "eV", "they measure different things"),
        ("eV/atom", "eV", "they measure different things"),
        ("__import__('os')", "V", "are not units we can read"),
        ("V/0", "V", "are not units we can read"),
        ("furlongs_per_fortnight", "V", "are not units we can read"),
        ("m" * 51, "V", "longer than the 50 allowed"),
    ]:
        with pytest.raises(UnitsError) as caught:
            convert(1.0, None, source, target)
        assert reason in str(caught.value)


# -- the JSON columns --------------------------------------------------------------------------------------------


def test_no_non_finite_number_reaches_a_json_column_on_either_backend(migrated_db_url: str) -> None:
    """PostgreSQL's JSONB refuses NaN and ±inf; SQLite takes them: both now store null, the same way."""
    assert json_safe({"a": [1.0, math.nan, (math.inf, "x")], "b": {"c": -math.inf}, "d": 2}) == {
        "a": [1.0, None, [None, "x"]], "b": {"c": None}, "d": 2}
    db = Database(migrated_db_url)
    with db.transaction() as session:
        event = record_event(session, "test", payload={"best": -math.inf, "values": [math.nan, 1.5, math.inf]})
        session.flush()
        event_id = event.id
    with db.reading() as session:
        event = session.get(EventRecord, event_id)
        assert event is not None and event.payload == {"best": None, "values": [None, 1.5, None]}
    db.dispose()


# -- the client alone --------------------------------------------------------------------------------------------


def _finished(adapter: SimLabAdapter, external_id: str) -> None:
    deadline = time.monotonic() + 30
    while adapter.poll([external_id])[external_id] is not JobStatus.SUCCEEDED:
        assert time.monotonic() < deadline, "the lab never finished the experiment"
        time.sleep(0.02)


def test_the_client_turns_a_bad_value_into_a_property_error_and_keeps_the_raw_payload_finite_safe() -> None:
    transport = TamperingTransport([("NaN", TAMPERINGS["NaN"])])
    with running_simlab(scenarios=["branin"], time_scale=1e-5) as lab, \
            SimLabAdapter(lab.url, lab.token, transport=transport, backoff=0.01) as adapter:
        external_id = adapter.submit(branin_job(1.0, 2.0))
        _finished(adapter, external_id)
        result = adapter.fetch(external_id)
    assert result.status is JobStatus.SUCCEEDED and result.properties == {}
    assert result.property_errors == {"y": "the lab's answer for 'y' cannot be used: the value is NaN, not a number"}
    assert math.isnan(result.raw["measurement"]["noise"])  # what the lab said, kept; the store writes it as null


def test_an_unknown_status_is_an_adapter_error_that_is_not_transient() -> None:
    transport = TamperingTransport([("unknown status", TAMPERINGS["unknown status"])])
    with running_simlab(scenarios=["branin"], time_scale=1e-5) as lab, \
            SimLabAdapter(lab.url, lab.token, transport=transport, backoff=0.01) as adapter:
        external_id = adapter.submit(branin_job(1.0, 2.0))
        for call in (lambda: adapter.poll([external_id]), lambda: adapter.fetch(external_id)):
            with pytest.raises(LabAnswerError) as caught:
                call()
            assert isinstance(caught.value, AdapterError) and not caught.value.transient
            assert f"reported status 'exploded' for experiment {external_id}" in str(caught.value)


# -- a whole campaign ---------------------------------------------------------------------------------------------


def test_every_bad_answer_is_a_failed_measurement_with_its_reason_and_the_campaign_ends(db_url: str) -> None:
    """Twelve experiments, the first eleven answered badly each in its own way: the campaign runs to its budget."""
    transport = TamperingTransport(list(TAMPERINGS.items()))
    db, campaign_id, outcome = run_tampered_campaign(db_url, transport, name="branin-untrusted", experiments=12,
                                                     units={"y": "1"})
    assert outcome.status == "stopped", outcome
    assert set(transport.assigned.values()) == set(TAMPERINGS)  # every tampering was sent
    with db.reading() as session:
        campaign = session.get(CampaignRecord, campaign_id)
        assert campaign is not None and campaign.status == "stopped"
        assert campaign.stop_reason == "budget spent: 12 of 12 experiments"
        jobs = {j.external_id: j for j in session.scalars(select(JobRecord))}
        measurements = {m.job_id: m for m in session.scalars(select(MeasurementRecord))}
        assert len(jobs) == len(measurements) == 12
        for external_id, name in transport.assigned.items():
            job, measurement = jobs[external_id], measurements[jobs[external_id].id]
            if name == "convertible units":
                true = transport.originals[external_id]["result"]["properties"]["y"]
                assert not measurement.failed and measurement.units == "1"
                assert measurement.value == pytest.approx(true["value"]) and measurement.std == pytest.approx(true["std"])
                continue
            assert measurement.failed and measurement.value is None, name
            assert REASONS[name] in (measurement.error or ""), (name, measurement.error)
            if name == "unknown status":
                assert job.status == "failed" and REASONS[name] in (job.error or "")
            elif name in ("NaN", "+inf", "-inf", "overflow"):
                assert measurement.raw["measurement"]["noise"] is None  # stored as null on both backends
        untampered = [m for j, m in ((j, measurements[j.id]) for j in jobs.values())
                      if j.external_id not in transport.assigned]
        assert len(untampered) == 1 and not untampered[0].failed and untampered[0].units == "1"
        bests = [it.info["best"] for it in session.scalars(select(IterationRecord))]
        assert all(b is None or math.isfinite(b) for b in bests) and bests[-1] is not None
    db.dispose()


def test_values_from_any_adapter_are_checked_before_they_are_stored() -> None:
    """The loop's own gate, for adapters other than the simulated lab's client (a DFT parser's NaN, an MLIP's inf)."""
    from agent.loop.sync import usable_value
    from matloop.types import PropertyValue

    for bad, reason in [
        (PropertyValue(value=math.nan), "the value is NaN, not a number"),
        (PropertyValue(value=-math.inf), "the value is -infinite"),
        (PropertyValue(value=1e200), "the value 1e+200 is larger in magnitude than 1e+150, so it cannot be a measurement"),
        (PropertyValue(value=1.0, std=math.inf), "the std is +infinite"),
        (PropertyValue(value=1.0, std=-1.0), "the std -1 is negative"),
        (PropertyValue(value=1.0, units="eV"), "'eV' cannot be converted to 'V': they measure different things"),
    ]:
        value, error = usable_value(bad, "V", "overpotential")
        assert value is None and error == f"the value reported for 'overpotential' cannot be used: {reason}"
    value, error = usable_value(PropertyValue(value=350.0, std=10.0, units="mV"), "V", "overpotential")
    assert error is None and value is not None
    assert (value.value, value.std, value.units) == (pytest.approx(0.35), pytest.approx(0.01), "V")
