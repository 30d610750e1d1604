"""``SimLabAdapter``: the :class:`~matloop.types.LabAdapter` that speaks to the simulated lab over HTTP.

Shaped after Ax's ``Runner`` (``run`` → ``submit``, ``poll_trial_status`` →
``poll`` for many jobs in one call, ``stop`` → ``cancel``) with results fetched
separately as jobflow-remote does once a job is terminal.  Every call is safe to
repeat: ``submit`` sends the job's idempotency key on the first try and on every
retry, so a submission whose response was lost (5xx after the lab accepted it,
a dropped connection) is recognised by the lab rather than run again.

Retries cover connection errors, timeouts, 429 and 5xx; other 4xx answers are the
caller's mistake and raise a non-transient :class:`~matloop.types.AdapterError`
carrying the lab's own explanation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import httpx

from lab_adapters.retry import Backoff, TransientFailure, call_with_retries
from matloop.types import AdapterError, CandidateKind, JobRequest, JobResult, JobStatus, PropertyValue

#: The lab's experiment status → the controller's job status.
STATUS_MAP: dict[str, JobStatus] = {
    "queued": JobStatus.SUBMITTED,
    "running": JobStatus.RUNNING,
    "succeeded": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
}
#: Ids per poll request (keeps URLs short).
POLL_CHUNK = 100


def job_to_request(job: JobRequest) -> dict[str, Any]:
    """The ``POST /v1/experiments`` body for a job.

    The scenario is ``job.options["scenario"]``, else the fidelity name (a
    campaign whose fidelity *is* the scenario needs no options).
    """
    candidate = job.candidate
    if candidate.kind is CandidateKind.POINT:
        inputs: dict[str, Any] = dict(candidate.params or {})
    elif candidate.kind is CandidateKind.COMPOSITION:
        inputs = dict(candidate.composition or {})
    elif candidate.kind is CandidateKind.STRUCTURE:
        inputs = {"structure": candidate.structure}
    else:
        inputs = {"image": candidate.image}
    options = dict(job.options)
    scenario = options.pop("scenario", None) or job.fidelity
    return {
        "scenario": scenario,
        "inputs": inputs,
        "properties": list(job.properties),
        "campaign": job.campaign,
        "fidelity": job.fidelity,
        "metadata": {"attempt": job.attempt, "fingerprint": candidate.fingerprint, "options": options},
    }


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail) if detail else response.text[:300] or response.reason_phrase


class SimLabAdapter:
    """A :class:`~matloop.types.LabAdapter` over the simulated lab's v1 HTTP API."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        max_retries: int = 6,
        backoff: float = 0.2,
        backoff_max: float = 5.0,
        name: str = "simlab",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        token = token or os.environ.get("MATLOOP_SIMLAB_TOKEN")
        if not token:
            raise AdapterError(f"no token for the simulated lab at {base_url}: pass token= or set MATLOOP_SIMLAB_TOKEN")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.backoff = Backoff(max_retries=max_retries, base=backoff, cap=backoff_max)
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "matloop-simlab-adapter/1"},
            transport=transport,
        )

    # -- plumbing --------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One logical request: retried on transient failures, 4xx turned into a clear AdapterError."""

        def attempt() -> httpx.Response:
            try:
                response = self._client.request(method, path, **kwargs)
            except httpx.TransportError as exc:  # connect/read/write errors and timeouts
                raise TransientFailure(f"{type(exc).__name__}: {exc}") from exc
            if response.status_code >= 500 or response.status_code == 429:
                retry_after = response.headers.get("Retry-After")
                raise TransientFailure(
                    f"HTTP {response.status_code}: {_detail(response)}",
                    retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
                )
            return response

        try:
            response = call_with_retries(attempt, self.backoff)
        except TransientFailure as exc:
            tries = getattr(exc, "attempts", self.backoff.max_retries + 1)
            raise AdapterError(
                f"simulated lab at {self.base_url}: {method} {path} failed after {tries} attempts: {exc}",
                transient=True,
            ) from exc
        if response.status_code in (401, 403):
            raise AdapterError(
                f"simulated lab at {self.base_url} refused the token ({response.status_code}): {_detail(response)}"
            )
        return response

    def _client_error(self, response: httpx.Response, what: str) -> AdapterError:
        return AdapterError(f"simulated lab refused {what} ({response.status_code}): {_detail(response)}")

    # -- LabAdapter --------------------------------------------------------------------------------

    def submit(self, job: JobRequest) -> str:
        """Submit ``job``; the lab's experiment id.  Repeating it (same key) returns the same id."""
        response = self._request(
            "POST", "/v1/experiments", json=job_to_request(job), headers={"Idempotency-Key": job.idempotency_key}
        )
        if response.status_code not in (200, 201):
            raise self._client_error(response, f"job {job.idempotency_key}")
        return str(response.json()["id"])

    def poll(self, external_ids: Sequence[str]) -> dict[str, JobStatus]:
        """Status of each id, in one request per hundred; an id the lab does not know is ``lost``."""
        ids = list(dict.fromkeys(external_ids))
        statuses: dict[str, JobStatus] = {}
        for start in range(0, len(ids), POLL_CHUNK):
            chunk = ids[start : start + POLL_CHUNK]
            response = self._request("GET", "/v1/experiments", params={"ids": ",".join(chunk), "limit": len(chunk)})
            if response.status_code != 200:
                raise self._client_error(response, "a status poll")
            for item in response.json()["items"]:
                statuses[item["id"]] = STATUS_MAP[item["status"]]
        return {i: statuses.get(i, JobStatus.LOST) for i in ids}

    def experiment(self, external_id: str) -> dict[str, Any] | None:
        """The lab's full record of one experiment (None if it has none)."""
        response = self._request("GET", f"/v1/experiments/{external_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._client_error(response, f"reading {external_id}")
        return response.json()

    def fetch(self, external_id: str) -> JobResult:
        """The result of a finished experiment; ``AdapterError(transient=True)`` while it is still open."""
        record = self.experiment(external_id)
        if record is None:
            return JobResult(status=JobStatus.LOST, error=f"the simulated lab has no experiment {external_id!r}")
        status = STATUS_MAP[record["status"]]
        if not status.is_terminal:
            raise AdapterError(f"experiment {external_id} is still {record['status']}", transient=True)
        result = record.get("result") or {}
        properties = {name: PropertyValue(**value) for name, value in (result.get("properties") or {}).items()}
        raw = {
            "lab": "simlab",
            "experiment": {k: v for k, v in record.items() if k != "result"},
            "measurement": result.get("raw") or {},
        }
        return JobResult(status=status, properties=properties, raw=raw, error=record.get("error"))

    def cancel(self, external_id: str) -> None:
        """Cancel an open experiment; no effect on a finished one."""
        response = self._request("POST", f"/v1/experiments/{external_id}/cancel")
        if response.status_code != 200:
            raise self._client_error(response, f"cancelling {external_id}")

    # -- extras ----------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The lab's counters (``GET /v1/stats``): how many experiments, and how often each ran."""
        response = self._request("GET", "/v1/stats")
        if response.status_code != 200:
            raise self._client_error(response, "reading stats")
        return response.json()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SimLabAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
