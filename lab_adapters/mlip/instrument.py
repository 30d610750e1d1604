"""The MLIP instrument: a :class:`matloop.types.LabAdapter` that relaxes candidates in this process.

One job (one idempotency key) is one directory ``<work_dir>/<key>/``:

- ``job.json``     the request, written (atomically) by ``submit`` before anything runs;
- ``result.json``  what the relaxation gave, or why it failed or was cancelled, written once.

Jobs run when they are polled (or fetched): every submitted job that has no result yet is relaxed in one
batch through ``surrogates.mlip`` (the batched CHGNet relaxer by default), so a batch dispatched together
is relaxed together.  A run that is killed and resumed finds its jobs on disk: finished ones are read
back, unfinished ones are relaxed again (a relaxation is deterministic), and nothing is computed twice
once its result is written.  The external id is the key itself.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lab_adapters.mlip.config import MLIPAdapter
from matloop.types import AdapterError, JobRequest, JobResult, JobStatus, PropertyValue

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")

#: what one relaxation measures, and in which units
PROPERTY_UNITS: dict[str, str] = {
    "formation_energy": "eV/atom",  # against elemental references relaxed with the same potential
    "energy_per_atom": "eV/atom",
    "volume_per_atom": "Å^3/atom",
}


def default_work_dir() -> Path:
    """``$MATLOOP_DATA_DIR/mlip``, else the user's data dir (where matloop keeps its database)."""
    base = os.environ.get("MATLOOP_DATA_DIR")
    if not base:
        import platformdirs

        base = platformdirs.user_data_dir("matloop")
    return Path(base) / "mlip"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a reader (or a restarted run) sees the whole file or none of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class MLIPInstrument:
    """Relaxes candidates with an MLIP; ``formation_energy``, ``energy_per_atom`` and ``volume_per_atom``."""

    def __init__(self, name: str, config: MLIPAdapter) -> None:
        self.name = name
        self.config = config
        self.work_dir = Path(config.work_dir) if config.work_dir else default_work_dir()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._screen: Any = None  # the relaxer and its elemental references, built on the first job

    # -- files ----------------------------------------------------------------------------------
    def _dir(self, key: str) -> Path:
        if not _KEY.match(key):
            raise AdapterError(f"{self.name}: job key {key!r} is not usable as a directory name")
        return self.work_dir / key

    def _result(self, key: str) -> dict[str, Any] | None:
        return _read_json(self._dir(key) / "result.json")

    # -- the protocol ---------------------------------------------------------------------------
    def submit(self, job: JobRequest) -> str:
        key = job.idempotency_key
        directory = self._dir(key)
        known = _read_json(directory / "job.json")
        if known is not None:
            if JobRequest.model_validate(known).candidate.fingerprint != job.candidate.fingerprint:
                raise AdapterError(f"{self.name}: key {key} was already used for another candidate")
            return key
        unknown = sorted(set(job.properties) - set(PROPERTY_UNITS))
        if unknown:
            raise AdapterError(f"{self.name}: cannot measure {unknown}; the MLIP reports {sorted(PROPERTY_UNITS)}")
        self._structure(job)  # refuse a job without a usable structure now, in a sentence
        directory.mkdir(parents=True, exist_ok=True)
        _write_json(directory / "job.json", json.loads(job.model_dump_json()))
        return key

    def poll(self, external_ids: Sequence[str]) -> dict[str, JobStatus]:
        out: dict[str, JobStatus] = {}
        waiting: list[str] = []
        for key in dict.fromkeys(external_ids):
            try:
                directory = self._dir(key)
            except AdapterError:
                out[key] = JobStatus.LOST
                continue
            result = self._result(key)
            if result is not None:
                out[key] = JobStatus(result["status"])
            elif (directory / "job.json").is_file():
                waiting.append(key)
            else:
                out[key] = JobStatus.LOST  # never submitted here (or its directory was deleted)
        if waiting:
            self._run(waiting)
            for key in waiting:
                result = self._result(key)
                out[key] = JobStatus(result["status"]) if result else JobStatus.LOST
        return {key: out[key] for key in external_ids}

    def fetch(self, external_id: str) -> JobResult:
        status = self.poll([external_id])[external_id]
        result = self._result(external_id)
        if result is None:
            raise AdapterError(f"{self.name}: no job {external_id} in {self.work_dir}")
        raw = {k: result[k] for k in ("potential", "converged", "steps", "settings") if k in result}
        if status != JobStatus.SUCCEEDED:
            return JobResult(status=status, raw=raw, error=result.get("error"))
        properties = {
            prop: PropertyValue(value=float(result["values"][prop]), units=PROPERTY_UNITS[prop])
            for prop in result["properties"]
        }
        return JobResult(status=status, properties=properties, raw=raw)

    def cancel(self, external_id: str) -> None:
        directory = self._dir(external_id)
        if (directory / "job.json").is_file() and self._result(external_id) is None:
            _write_json(directory / "result.json", {"status": JobStatus.CANCELLED.value, "error": "cancelled"})

    # -- running jobs ---------------------------------------------------------------------------
    def _structure(self, job: JobRequest):  # noqa: ANN202 - pymatgen is imported here, not at import time
        from lab_adapters.dft.structure import structure_from_dict

        try:
            return structure_from_dict(job.candidate.structure)
        except ValueError as exc:
            raise AdapterError(f"{self.name}: job {job.idempotency_key}: {exc}") from exc

    def _screening(self) -> Any:
        if self._screen is None:
            from surrogates.mlip import MLIPScreen, MLIPSettings

            c = self.config
            self._screen = MLIPScreen(MLIPSettings(
                model_path=c.model_path, trust_model_file=c.trust_model_file, fmax=c.fmax, steps=c.steps,
                threads=c.threads, batch_size=c.batch_size, optimizer=c.optimizer, cache_dir=c.cache_dir,
            ))
        return self._screen

    def _run(self, keys: list[str]) -> None:
        """Relax every waiting job in one batch and write each one's result."""
        from surrogates.mlip import relax_all

        jobs = {key: JobRequest.model_validate(_read_json(self._dir(key) / "job.json")) for key in keys}
        screen = self._screening()
        structures = [self._structure(jobs[key]) for key in keys]
        relaxed = relax_all(screen.relaxer, structures, relax_cell=self.config.relax_cell)
        settings = self.config.model_dump(include={"fmax", "steps", "relax_cell", "optimizer"})
        for key, res in zip(keys, relaxed, strict=True):
            record: dict[str, Any] = {
                "potential": screen.relaxer.name, "converged": res.converged, "steps": res.steps, "settings": settings,
            }
            if not res.ok:
                record |= {"status": JobStatus.FAILED.value, "error": res.error or "the relaxation gave no energy"}
            else:
                record |= self._measure(jobs[key], res)
            if self._result(key) is None:  # a cancel that came meanwhile stands
                _write_json(self._dir(key) / "result.json", record)

    def _measure(self, job: JobRequest, res: Any) -> dict[str, Any]:
        from surrogates.mlip import estimate_stability

        final = res.structure
        try:
            (estimate,) = estimate_stability([(final, res.energy_per_atom)], self._screening().references)
        except Exception as exc:  # an element the potential cannot make a reference for
            return {"status": JobStatus.FAILED.value, "error": f"no elemental reference: {exc}"}
        values = {
            "formation_energy": estimate.formation_energy_per_atom,
            "energy_per_atom": res.energy_per_atom,
            "volume_per_atom": final.volume / len(final),
        }
        return {"status": JobStatus.SUCCEEDED.value, "properties": list(job.properties), "values": values,
                "structure": final.as_dict()}
