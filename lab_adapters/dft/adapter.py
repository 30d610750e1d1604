"""The DFT adapter: job directories, attempts and retries, results -- over any :class:`Scheduler`.

One matloop job (one idempotency key) is one directory ``<work_dir>/<key>/``:

- ``job.json``      the request (candidate structure, fidelity, properties), written before anything runs;
- ``record.json``   the attempts and how each ended, written after each submission (the adapter's state);
- ``attempt-N/``    one self-contained attempt: structure, inputs, ``job.sh``, and the ``result.json``
                    the job writes (plus ``started`` and ``exit_code`` markers).

The external id is the key itself: it stays the same when a failed attempt is
retried with other settings.  Submitting is crash-safe: an attempt that was
queued but not recorded is found again by name (``Scheduler.find``) or by its
``started`` marker, never submitted twice.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from pymatgen.core import Structure

from lab_adapters.dft.failures import Outcome, classify, plan_retry
from lab_adapters.dft.recipes import get_recipe
from lab_adapters.dft.runner import CommandRunner
from lab_adapters.dft.scheduler import SchedJob, SchedState, Scheduler
from lab_adapters.dft.settings import PROPERTY_UNITS, DFTSettings, RecipeSettings, Resources
from lab_adapters.dft.structure import structure_from_dict
from matloop.types import AdapterError, JobRequest, JobResult, JobStatus, PropertyValue

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")

JOB_SCRIPT = """#!/bin/bash
# matloop DFT job {key}, attempt {n}: {code} {task} of {formula}. Self-contained: run it again with `bash job.sh`.
cd {directory} || exit 2
echo "${{SLURM_JOB_ID:-local}} $(hostname) $(date +%s)" > started
export OMP_NUM_THREADS=${{SLURM_CPUS_PER_TASK:-${{MATLOOP_CPUS:-1}}}}
{command}
rc=$?
echo $rc > exit_code
exit $rc
"""


def _attempt_name(key: str, n: int) -> str:
    return key if n == 0 else f"{key}.retry{n}"


class DFTQueueAdapter:
    """A :class:`matloop.types.LabAdapter` that runs DFT recipes through a scheduler (SLURM or local)."""

    def __init__(
        self, name: str, scheduler: Scheduler, settings: DFTSettings, *, runner: CommandRunner, work_dir: str
    ) -> None:
        self.name = name
        self.scheduler = scheduler
        self.settings = settings
        self.runner = runner
        self.work_dir = work_dir.rstrip("/")

    # -- files --------------------------------------------------------------------------------
    def _dir(self, key: str) -> str:
        if not _KEY.match(key):
            raise AdapterError(f"job key {key!r} is not usable as a job name (letters, digits, '_' and '-')")
        return f"{self.work_dir}/{key}"

    def _read_json(self, path: str) -> dict[str, Any] | None:
        text = self.runner.read_file(path)
        if text is None:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return None  # a half-written result counts as missing

    def _record(self, key: str) -> dict[str, Any] | None:
        return self._read_json(f"{self._dir(key)}/record.json")

    def _save(self, record: dict[str, Any]) -> None:
        record["updated_at"] = time.time()
        self.runner.put_files(self._dir(record["key"]), {"record.json": json.dumps(record, indent=1)})

    def reference_cache(self, recipe: RecipeSettings) -> str:
        """Where elemental reference energies for these settings are cached (one folder per physics hash)."""
        return f"{self.work_dir}/references/{recipe.code}-{recipe.physics_hash()}"

    # -- submit -------------------------------------------------------------------------------
    def _validate(self, job: JobRequest) -> tuple[Structure, RecipeSettings, Resources]:
        unknown = [p for p in job.properties if p not in PROPERTY_UNITS]
        if unknown:
            raise AdapterError(f"{self.name}: cannot compute {unknown}; DFT jobs report {sorted(PROPERTY_UNITS)}")
        try:
            structure = structure_from_dict(job.candidate.structure)
            recipe_settings = self.settings.recipe_for(job.fidelity, job.options)
            resources = self.settings.resources_for(job.fidelity)
            get_recipe(recipe_settings.code).check(structure, recipe_settings, list(job.properties))
        except (ValueError, ValidationError) as exc:
            raise AdapterError(f"{self.name}: job {job.idempotency_key} cannot run: {exc}") from exc
        return structure, recipe_settings, resources

    def submit(self, job: JobRequest) -> str:
        key = job.idempotency_key
        directory = self._dir(key)
        record = self._record(key)
        if record is not None:
            if record.get("fingerprint") != job.candidate.fingerprint:
                raise AdapterError(f"{self.name}: key {key} was already used for another candidate")
            return key
        structure, recipe_settings, resources = self._validate(job)
        self.runner.put_files(directory, {"job.json": job.model_dump_json(indent=1)})
        record = {
            "key": key,
            "adapter": self.name,
            "scheduler": self.scheduler.kind,
            "campaign": job.campaign,
            "fingerprint": job.candidate.fingerprint,
            "formula": structure.composition.formula,
            "natoms": len(structure),
            "fidelity": job.fidelity,
            "properties": list(job.properties),
            "attempts": [],
            "final": None,
            "cancel_requested": False,
            "created_at": time.time(),
        }
        self._launch(record, structure, recipe_settings, resources, changes={})
        return key

    def _launch(
        self, record: dict[str, Any], structure: Structure, recipe_settings: RecipeSettings, resources: Resources,
        changes: dict[str, Any],
    ) -> None:
        n = len(record["attempts"])
        key = record["key"]
        name = _attempt_name(key, n)
        directory = f"{self._dir(key)}/attempt-{n}"
        scheduler_id = None
        started = self.runner.read_file(f"{directory}/started")
        if started and started.split()[0] != "local":
            scheduler_id = started.split()[0]  # it ran: the scheduler may have forgotten it, the files have not
        if scheduler_id is None:
            existing = self.scheduler.find(name, directory)
            scheduler_id = existing.id if existing else None
        if scheduler_id is None:
            recipe = get_recipe(recipe_settings.code)
            prepared = recipe.prepare(structure, recipe_settings, record["properties"],
                                      self.reference_cache(recipe_settings))
            files = dict(prepared.files)
            files["structure.json"] = json.dumps(structure.as_dict())
            files["structure.cif"] = structure.to(fmt="cif")
            files["settings.json"] = json.dumps(
                {"recipe": recipe_settings.model_dump(mode="json"), "resources": resources.model_dump(mode="json"),
                 "physics_hash": recipe_settings.physics_hash()}, indent=1)
            files["job.sh"] = JOB_SCRIPT.format(
                key=key, n=n, code=recipe_settings.code, task=recipe_settings.task,
                formula=structure.composition.reduced_formula, directory=shlex.quote(directory),
                command=prepared.command,
            )
            self.runner.put_files(directory, files)
            scheduler_id = self.scheduler.submit(name, directory, f"{directory}/job.sh", resources)
        record["attempts"].append({
            "n": n,
            "name": name,
            "dir": directory,
            "scheduler_id": scheduler_id,
            "submitted_at": time.time(),
            "recipe": recipe_settings.model_dump(mode="json"),
            "resources": resources.model_dump(mode="json"),
            "changes": changes,
            "outcome": None,
        })
        self._save(record)

    # -- poll ---------------------------------------------------------------------------------
    def _from_files(self, attempt: dict[str, Any]) -> SchedJob:
        """The state of an attempt the scheduler no longer knows, from the markers the job wrote."""
        directory, sid = attempt["dir"], attempt["scheduler_id"]
        exit_code = self.runner.read_file(f"{directory}/exit_code")
        if exit_code is not None:
            ok = exit_code.strip() == "0"
            return SchedJob(sid, attempt["name"], SchedState.COMPLETED if ok else SchedState.FAILED,
                            f"exit status {exit_code.strip()}")
        return SchedJob(sid, attempt["name"], SchedState.LOST,
                        f"{self.scheduler.kind} no longer knows job {sid} and it left no exit status")

    def _settle(self, record: dict[str, Any], job: SchedJob) -> None:
        """An attempt ended: record how, then retry it or make the job final."""
        attempt = record["attempts"][-1]
        result = self._read_json(f"{attempt['dir']}/result.json")
        tail = ""
        if result is None:
            for log in ("gpaw.out", "pw.out", "vasp.out", "local.out", f"slurm-{attempt['scheduler_id']}.out"):
                text = self.runner.read_file(f"{attempt['dir']}/{log}")
                if text:
                    tail += f"[{log}] {text[-400:]}\n"
        outcome: Outcome = classify(job, result, tail, cancel_requested=record["cancel_requested"])
        attempt["outcome"] = outcome.as_dict()
        if outcome.kind == "ok":
            record["final"] = {"status": JobStatus.SUCCEEDED.value, "error": None}
            return
        previous = [a["outcome"]["kind"] for a in record["attempts"][:-1] if a.get("outcome")]
        recipe_settings = RecipeSettings.model_validate(attempt["recipe"])
        resources = Resources.model_validate(attempt["resources"])
        plan = plan_retry(outcome.kind, previous, recipe_settings, resources, self.settings.retry,
                          get_recipe(recipe_settings.code).default_mixing_beta)
        if plan is not None and not record["cancel_requested"]:
            job_file = self._read_json(f"{self._dir(record['key'])}/job.json")
            if job_file is not None:
                structure = structure_from_dict(job_file["candidate"]["structure"])
                self._save(record)  # the outcome first: a crash now must not forget why we retry
                self._launch(record, structure, plan.recipe, plan.resources, plan.changes)
                return
        status = {"cancelled": JobStatus.CANCELLED, "lost": JobStatus.LOST}.get(outcome.kind, JobStatus.FAILED)
        retries = len(record["attempts"]) - 1
        error = f"{outcome.kind}: {outcome.message}".strip()
        if retries:
            error += f" (after {retries} retr{'y' if retries == 1 else 'ies'})"
        record["final"] = {"status": status.value, "error": error}

    def poll(self, external_ids: Sequence[str]) -> dict[str, JobStatus]:
        out: dict[str, JobStatus] = {}
        records = {}
        for key in external_ids:
            record = self._record(key)
            if record is None:
                out[key] = JobStatus.LOST  # never submitted here (or its directory was deleted)
            else:
                records[key] = record
        active = {k: r for k, r in records.items() if r["final"] is None}
        states = self.scheduler.states([r["attempts"][-1]["scheduler_id"] for r in active.values()])
        for key, record in records.items():
            if record["final"] is None:
                attempt = record["attempts"][-1]
                job = states.get(attempt["scheduler_id"]) or self._from_files(attempt)
                if job.state is SchedState.PENDING:
                    out[key] = JobStatus.SUBMITTED
                    continue
                if job.state is SchedState.RUNNING:
                    out[key] = JobStatus.RUNNING
                    continue
                self._settle(record, job)
                self._save(record)
            final = record["final"]
            out[key] = JobStatus(final["status"]) if final else JobStatus.SUBMITTED
        return out

    # -- fetch / cancel -----------------------------------------------------------------------
    def fetch(self, external_id: str) -> JobResult:
        status = self.poll([external_id])[external_id]
        record = self._record(external_id)
        if record is None:
            raise AdapterError(f"{self.name}: no job {external_id} in {self.work_dir}")
        if record["final"] is None:
            raise AdapterError(f"{self.name}: job {external_id} is {status.value}, not finished", transient=True)
        attempt = record["attempts"][-1]
        recipe_settings = RecipeSettings.model_validate(attempt["recipe"])
        result = self._read_json(f"{attempt['dir']}/result.json") or {}
        raw = {
            "settings": attempt["recipe"],
            "settings_hash": recipe_settings.physics_hash(),
            "resources": attempt["resources"],
            "job_dir": self._dir(external_id),
            "scheduler": self.scheduler.kind,
            "attempts": [{k: a[k] for k in ("n", "scheduler_id", "changes", "outcome", "dir")}
                         for a in record["attempts"]],
            "result": result,
        }
        final = record["final"]
        if final["status"] != JobStatus.SUCCEEDED.value:
            return JobResult(status=JobStatus(final["status"]), raw=raw, error=final["error"])
        try:
            properties = self._properties(record, result, recipe_settings)
        except ValueError as exc:
            return JobResult(status=JobStatus.FAILED, raw=raw, error=f"result incomplete: {exc}")
        return JobResult(status=JobStatus.SUCCEEDED, properties=properties, raw=raw)

    @staticmethod
    def _properties(record: dict[str, Any], result: dict[str, Any], recipe: RecipeSettings) -> dict[str, PropertyValue]:
        energy, natoms = result.get("energy"), result.get("natoms") or record["natoms"]
        if energy is None:
            raise ValueError("result.json has no energy")
        values: dict[str, float] = {"total_energy": energy, "energy_per_atom": energy / natoms}
        if result.get("band_gap") is not None:
            values["band_gap"] = result["band_gap"]
        refs = {**(result.get("references") or {}), **recipe.reference_energies}
        composition = _composition(record)  # a relaxation never changes it
        if all(el in refs for el in composition):
            values["formation_energy"] = (energy / natoms) - sum(
                amount * refs[el] for el, amount in composition.items()
            )
        out = {}
        for prop in record["properties"]:
            if prop not in values:
                raise ValueError(f"no {prop} in the job's result")
            out[prop] = PropertyValue(value=float(values[prop]), units=PROPERTY_UNITS[prop])
        return out

    def cancel(self, external_id: str) -> None:
        record = self._record(external_id)
        if record is None or record["final"] is not None:
            return
        record["cancel_requested"] = True
        self._save(record)
        self.scheduler.cancel(record["attempts"][-1]["scheduler_id"])


def _composition(record: dict[str, Any]) -> dict[str, float]:
    """Atomic fractions of the job's composition (element -> fraction)."""
    from pymatgen.core import Composition

    comp = Composition(record["formula"])
    return {str(el): amount / comp.num_atoms for el, amount in comp.items()}
