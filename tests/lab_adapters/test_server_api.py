"""The lab's HTTP API on a real uvicorn over loopback: auth, idempotency, validation, queue, cancel, listing."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from lab_adapters.simlab.inprocess import SimLabHandle, running_simlab

from .conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}
BRANIN = {"scenario": "branin", "inputs": {"x1": 1.0, "x2": 2.0}, "properties": ["y"], "campaign": "c"}


def wait_terminal(client: httpx.Client, experiment_id: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = client.get(f"/v1/experiments/{experiment_id}").json()
        if record["status"] in ("succeeded", "failed", "cancelled"):
            return record
        time.sleep(0.02)
    raise AssertionError(f"{experiment_id} did not finish in {timeout} s: {record}")


@pytest.fixture
def client(simlab: SimLabHandle):
    with httpx.Client(base_url=simlab.url, headers=AUTH, timeout=10) as c:
        yield c


def test_health_is_open_and_everything_else_needs_the_token(simlab: SimLabHandle) -> None:
    assert httpx.get(f"{simlab.url}/healthz").json() == {"status": "ok", "version": "v1"}
    for method, path in [
        ("POST", "/v1/experiments"),
        ("GET", "/v1/experiments"),
        ("GET", "/v1/experiments/exp-000001"),
        ("POST", "/v1/experiments/exp-000001/cancel"),
        ("GET", "/v1/instruments"),
        ("GET", "/v1/stats"),
    ]:
        missing = httpx.request(method, simlab.url + path, json=BRANIN, headers={"Idempotency-Key": "k"})
        assert missing.status_code == 401, (method, path)
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = httpx.request(
            method, simlab.url + path, json=BRANIN, headers={"Idempotency-Key": "k", "Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 403, (method, path)
    # Nothing was accepted by any of the refused requests.
    assert httpx.get(f"{simlab.url}/v1/stats", headers=AUTH).json()["experiments"] == 0


def test_same_key_returns_the_same_experiment_and_runs_it_once(client: httpx.Client) -> None:
    first = client.post("/v1/experiments", json=BRANIN, headers={"Idempotency-Key": "key-1"})
    again = client.post("/v1/experiments", json=BRANIN, headers={"Idempotency-Key": "key-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    record = wait_terminal(client, first.json()["id"])
    after = client.post("/v1/experiments", json=BRANIN, headers={"Idempotency-Key": "key-1"})
    assert after.status_code == 200 and after.json()["result"] == record["result"]
    assert record["status"] == "succeeded" and record["executions"] == 1
    stats = client.get("/v1/stats").json()
    assert stats["experiments"] == 1 and stats["executions_total"] == 1
    assert stats["counters"]["idempotent_replays"] == 2


def test_concurrent_submissions_with_one_key_make_one_experiment(simlab: SimLabHandle) -> None:
    def post(_: int) -> tuple[int, str]:
        response = httpx.post(
            f"{simlab.url}/v1/experiments", json=BRANIN, headers={**AUTH, "Idempotency-Key": "same"}, timeout=10
        )
        return response.status_code, response.json()["id"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(16)))
    assert len({experiment_id for _, experiment_id in answers}) == 1
    assert sorted(code for code, _ in answers) == [200] * 15 + [201]
    assert httpx.get(f"{simlab.url}/v1/stats", headers=AUTH).json()["experiments"] == 1


def test_key_reuse_for_another_request_and_a_missing_key_are_refused(client: httpx.Client) -> None:
    assert client.post("/v1/experiments", json=BRANIN, headers={"Idempotency-Key": "key-2"}).status_code == 201
    other = {**BRANIN, "inputs": {"x1": 3.0, "x2": 2.0}}
    first_id = client.get("/v1/experiments").json()["items"][0]["id"]
    reused = client.post("/v1/experiments", json=other, headers={"Idempotency-Key": "key-2"})
    assert reused.status_code == 422
    assert f"already used for a different request (experiment {first_id})" in reused.json()["detail"]
    missing = client.post("/v1/experiments", json=BRANIN)
    assert missing.status_code == 400 and "Idempotency-Key header is required" in missing.json()["detail"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**BRANIN, "scenario": "nope"}, "scenario 'nope' is not served by this lab"),
        ({**BRANIN, "properties": ["band_gap"]}, "does not measure ['band_gap']; it measures ['y']"),
        ({**BRANIN, "colour": "red"}, "colour"),
    ],
)
def test_bad_requests_get_4xx_naming_the_problem(client: httpx.Client, body: dict, message: str) -> None:
    response = client.post("/v1/experiments", json=body, headers={"Idempotency-Key": "bad"})
    assert response.status_code == 422
    assert message in str(response.json()["detail"])


def test_out_of_domain_inputs_give_a_failed_experiment_that_says_why(client: httpx.Client) -> None:
    body = {**BRANIN, "inputs": {"x1": 42.0, "x2": 2.0}}
    record = client.post("/v1/experiments", json=body, headers={"Idempotency-Key": "ood"}).json()
    assert record["status"] == "failed"
    assert record["error"] == "outside the domain: input 'x1'=42 is outside the scenario's domain [-5, 10]"
    assert record["executions"] == 1 and record["steps"] == []


def test_instruments_queue_experiments_by_capacity(tmp_path) -> None:
    # Two synthesis robots, one electrochemistry station; 4 h synthesis + 1 h screening per experiment.
    with (
        running_simlab(token=TOKEN, time_scale=5e-4, scenarios=["oer_plate_3496"]) as lab,
        httpx.Client(base_url=lab.url, headers=AUTH) as client,
    ):
        loads = {"ni_load": 0.1, "fe_load": 0.2, "co_load": 0.6, "mn_load": 0.1, "ce_load": 0.0, "la_load": 0.0}
        records = [
            client.post(
                "/v1/experiments",
                json={"scenario": "oer_plate_3496", "inputs": loads},
                headers={"Idempotency-Key": f"q{i}"},
            ).json()
            for i in range(3)
        ]
        synth = [r["steps"][0] for r in records]
        assert {synth[0]["slot"], synth[1]["slot"]} == {0, 1}
        # The third waits for a robot: it starts when the first synthesis ends.
        assert synth[2]["start"] == min(synth[0]["end"], synth[1]["end"])
        assert synth[2]["start"] > synth[0]["start"]
        instruments = {i["name"]: i for i in client.get("/v1/instruments").json()}
        assert instruments["synthesis_robot"] == {
            "name": "synthesis_robot",
            "capacity": 2,
            "busy": 2,
            "queued": 1,
            "status": "up",
            "down_until": None,
        }
        deadline = time.monotonic() + 2.0  # the ticker moves queued -> running within a tick
        while (statuses := [r["status"] for r in client.get("/v1/experiments").json()["items"]]) != [
            "running",
            "running",
            "queued",
        ] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert statuses == ["running", "running", "queued"]


def test_cancel_stops_an_open_experiment_and_leaves_a_finished_one(client: httpx.Client) -> None:
    with (
        running_simlab(token=TOKEN, time_scale=1e-2) as slow_lab,
        httpx.Client(base_url=slow_lab.url, headers=AUTH) as slow,
    ):
        open_one = slow.post("/v1/experiments", json=BRANIN, headers={"Idempotency-Key": "c1"}).json()
        assert open_one["status"] == "queued" or open_one["status"] == "running"
        cancelled = slow.post(f"/v1/experiments/{open_one['id']}/cancel").json()
        assert cancelled["status"] == "cancelled" and cancelled["executions"] == 0 and cancelled["result"] is None
        assert cancelled["error"] == "cancelled by the client"
        assert slow.post(f"/v1/experiments/{open_one['id']}/cancel").json() == cancelled  # repeat: no change
    done = client.post("/v1/experiments", json=BRANIN, headers={"Idempotency-Key": "c2"}).json()
    finished = wait_terminal(client, done["id"])
    assert client.post(f"/v1/experiments/{done['id']}/cancel").json() == finished
    assert client.post("/v1/experiments/exp-999999/cancel").status_code == 404


def test_listing_pages_and_filters(client: httpx.Client) -> None:
    for i in range(7):
        client.post(
            "/v1/experiments",
            json={**BRANIN, "inputs": {"x1": float(i), "x2": 1.0}},
            headers={"Idempotency-Key": f"l{i}"},
        )
    client.post(
        "/v1/experiments", json={**BRANIN, "inputs": {"x1": 99.0, "x2": 1.0}}, headers={"Idempotency-Key": "l-bad"}
    )
    seen, cursor = [], None
    while True:
        page = client.get("/v1/experiments", params={"limit": 3, **({"cursor": cursor} if cursor else {})}).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    prefix = seen[0].removesuffix("000001")
    assert re.fullmatch(r"exp-[0-9a-f]{6}-", prefix), seen[0]  # the lab's own token: ids are not reused by a new lab
    assert seen == [f"{prefix}{i:06d}" for i in range(1, 9)]
    failed = client.get("/v1/experiments", params={"status": "failed"}).json()["items"]
    assert [item["id"] for item in failed] == [f"{prefix}000008"]
    picked = client.get("/v1/experiments", params={"ids": f"{prefix}000002,{prefix}000005,exp-404"}).json()["items"]
    assert [item["id"] for item in picked] == [f"{prefix}000002", f"{prefix}000005"]
    assert client.get("/v1/experiments", params={"since": "2999-01-01T00:00:00Z"}).json()["items"] == []
    bad = client.get("/v1/experiments", params={"status": "done"})
    assert bad.status_code == 422 and "'done' is not one of" in bad.json()["detail"]


def test_openapi_schema_and_scenario_catalogue(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/v1/experiments", "/v1/experiments/{experiment_id}", "/v1/instruments", "/healthz"} <= set(schema["paths"])
    catalogue = {s["name"]: s for s in client.get("/v1/scenarios").json()}
    assert catalogue["oer_plate_3496"]["properties"] == {
        "overpotential": {"units": "V", "description": "OER overpotential at 10 mA/cm² (minimise)"}
    }
    assert catalogue["branin"]["info"]["optimum"]["y"] == pytest.approx(0.397887)
