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

The lab's answers are untrusted (DESIGN.md): a record whose status this client does
not know, or which is not shaped like a record, raises
:class:`~matloop.types.LabAnswerError` (the loop stores that job as failed with the
sentence); a property whose value is not a finite number of sane size, or which
carries a field it should not, becomes a failed measurement of that property with
its reason (``JobResult.property_errors``), never an exception.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import httpx

from lab_adapters.retry import Backoff, TransientFailure, call_with_retries
from matloop.types import (
    AdapterError,
    CandidateKind,
    JobRequest,
    JobResult,
    JobStatus,
    LabAnswerError,
    PropertyValue,
    property_value_from_answer,
)

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
#: The longest answer body read from the lab. Its pages stop at 8 MiB (``limits.MAX_PAGE_BYTES``); a longer
#: answer is a broken or hostile lab, and reading it whole would put the flow's memory at its mercy.
MAX_ANSWER_BYTES = 16 * 1024 * 1024


class AnswerTooLarge(LabAnswerError):
    """The lab's answer body is longer than :data:`MAX_ANSWER_BYTES` (read no further)."""


def read_bounded(client: httpx.Client, request: httpx.Request, max_bytes: int) -> httpx.Response:
    """Send ``request`` and read at most ``max_bytes`` of the body, whatever Content-Length claims."""
    response = client.send(request, stream=True)
    try:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise AnswerTooLarge(_too_large(request, int(declared), max_bytes))
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise AnswerTooLarge(_too_large(request, None, max_bytes))
    finally:
        response.close()
    headers = [(k, v) for k, v in response.headers.items() if k.lower() not in ("content-length", "content-encoding")]
    return httpx.Response(response.status_code, headers=headers, content=bytes(body), request=request)


def _too_large(request: httpx.Request, size: int | None, max_bytes: int) -> str:
    told = f"{size:,} bytes" if size is not None else "more"
    return (f"the simulated lab's answer to {request.method} {request.url.path} is {told}, longer than the "
            f"{max_bytes:,} bytes this controller reads")


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


def lab_status(external_id: str, status: Any) -> JobStatus:
    """The controller's status for the lab's word; :class:`LabAnswerError` for a word the lab's API does not have."""
    if isinstance(status, str) and status in STATUS_MAP:
        return STATUS_MAP[status]
    shown = repr(status[:40]) if isinstance(status, str) else type(status).__name__
    raise LabAnswerError(f"the simulated lab reported status {shown} for experiment {external_id}, "
                         f"which is none of {', '.join(STATUS_MAP)}")


def read_properties(result: Any) -> tuple[dict[str, PropertyValue], dict[str, str]]:
    """The usable properties of a lab result, and the reason for each one that is not usable."""
    properties: dict[str, PropertyValue] = {}
    errors: dict[str, str] = {}
    answers = result.get("properties") if isinstance(result, dict) else None
    if not isinstance(answers, dict):
        return properties, errors
    for name, answer in answers.items():
        try:
            properties[str(name)] = property_value_from_answer(answer)
        except ValueError as exc:
            errors[str(name)] = f"the lab's answer for {str(name)[:100]!r} cannot be used: {exc}"
    return properties, errors


def _json(response: httpx.Response, what: str) -> Any:
    """The body as JSON; a body that is not JSON is the lab's fault, said in one sentence."""
    try:
        return response.json()
    except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deep to read
        raise AdapterError(f"the simulated lab's answer to {what} is not JSON: {response.text[:200]!r}") from exc


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
                response = read_bounded(self._client, self._client.build_request(method, path, **kwargs),
                                        MAX_ANSWER_BYTES)
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
        body = _json(response, f"submitting job {job.idempotency_key}")
        external_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(external_id, str) or not 0 < len(external_id) <= 200:
            raise AdapterError(f"the simulated lab accepted job {job.idempotency_key} without a usable id "
                               "(text of 1 to 200 characters)")
        return external_id

    def poll(self, external_ids: Sequence[str]) -> dict[str, JobStatus]:
        """Status of each id, in one request per hundred; an id the lab does not know is ``lost``."""
        ids = list(dict.fromkeys(external_ids))
        statuses: dict[str, JobStatus] = {}
        for start in range(0, len(ids), POLL_CHUNK):
            chunk = ids[start : start + POLL_CHUNK]
            response = self._request("GET", "/v1/experiments", params={"ids": ",".join(chunk), "limit": len(chunk)})
            if response.status_code != 200:
                raise self._client_error(response, "a status poll")
            body = _json(response, "a status poll")
            items = body.get("items") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise AdapterError("the simulated lab's answer to a status poll has no list of items")
            for item in items:
                if isinstance(item, dict) and item.get("id") in chunk:
                    statuses[item["id"]] = lab_status(item["id"], item.get("status"))
        return {i: statuses.get(i, JobStatus.LOST) for i in ids}

    def experiment(self, external_id: str) -> dict[str, Any] | None:
        """The lab's full record of one experiment (None if it has none)."""
        response = self._request("GET", f"/v1/experiments/{external_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._client_error(response, f"reading {external_id}")
        record = _json(response, f"reading {external_id}")
        if not isinstance(record, dict):
            raise LabAnswerError(f"the simulated lab's record of experiment {external_id} is not an object")
        return record

    def fetch(self, external_id: str) -> JobResult:
        """The result of a finished experiment; ``AdapterError(transient=True)`` while it is still open."""
        record = self.experiment(external_id)
        if record is None:
            return JobResult(status=JobStatus.LOST, error=f"the simulated lab has no experiment {external_id!r}")
        status = lab_status(external_id, record.get("status"))
        if not status.is_terminal:
            raise AdapterError(f"experiment {external_id} is still {record['status']}", transient=True)
        result = record.get("result")
        result = result if isinstance(result, dict) else {}
        properties, property_errors = read_properties(result)
        measurement_raw = result.get("raw")
        raw = {
            "lab": "simlab",
            "experiment": {str(k): v for k, v in record.items() if k != "result"},
            "measurement": measurement_raw if isinstance(measurement_raw, dict) else {},
        }
        error = record.get("error")
        return JobResult(
            status=status, properties=properties, raw=raw, property_errors=property_errors,
            error=None if error is None else str(error)[:2000],
        )

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
