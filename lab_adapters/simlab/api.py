"""The JSON shapes of the lab's HTTP API (v1), as pydantic models so they appear in the OpenAPI schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lab_adapters.simlab.store import ExperimentRow
from matloop.types import PropertyValue

LabStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
LAB_STATUSES: tuple[str, ...] = ("queued", "running", "succeeded", "failed", "cancelled")


def iso(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


class ExperimentCreate(BaseModel):
    """``POST /v1/experiments``: what to make and measure."""

    model_config = ConfigDict(extra="forbid")

    scenario: str = Field(description="ground truth to run, e.g. oer_plate_3496 (see GET /v1/scenarios)")
    inputs: dict[str, Any] = Field(
        description="named parameters of a point; {'structure': {...}} for a crystal; {'image': [[...]]} for a microstructure"
    )
    properties: list[str] = Field(default_factory=list, description="properties to report; empty: all")
    campaign: str | None = None
    fidelity: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict, description="kept with the experiment, not interpreted")


class StepOut(BaseModel):
    name: str
    instrument: str
    slot: int
    start: datetime
    end: datetime


class ResultOut(BaseModel):
    properties: dict[str, PropertyValue]
    raw: dict[str, Any]


class ExperimentOut(BaseModel):
    id: str
    idempotency_key: str
    status: LabStatus
    scenario: str
    campaign: str | None
    fidelity: str | None
    inputs: dict[str, Any]
    properties: list[str]
    metadata: dict[str, Any]
    submitted_at: datetime
    started_at: datetime | None = Field(description="planned while queued, actual after")
    finished_at: datetime | None = Field(description="planned while open, actual after")
    steps: list[StepOut]
    result: ResultOut | None = Field(description="set once succeeded or failed")
    error: str | None = Field(description="why it failed or was cancelled")
    executions: int = Field(description="how many times the lab ran it: 1 once finished, 0 before or when cancelled")

    @classmethod
    def from_row(cls, row: ExperimentRow) -> ExperimentOut:
        request = row.request
        return cls(
            id=row.id,
            idempotency_key=row.idempotency_key,
            status=row.status,  # type: ignore[arg-type]
            scenario=row.scenario,
            campaign=request.get("campaign"),
            fidelity=request.get("fidelity"),
            inputs=request["inputs"],
            properties=request.get("properties") or [],
            metadata=request.get("metadata") or {},
            submitted_at=iso(row.submitted_at),  # type: ignore[arg-type]
            started_at=iso(row.started_at),
            finished_at=iso(row.finished_at),
            steps=[
                StepOut(
                    name=s["name"], instrument=s["instrument"], slot=s["slot"], start=iso(s["start"]), end=iso(s["end"])
                )
                for s in row.schedule
            ],
            result=ResultOut(**row.result) if row.result is not None and row.status != "cancelled" else None,
            error=row.error,
            executions=row.executions,
        )


class ExperimentPage(BaseModel):
    items: list[ExperimentOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")


class InstrumentOut(BaseModel):
    name: str
    capacity: int
    busy: int
    queued: int
    status: Literal["up", "down"]
    down_until: datetime | None


class ScenarioOut(BaseModel):
    name: str
    description: str
    properties: dict[str, dict[str, str]]
    steps: list[dict[str, Any]]
    info: dict[str, Any]
    available: bool = True
    unavailable_reason: str | None = None


class StatsOut(BaseModel):
    """What a test needs to prove "every key ran exactly once" from outside the lab."""

    experiments: int
    by_status: dict[str, int]
    executions_total: int
    executions_max_per_experiment: int
    counters: dict[str, int] = Field(description="accepted, idempotent_replays, completed_*, cancelled (persistent)")
    http_faults: dict[str, int] = Field(description="injected since this process started")


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str = "v1"
