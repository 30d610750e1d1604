"""The simulated lab itself, without HTTP: accept, schedule, advance in virtual time, evaluate, cancel.

Time is virtual: a step of ``h`` lab hours takes ``h * 3600 * time_scale`` real
seconds.  Each experiment is scheduled when it is accepted (first come, first
served, on the instrument slot that frees first, pushed past outages), and the
schedule is stored, so a lab that is killed and restarted finds every experiment
where the clock says it should be: those whose time has passed complete at the
next tick, the others continue.  An experiment is evaluated exactly once, when its
last step ends, inside the transaction that stores the result.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lab_adapters.simlab.faults import OutagePlan, failure_reason, seeded_rng
from lab_adapters.simlab.scenarios import Scenario, ScenarioUnavailable, get_scenario, scenario_names
from lab_adapters.simlab.store import ExperimentRow, LabStore
from matloop.types import stable_hash

#: Default instrument park: capacity (parallel slots) of each instrument the built-in scenarios use.
DEFAULT_INSTRUMENTS: dict[str, int] = {
    "synthesis_robot": 2,
    "electrochem_station": 1,
    "characterisation_station": 1,
    "dft_cluster": 4,
    "evaluator": 8,
}


class LabRequestError(ValueError):
    """A request the lab refuses outright (unknown scenario, unknown property, key reuse); HTTP 4xx."""

    def __init__(self, message: str, status_code: int = 422) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass
class LabConfig:
    """Everything that shapes one lab; the CLI options map one to one onto these fields."""

    scenarios: list[str] | None = None  # None: every registered scenario
    token: str | None = None  # None: any bearer token is accepted (a token is still required)
    time_scale: float = 1e-3  # real seconds per lab second
    failure_rate: float = 0.0  # share of experiments that fail (failed synthesis, instrument fault)
    error_rate: float = 0.0  # share of HTTP requests on /v1/experiments answered 500/503
    slow_rate: float = 0.0  # share of those requests answered slowly
    slow_seconds: float = 0.5
    outage_rate: float = 0.0  # outages per instrument per 100 lab hours
    outage_hours: float = 8.0  # mean outage length in lab hours
    noise_scale: float = 1.0  # multiplies every scenario's measurement noise (0: noise-free)
    seed: int = 0
    state_path: Path | None = None  # SQLite file; None keeps state in memory
    instruments: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_INSTRUMENTS))
    max_body_bytes: int = 1024 * 1024  # larger request bodies are refused with 413 before they are read whole

    def __post_init__(self) -> None:
        for name in ("failure_rate", "error_rate", "slow_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        if not self.time_scale > 0:
            raise ValueError(f"time_scale must be positive, got {self.time_scale}")
        if self.max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be at least 1, got {self.max_body_bytes}")
        if self.noise_scale < 0:
            raise ValueError(f"noise_scale must be non-negative, got {self.noise_scale}")
        unknown = [s for s in self.scenarios or [] if s not in scenario_names()]
        if unknown:
            raise ValueError(f"unknown scenario(s) {unknown}; known scenarios: {scenario_names()}")
        for name, capacity in self.instruments.items():
            if capacity < 1:
                raise ValueError(f"instrument {name!r} needs a capacity of at least 1, got {capacity}")


class Lab:
    """One simulated lab over one :class:`LabStore`."""

    def __init__(self, config: LabConfig) -> None:
        self.config = config
        self.store = LabStore(config.state_path or ":memory:")
        self.epoch = float(self.store.meta("epoch", repr(time.time())))
        # Experiment ids carry the store's own token: a lab restarted without its state file (the in-process
        # default) numbers from 1 again, and a controller still holding an id from the old lab must be told
        # "no such experiment", never be given another candidate's experiment under a reused number.
        self.id_prefix = f"exp-{self.store.meta('id_token', secrets.token_hex(3))}-"
        self.outages = OutagePlan(seed=config.seed, rate=config.outage_rate, mean_hours=config.outage_hours)
        self._advance_lock = threading.Lock()

    # -- time ----------------------------------------------------------------------------------

    def real_seconds(self, lab_hours: float) -> float:
        return lab_hours * 3600.0 * self.config.time_scale

    def lab_hours(self, real_time: float) -> float:
        """Lab hours since the lab's epoch at Unix time ``real_time``."""
        return (real_time - self.epoch) / (3600.0 * self.config.time_scale)

    # -- scenarios and instruments -------------------------------------------------------------

    @property
    def scenario_names(self) -> list[str]:
        return list(self.config.scenarios or scenario_names())

    def scenario(self, name: str) -> Scenario:
        if name not in self.scenario_names:
            raise LabRequestError(f"scenario {name!r} is not served by this lab; it serves {self.scenario_names}")
        try:
            return get_scenario(name)
        except ScenarioUnavailable as exc:
            raise LabRequestError(str(exc)) from exc

    def capacity(self, instrument: str) -> int:
        return self.config.instruments.get(instrument, 1)

    def instrument_names(self) -> list[str]:
        names = dict.fromkeys(self.config.instruments)
        for name in self.scenario_names:
            try:
                steps = get_scenario(name).steps
            except Exception:  # an unavailable scenario adds no instruments; it reports itself elsewhere
                continue
            names.update(dict.fromkeys(step.instrument for step in steps))
        return list(names)

    # -- accepting -----------------------------------------------------------------------------

    def submit(self, key: str, request: dict[str, Any], now: float | None = None) -> tuple[ExperimentRow, bool]:
        """Accept ``request`` under idempotency ``key``: (experiment, created).  A seen key returns its experiment."""
        if not key or len(key) > 255:
            raise LabRequestError("the Idempotency-Key header must be 1 to 255 characters", 400)
        request_hash = stable_hash(request)
        scenario = self.scenario(request["scenario"])
        unknown = [p for p in request.get("properties") or [] if p not in scenario.properties]
        if unknown:
            raise LabRequestError(
                f"scenario {scenario.name!r} does not measure {unknown}; it measures {list(scenario.properties)}"
            )
        replay = self._replay(key, request_hash)
        if replay is not None:
            return replay, False
        # The domain check may be slow (structure matching): run it outside the store's lock.
        try:
            domain_error = scenario.domain_error(request["inputs"])
        except Exception as exc:  # a broken check must still give a clear, stored answer
            domain_error = f"the scenario could not check these inputs ({type(exc).__name__}: {exc})"
        now = time.time() if now is None else now
        with self.store.transaction() as conn:
            existing = self.store.by_key(conn, key)
            if existing is not None:  # accepted by a concurrent request meanwhile
                self._check_same_request(existing, key, request_hash)
                self.store.bump(conn, "idempotent_replays")
                return existing, False
            seq = self.store.next_seq(conn)
            row = ExperimentRow(
                seq=seq,
                id=f"{self.id_prefix}{seq:06d}",
                idempotency_key=key,
                request_hash=request_hash,
                request=request,
                scenario=scenario.name,
                status="queued",
                submitted_at=now,
                started_at=None,
                finished_at=None,
                schedule=[],
                planned_failure=None,
                result=None,
                error=None,
                executions=0,
                updated_at=now,
            )
            if domain_error is not None:
                # Refused by the lab's planner before any instrument time: failed at once, and that is its run.
                row.status, row.error, row.executions = "failed", f"outside the domain: {domain_error}", 1
                row.started_at = row.finished_at = now
                row.result = {"properties": {}, "raw": {"scenario": scenario.name, "stage": "planning"}}
            else:
                self._schedule(conn, row, scenario, now)
            self.store.insert(conn, row)
            self.store.bump(conn, "accepted")
        return row, True

    @staticmethod
    def _check_same_request(existing: ExperimentRow, key: str, request_hash: str) -> None:
        if existing.request_hash != request_hash:
            raise LabRequestError(
                f"Idempotency-Key {key!r} was already used for a different request "
                f"(experiment {existing.id}); use a new key for a new experiment",
                422,
            )

    def _replay(self, key: str, request_hash: str) -> ExperimentRow | None:
        """The experiment already accepted under ``key`` (counted as a replay), or None."""
        with self.store.transaction() as conn:
            existing = self.store.by_key(conn, key)
            if existing is None:
                return None
            self._check_same_request(existing, key, request_hash)
            self.store.bump(conn, "idempotent_replays")
            return existing

    def _schedule(self, conn: Any, row: ExperimentRow, scenario: Scenario, now: float) -> None:
        """Book every step on the instrument slot that frees first (FIFO), and decide any injected failure."""
        steps = list(scenario.steps)
        if not steps:  # a scenario with no instrument time completes at the next tick
            row.started_at = row.finished_at = now
            return
        rng = seeded_rng(self.config.seed, "failure", row.idempotency_key)
        failing_step: int | None = None
        if rng.random() < self.config.failure_rate:
            failing_step = int(rng.integers(len(steps)))
            row.planned_failure = {
                "step": failing_step,
                "reason": failure_reason(steps[failing_step].instrument, rng),
            }
        t = now
        for index, step in enumerate(steps):
            free = self.store.slot_free_times(conn, step.instrument, self.capacity(step.instrument))
            slot = int(np.argmin([max(f, t) for f in free]))
            start = max(free[slot], t)
            start_h = self.outages.earliest_start(step.instrument, self.lab_hours(start), step.hours)
            start = max(start, self.epoch + self.real_seconds(start_h))
            end = start + self.real_seconds(step.hours)
            self.store.reserve_slot(conn, step.instrument, slot, end)
            row.schedule.append(
                {"name": step.name, "instrument": step.instrument, "slot": slot, "start": start, "end": end}
            )
            t = end
            if index == failing_step:
                break
        row.started_at = row.schedule[0]["start"]
        row.finished_at = row.schedule[-1]["end"]

    # -- advancing -----------------------------------------------------------------------------

    def advance(self, now: float | None = None) -> int:
        """Bring every open experiment up to ``now``; returns how many changed.  Safe to call from any thread.

        If another thread is already advancing, return at once rather than queue behind
        it: readers then see the state of a moment ago, and the ticker catches up.
        """
        now = time.time() if now is None else now
        changed = 0
        if not self._advance_lock.acquire(blocking=False):
            return 0
        try:
            for row in self.store.due(now):
                if row.finished_at is not None and row.finished_at <= now:
                    changed += self._complete(row, now)
                else:
                    with self.store.transaction() as conn:
                        self.store.set_running(conn, row.id, now)
                    changed += 1
        finally:
            self._advance_lock.release()
        return changed

    def _complete(self, row: ExperimentRow, now: float) -> int:
        if row.planned_failure is not None:
            status, error, result = "failed", row.planned_failure["reason"], {"properties": {}, "raw": {}}
            result["raw"] = {"scenario": row.scenario, "failed_step": row.schedule[-1]["name"]}
        else:
            status, error, result = self._evaluate(row)
        with self.store.transaction() as conn:
            done = self.store.finish(conn, row.id, status=status, result=result, error=error, now=now, executed=True)
            if done:
                self.store.bump(conn, f"completed_{status}")
        return int(done)

    def _evaluate(self, row: ExperimentRow) -> tuple[str, str | None, dict[str, Any]]:
        request = row.request
        raw: dict[str, Any] = {"scenario": row.scenario, "steps": [s["name"] for s in row.schedule]}
        try:
            scenario = get_scenario(row.scenario)
            rng = seeded_rng(self.config.seed, "measurement", row.idempotency_key)
            outcome = scenario.evaluate(request["inputs"], rng, self.config.noise_scale)
        except Exception as exc:  # a broken scenario must still end the experiment, with the reason
            return "failed", f"lab software error in scenario {row.scenario!r}: {exc}", {"properties": {}, "raw": raw}
        raw.update(outcome.raw)
        if not outcome.ok:
            return "failed", outcome.error, {"properties": {}, "raw": raw}
        wanted = request.get("properties") or list(outcome.values)
        properties = {name: outcome.values[name].model_dump() for name in wanted if name in outcome.values}
        missing = [name for name in wanted if name not in outcome.values]
        if missing:
            return (
                "failed",
                f"scenario {row.scenario!r} returned no value for {missing}",
                {"properties": {}, "raw": raw},
            )
        return "succeeded", None, {"properties": properties, "raw": raw}

    # -- reading and cancelling ----------------------------------------------------------------

    def get(self, experiment_id: str) -> ExperimentRow | None:
        self.advance()
        return self.store.get(experiment_id)

    def cancel(self, experiment_id: str) -> ExperimentRow | None:
        """Cancel an open experiment (no effect on a finished one); None if the id is unknown.

        Its booked instrument time stays booked (the robot has already been
        programmed); later experiments are not moved earlier.
        """
        self.advance()
        now = time.time()
        with self.store.transaction() as conn:
            if self.store.finish(
                conn,
                experiment_id,
                status="cancelled",
                result=None,
                error="cancelled by the client",
                now=now,
                executed=False,
            ):
                self.store.bump(conn, "cancelled")
        return self.store.get(experiment_id)

    def list(
        self,
        *,
        status: str | None = None,
        since: float | None = None,
        ids: Sequence[str] | None = None,
        after_seq: int = 0,
        limit: int = 100,
    ) -> list[ExperimentRow]:
        self.advance()
        return self.store.page(status=status, since=since, ids=ids, after_seq=after_seq, limit=limit)

    def instruments(self, now: float | None = None) -> list[dict[str, Any]]:
        self.advance()
        now = time.time() if now is None else now
        out = []
        for name in self.instrument_names():
            busy, waiting = self.store.instrument_load(name, now)
            down = self.outages.down_until(name, self.lab_hours(now))
            out.append(
                {
                    "name": name,
                    "capacity": self.capacity(name),
                    "busy": busy,
                    "queued": waiting,
                    "status": "down" if down is not None else "up",
                    "down_until": self.epoch + self.real_seconds(down) if down is not None else None,
                }
            )
        return out

    def close(self) -> None:
        self.store.close()
