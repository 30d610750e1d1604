"""Settings of the DFT adapters: the calculation recipe, resources per fidelity, and the retry policy.

They come from the campaign file (``adapters.<name>.settings``), with per-fidelity
overrides and per-measurement ``options.recipe``.  Every default is stated here,
because the resolved settings are stored with each result: energies, and so
formation energies and hull distances, only compare between identical settings.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from matloop.types import stable_hash

STRICT = ConfigDict(extra="forbid")

#: The properties a DFT job can report, with their units.
PROPERTY_UNITS: dict[str, str] = {
    "total_energy": "eV",  # of the (final) cell
    "energy_per_atom": "eV/atom",
    "formation_energy": "eV/atom",  # against elemental references computed with identical settings
    "band_gap": "eV",
}


class Smearing(BaseModel):
    """Occupation smearing; ``width`` in eV."""

    model_config = STRICT
    kind: Literal["fermi-dirac", "marzari-vanderbilt", "methfessel-paxton"] = Field(
        default="fermi-dirac", description="occupation smearing scheme"
    )
    width: float = Field(default=0.05, gt=0, le=2.0, description="smearing width, eV")


class RecipeSettings(BaseModel):
    """One DFT calculation, independent of the scheduler that runs it.

    Physics fields (those in :meth:`physics`) decide the energies; the rest
    (mixing, iteration limits, commands) only decide whether and how fast a
    calculation converges, so a retry with looser mixing stays comparable.
    """

    model_config = STRICT
    code: Literal["gpaw", "qe", "vasp"] = Field(default="gpaw", description="DFT code that runs the calculation")
    task: Literal["static", "relax"] = Field(
        default="static", description="static: one SCF at the given geometry; relax: relax first"
    )
    xc: str = Field(default="PBE", description="exchange-correlation functional, as the code names it")
    ecut: float = Field(default=400.0, gt=0, description="plane-wave cutoff, eV")
    kpoint_density: float = Field(
        default=3.5, gt=0, description="k-points per Å⁻¹ along each reciprocal vector (n = ceil(2π|b|·density))"
    )
    smearing: Smearing = Field(default_factory=Smearing, description="occupation smearing of the electrons")
    spin: bool = Field(default=False, description="spin-polarised, starting from 1 μB per atom")
    relax_cell: bool = Field(default=True, description="for task=relax: relax the cell as well as positions")
    fmax: float = Field(default=0.05, gt=0, description="for task=relax: force criterion, eV/Å")
    max_relax_steps: int = Field(default=60, ge=1, description="for task=relax: optimiser steps before giving up")
    mixing_beta: float | None = Field(default=None, gt=0, le=1, description="density mixing; None = code default")
    max_scf_iterations: int = Field(default=200, ge=1, description="SCF iterations before a calculation fails")
    scf_energy_tolerance: float = Field(
        default=5e-4,
        gt=0,
        description="SCF energy criterion, eV (GPAW: per valence electron; QE and VASP: per cell)",
    )
    empty_bands: int = Field(default=8, ge=0, description="unoccupied bands added for the band gap (GPAW)")
    gpaw_setups: str = Field(default="paw", description="GPAW: the setups (PAW datasets) to use")
    python: str = Field(default="/usr/bin/python3", description="the Python that has GPAW (and ASE) on the node")
    command: str | None = Field(default=None, description="QE/VASP launch command, e.g. 'srun pw.x'; default pw.x / vasp_std")
    pseudo_dir: str | None = Field(default=None, description="QE: directory of the UPF files (on the cluster)")
    pseudopotentials: dict[str, str] = Field(default_factory=dict, description="QE: element -> UPF file name")
    potcar_dir: str | None = Field(default=None, description="VASP: directory holding <name>/POTCAR (on the cluster)")
    potcars: dict[str, str] = Field(default_factory=dict, description="VASP: element -> POTCAR name (default: element)")
    reference_energies: dict[str, float] = Field(
        default_factory=dict, description="eV/atom of elemental references, computed with these same settings"
    )
    reference_structures: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="pymatgen Structure dicts for elements without a built-in reference"
    )

    def physics(self) -> dict[str, Any]:
        """The fields that decide the energies: results compare only when these are equal."""
        keys = ["code", "task", "xc", "ecut", "kpoint_density", "smearing", "spin", "gpaw_setups",
                "pseudopotentials", "potcars", "reference_structures"]
        if self.task == "relax":
            keys += ["relax_cell", "fmax"]
        data = self.model_dump(mode="json")
        return {k: data[k] for k in keys}

    def physics_hash(self) -> str:
        return stable_hash(self.physics(), length=16)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_CLOCK = re.compile(r"^\s*(?:(\d+)-)?(\d+):(\d{2})(?::(\d{2}))?\s*$")


def parse_seconds(value: str | float | int) -> float:
    """``'90m'``, ``'2h'``, ``'1d'``, ``'30s'``, ``'1-02:00:00'``, ``'02:00:00'`` or seconds → seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    elif isinstance(value, str) and (m := _CLOCK.match(value)):
        days, a, b, c = m.groups()
        h, mi, s = (int(a), int(b), int(c)) if c is not None else (int(a), int(b), 0)
        seconds = int(days or 0) * 86400 + h * 3600 + mi * 60 + s
    else:
        raise ValueError(f"cannot read time {value!r}; write e.g. '90m', '2h', '01:30:00' or seconds")
    if not seconds > 0 or not math.isfinite(seconds):
        raise ValueError(f"time must be positive, got {value!r}")
    return seconds


def slurm_time(seconds: float) -> str:
    """Seconds → SLURM's ``D-HH:MM:SS`` (rounded up to whole minutes, SLURM's granularity)."""
    minutes = math.ceil(seconds / 60)
    d, rem = divmod(minutes * 60, 86400)
    h, rem = divmod(rem, 3600)
    return f"{d}-{h:02d}:{rem // 60:02d}:00"


class Resources(BaseModel):
    """What one job asks of the scheduler."""

    model_config = STRICT
    partition: str | None = Field(default=None, description="SLURM partition (--partition); default: the queue's")
    account: str | None = Field(default=None, description="SLURM account charged (--account)")
    qos: str | None = Field(default=None, description="SLURM quality of service (--qos)")
    time: float = Field(default=3600.0, description="walltime, seconds (accepts '90m', '2h', '01:30:00')")
    nodes: int = Field(default=1, ge=1, description="nodes per job (--nodes)")
    ntasks: int = Field(default=1, ge=1, description="MPI ranks per job (--ntasks)")
    cpus_per_task: int = Field(default=1, ge=1, description="threads per MPI rank (--cpus-per-task)")
    mem: str | None = Field(default=None, description="e.g. '4G' (SLURM --mem)")
    extra_sbatch: list[str] = Field(default_factory=list, description="further sbatch options, e.g. ['--constraint=cpu']")

    @field_validator("time", mode="before")
    @classmethod
    def _time(cls, v: Any) -> float:
        return parse_seconds(v)

    @field_validator("mem")
    @classmethod
    def _mem(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"\d+[KMGT]?", v):
            raise ValueError(f"mem {v!r} is not a SLURM memory size such as '4000M' or '4G'")
        return v


class FidelitySettings(BaseModel):
    """Overrides for one fidelity: recipe fields and resources."""

    model_config = STRICT
    recipe: dict[str, Any] = Field(default_factory=dict, description="recipe fields that differ at this fidelity")
    resources: dict[str, Any] = Field(default_factory=dict, description="resources that differ at this fidelity")


class RetryPolicy(BaseModel):
    """How many times each kind of failure is retried, and how the retry differs.

    SCF non-convergence retries with smaller mixing and more iterations, a walltime
    hit with more time, an out-of-memory with more memory; a node failure or a
    missing output is retried unchanged.  Deterministic errors are never retried.
    """

    model_config = STRICT
    scf_not_converged: int = Field(default=1, ge=0, description="retries of an SCF that did not converge")
    timeout: int = Field(default=1, ge=0, description="retries of a job that hit its walltime")
    node_failure: int = Field(default=1, ge=0, description="retries of a job whose node failed")
    missing_output: int = Field(default=1, ge=0, description="retries of a job that ended without its output")
    out_of_memory: int = Field(default=0, ge=0, description="retries of a job killed for memory")
    mixing_factor: float = Field(default=0.5, gt=0, lt=1, description="SCF retry: density mixing multiplied by this")
    scf_iterations_factor: float = Field(default=2.0, ge=1, description="SCF retry: iterations multiplied by this")
    time_factor: float = Field(default=2.0, ge=1, description="timeout retry: walltime multiplied by this")
    memory_factor: float = Field(default=2.0, ge=1, description="out-of-memory retry: memory multiplied by this")


class DFTSettings(BaseModel):
    """Everything a DFT adapter needs (a ``local`` or ``slurm`` adapter entry, beside its ``type``)."""

    model_config = STRICT
    work_dir: str | None = Field(
        default=None, description="where job directories live (on the cluster for SSH); default: the data dir"
    )
    recipe: RecipeSettings = Field(default_factory=RecipeSettings, description="the calculation (code, xc, cutoff, ...)")
    resources: Resources = Field(default_factory=Resources, description="what each job asks of the queue")
    fidelities: dict[str, FidelitySettings] = Field(
        default_factory=dict, description="per fidelity name: recipe and resources overrides"
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy, description="how often each failure kind is retried")
    # local queue
    max_workers: int = Field(default=1, ge=1, description="local queue: jobs run at once")
    # slurm
    ssh_host: str | None = Field(default=None, description="slurm: submit through 'ssh <host>' instead of locally")
    ssh_options: list[str] = Field(default_factory=list, description="slurm: extra ssh options")
    use_sacct: bool = Field(default=True, description="slurm: ask sacct about jobs squeue no longer knows")

    def recipe_for(self, fidelity: str, options: dict[str, Any] | None = None) -> RecipeSettings:
        """The recipe for one job: defaults, then the fidelity's overrides, then ``options['recipe']``."""
        data = self.recipe.model_dump()
        fid = self.fidelities.get(fidelity)
        if fid is not None:
            data.update(fid.recipe)
        if options and options.get("recipe"):
            if not isinstance(options["recipe"], dict):
                raise ValueError("options.recipe must be a mapping of recipe settings")
            data.update(options["recipe"])
        return RecipeSettings.model_validate(data)

    def resources_for(self, fidelity: str) -> Resources:
        data = self.resources.model_dump()
        fid = self.fidelities.get(fidelity)
        if fid is not None:
            data.update(fid.resources)
        return Resources.model_validate(data)
