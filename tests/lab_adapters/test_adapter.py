"""SimLabAdapter against a real lab on loopback: the LabAdapter protocol, errors, and surviving a flaky lab."""

from __future__ import annotations

import socket
import time

import numpy as np
import pandas as pd
import pytest

from lab_adapters.simlab.client import SimLabAdapter, job_to_request
from lab_adapters.simlab.inprocess import SimLabHandle, running_simlab
from matloop.data import bundled_path
from matloop.types import AdapterError, Candidate, CandidateKind, JobStatus, LabAdapter

from .conftest import TOKEN, branin_job, oer_job


def wait_all_terminal(adapter: SimLabAdapter, ids: list[str], timeout: float = 30.0) -> dict[str, JobStatus]:
    deadline = time.monotonic() + timeout
    while True:
        statuses = adapter.poll(ids)
        if all(s.is_terminal for s in statuses.values()):
            return statuses
        if time.monotonic() > deadline:
            open_ = {i: s for i, s in statuses.items() if not s.is_terminal}
            raise AssertionError(f"{len(open_)} jobs still open after {timeout} s: {list(open_.items())[:5]}")
        time.sleep(0.05)


def test_adapter_speaks_the_protocol_end_to_end(adapter: SimLabAdapter) -> None:
    assert isinstance(adapter, LabAdapter) and adapter.name == "simlab"
    job = branin_job(np.pi, 2.275)
    external_id = adapter.submit(job)
    assert adapter.submit(job) == external_id
    assert adapter.poll([external_id])[external_id] in (JobStatus.SUBMITTED, JobStatus.RUNNING, JobStatus.SUCCEEDED)
    wait_all_terminal(adapter, [external_id])
    result = adapter.fetch(external_id)
    assert result.status is JobStatus.SUCCEEDED and result.error is None
    assert result.properties["y"].value == pytest.approx(0.397887, abs=0.1)
    assert result.properties["y"].std == pytest.approx(0.01) and result.properties["y"].units == "1"
    assert result.raw["experiment"]["idempotency_key"] == job.idempotency_key
    assert result.raw["experiment"]["executions"] == 1


def test_unknown_ids_are_lost_and_open_jobs_cannot_be_fetched_yet(slow_adapter: SimLabAdapter) -> None:
    adapter = slow_adapter
    assert adapter.poll(["exp-424242"]) == {"exp-424242": JobStatus.LOST}
    lost = adapter.fetch("exp-424242")
    assert lost.status is JobStatus.LOST and "no experiment 'exp-424242'" in lost.error
    external_id = adapter.submit(branin_job(0.0, 0.0))  # 0.1 lab hour = 3.6 s here
    with pytest.raises(AdapterError, match="still (queued|running)") as info:
        adapter.fetch(external_id)
    assert info.value.transient


def test_cancel_through_the_adapter(slow_adapter: SimLabAdapter) -> None:
    adapter = slow_adapter
    job = oer_job({"ni_load": 0.2, "fe_load": 0.8, "co_load": 0.0, "mn_load": 0.0, "ce_load": 0.0, "la_load": 0.0})
    external_id = adapter.submit(job)
    adapter.cancel(external_id)
    adapter.cancel(external_id)  # safe to repeat
    assert adapter.poll([external_id]) == {external_id: JobStatus.CANCELLED}
    result = adapter.fetch(external_id)
    assert result.status is JobStatus.CANCELLED and result.properties == {}
    assert result.error == "cancelled by the client"
    with pytest.raises(AdapterError, match="404"):
        adapter.cancel("exp-999999")


def test_out_of_domain_job_ends_failed_with_the_reason(adapter: SimLabAdapter) -> None:
    external_id = adapter.submit(branin_job(-9.0, 1.0))
    result = adapter.fetch(external_id)
    assert result.status is JobStatus.FAILED
    assert result.error == "outside the domain: input 'x1'=-9 is outside the scenario's domain [-5, 10]"


def test_client_errors_are_clear_and_not_retried(simlab: SimLabHandle) -> None:
    with SimLabAdapter(simlab.url, "wrong-token", backoff=0.01) as bad:
        with pytest.raises(AdapterError, match="refused the token \\(403\\)") as info:
            bad.submit(branin_job(0.0, 0.0))
        assert not info.value.transient
    with SimLabAdapter(simlab.url, TOKEN, backoff=0.01) as client:
        job = branin_job(0.0, 0.0).model_copy(update={"options": {"scenario": "no_such_lab"}})
        with pytest.raises(
            AdapterError, match="refused job .* \\(422\\): scenario 'no_such_lab' is not served"
        ) as info:
            client.submit(job)
        assert not info.value.transient


def test_an_unreachable_lab_is_a_transient_error_after_the_retries() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with SimLabAdapter(f"http://127.0.0.1:{port}", TOKEN, max_retries=3, backoff=0.001, timeout=1.0) as client:
        with pytest.raises(AdapterError, match="failed after 4 attempts: ConnectError") as info:
            client.poll(["exp-000001"])
    assert info.value.transient


def test_job_to_request_maps_every_candidate_kind() -> None:
    point = branin_job(1.0, 2.0)
    assert job_to_request(point)["scenario"] == "branin"  # fidelity names the scenario when options do not
    assert job_to_request(point)["inputs"] == {"x1": 1.0, "x2": 2.0}
    crystal = point.model_copy(
        update={
            "candidate": Candidate(kind=CandidateKind.STRUCTURE, structure={"lattice": {}, "sites": []}),
            "options": {"scenario": "perov5", "relax": True},
        }
    )
    body = job_to_request(crystal)
    assert body["scenario"] == "perov5" and body["inputs"] == {"structure": {"lattice": {}, "sites": []}}
    assert body["metadata"]["options"] == {"relax": True}
    image = point.model_copy(update={"candidate": Candidate(kind=CandidateKind.IMAGE, image=[[0.0, 1.0]])})
    assert job_to_request(image)["inputs"] == {"image": [[0.0, 1.0]]}


@pytest.mark.slow
def test_200_jobs_through_a_flaky_lab_each_run_once_and_none_lost() -> None:
    """30 % of requests answer 5xx (half of them after the lab did the work), 10 % of experiments fail."""
    frame = pd.read_csv(bundled_path("oer_plates/oer_plate_3496.csv"))
    loads = [c for c in frame.columns if c != "overpotential"]
    rows = frame.sample(200, random_state=3)
    jobs = [oer_job({name: float(row[name]) for name in loads}, campaign="flaky") for _, row in rows.iterrows()]
    assert len({job.idempotency_key for job in jobs}) == 200
    with (
        running_simlab(
            token=TOKEN,
            scenarios=["oer_plate_3496"],
            time_scale=1e-6,
            seed=7,
            error_rate=0.3,
            failure_rate=0.1,
            instruments={"synthesis_robot": 8, "electrochem_station": 8},
        ) as lab,
        SimLabAdapter(lab.url, TOKEN, max_retries=12, backoff=0.002, backoff_max=0.02) as adapter,
    ):
        ids = [adapter.submit(job) for job in jobs]
        assert len(set(ids)) == 200
        statuses = wait_all_terminal(adapter, ids)
        results = {i: adapter.fetch(i) for i in ids}
        # Submitting everything again (a controller that crashed before recording) changes nothing.
        assert [adapter.submit(job) for job in jobs] == ids
        stats = adapter.stats()
        listing = []
        cursor = None
        while True:
            page = adapter._request(
                "GET", "/v1/experiments", params={"limit": 500, **({"cursor": cursor} if cursor else {})}
            ).json()  # noqa: SLF001
            listing += page["items"]
            if not (cursor := page["next_cursor"]):
                break

    assert stats["http_faults"]["error_after"] > 10 and stats["http_faults"]["error_before"] > 10
    assert stats["counters"]["idempotent_replays"] >= 200  # the resubmissions, plus the lost responses
    # Each key ran exactly once, and the lab accepted nothing else.
    assert stats["experiments"] == 200
    assert stats["executions_total"] == 200 and stats["executions_max_per_experiment"] == 1
    assert sorted(item["idempotency_key"] for item in listing) == sorted(job.idempotency_key for job in jobs)
    # Every job ended terminal, and every result the lab holds reached the client.
    assert set(statuses.values()) <= {JobStatus.SUCCEEDED, JobStatus.FAILED}
    failed = [r for r in results.values() if r.status is JobStatus.FAILED]
    assert 8 <= len(failed) <= 35
    assert all(r.error and ("synthesis failed" in r.error or "instrument fault" in r.error) for r in failed)
    by_id = {item["id"]: item for item in listing}
    for external_id, result in results.items():
        record = by_id[external_id]
        assert record["status"] == result.status.value
        if result.status is JobStatus.SUCCEEDED:
            assert result.properties["overpotential"].value == record["result"]["properties"]["overpotential"]["value"]
