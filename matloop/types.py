"""Small shared types: the vocabulary every package of matloop speaks.

They live here, in one place with no dependency on the rest of matloop, so that
``agent``, ``generators``, ``surrogates`` and ``lab_adapters`` can exchange
candidates, jobs and results without importing each other's internals.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator

ParamValue = float | int | str

#: Floats are rounded to this many significant digits before fingerprinting, so
#: that 0.1 + 0.2 and 0.3 name the same design point.
FINGERPRINT_DIGITS = 10


class CandidateKind(StrEnum):
    """The representations a campaign may search over."""

    POINT = "point"  # a point of a parametric space
    COMPOSITION = "composition"  # element -> amount
    STRUCTURE = "structure"  # a crystal structure (pymatgen Structure dict)
    IMAGE = "image"  # a 2-D microstructure


def _canonical_float(x: float) -> float | str:
    if not math.isfinite(x):
        return repr(x)
    if x == 0:
        return 0.0
    return float(f"{x:.{FINGERPRINT_DIGITS}g}")


def _canonical(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return _canonical_float(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def stable_hash(payload: Any, length: int = 32) -> str:
    """SHA-256 of the canonical JSON of ``payload`` (sorted keys, rounded floats)."""
    text = json.dumps(_canonical(payload), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


class Candidate(BaseModel):
    """One proposed material, in whichever representation the campaign uses.

    Exactly one of ``params``, ``composition``, ``structure`` or ``image`` is set,
    according to ``kind``.  ``fingerprint`` identifies the material for
    de-duplication: equal fingerprints mean "the same experiment".  For crystal
    structures the generator sets a fingerprint built from composition and space
    group (``generators`` refines it with ``StructureMatcher`` within a group);
    for everything else it is derived from the canonical content.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: CandidateKind
    params: dict[str, ParamValue] | None = None
    composition: dict[str, float] | None = None
    structure: dict[str, Any] | None = None
    image: list[list[float]] | None = None
    origin: str = Field(default="unknown", description="the generator that proposed it")
    fingerprint_override: str | None = Field(
        default=None, description="set by generators that know a better identity (crystals)"
    )

    @field_validator("params")
    @classmethod
    def _finite_params(cls, v: dict[str, ParamValue] | None) -> dict[str, ParamValue] | None:
        if v is not None:
            for name, value in v.items():
                if isinstance(value, float) and not math.isfinite(value):
                    raise ValueError(f"parameter {name!r} is {value}, not a finite number")
        return v

    @classmethod
    def point(cls, params: dict[str, ParamValue], origin: str = "unknown") -> Candidate:
        return cls(kind=CandidateKind.POINT, params=dict(params), origin=origin)

    @property
    def content(self) -> Any:
        """The representation itself, whichever field holds it."""
        return {
            CandidateKind.POINT: self.params,
            CandidateKind.COMPOSITION: self.composition,
            CandidateKind.STRUCTURE: self.structure,
            CandidateKind.IMAGE: self.image,
        }[self.kind]

    @property
    def fingerprint(self) -> str:
        if self.fingerprint_override:
            return self.fingerprint_override
        return f"{self.kind.value}:{stable_hash(self.content)}"

    def label(self, max_len: int = 60) -> str:
        """A short human-readable description for tables and logs."""
        if self.kind is CandidateKind.POINT and self.params is not None:
            text = ", ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params.items()
            )
        elif self.kind is CandidateKind.COMPOSITION and self.composition is not None:
            text = "".join(f"{el}{amt:g}" for el, amt in self.composition.items())
        elif self.kind is CandidateKind.STRUCTURE and self.structure is not None:
            text = str(self.structure.get("formula") or self.fingerprint)
            # one formula in several prototypes (rocksalt and CsCl KCl) must read differently
            _, _, variant = self.origin.partition(":")
            text += f" ({variant})" if variant else f" ({len(self.structure.get('sites', []))} sites)"
        elif self.kind is CandidateKind.IMAGE and self.image:
            pixels = [v for row in self.image for v in row]
            text = (f"{len(self.image)}×{len(self.image[0])} image, mean {sum(pixels) / len(pixels):.3f} "
                    f"({self.fingerprint.removeprefix('image:')[:12]})")
        else:
            text = self.fingerprint
        return text if len(text) <= max_len else text[: max_len - 1] + "…"


class JobStatus(StrEnum):
    """Life cycle of one external job: pending → submitted → running → terminal."""

    PENDING = "pending"
    SUBMITTED = "submitted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_JOB_STATUSES


TERMINAL_JOB_STATUSES = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.LOST}
)


class BatchStatus(StrEnum):
    """Life cycle of a proposed batch."""

    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"
    EDITED = "edited"
    DISPATCHED = "dispatched"
    COMPLETE = "complete"


def make_idempotency_key(campaign: str, candidate_fingerprint: str, fidelity: str, attempt: int) -> str:
    """The key every external submission carries.

    Derived (not random) from campaign, candidate, fidelity and attempt, so a
    controller that crashed between submitting and recording a job computes the
    same key again and the executor recognises the duplicate.
    """
    digest = stable_hash([campaign, candidate_fingerprint, fidelity, int(attempt)], length=40)
    return f"ml-{digest}"


class PropertyValue(BaseModel):
    """One measured property: value, its standard deviation and units."""

    model_config = ConfigDict(extra="forbid")

    value: float
    std: float | None = None
    units: str | None = None


#: Largest magnitude a measured value or std may have.  Anything above is finite but cannot be physical in any
#: units a lab reports, and squaring it (variances, standardisation before a fit) overflows float64 past ~1e154,
#: which would turn the surrogate's training data into inf/NaN; such a value is refused like a non-finite one.
MAX_ABS_VALUE = 1e150

#: The fields a lab may send for one property (those of :class:`PropertyValue`).
PROPERTY_FIELDS = frozenset({"value", "std", "units"})


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", str: "text", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def number_problem(value: Any, what: str = "value") -> str | None:
    """Why ``value`` is not a usable measured number (None when it is one): a finite real of sane magnitude."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"the {what} is {_type_name(value)}, not a number"
    try:
        number = float(value)
    except OverflowError:  # an int too big for a float
        return f"the {what} is too large to be a measurement"
    if math.isnan(number):
        return f"the {what} is NaN, not a number"
    if math.isinf(number):
        return f"the {what} is {'-' if number < 0 else '+'}infinite"
    if abs(number) > MAX_ABS_VALUE:
        return f"the {what} {number:g} is larger in magnitude than {MAX_ABS_VALUE:g}, so it cannot be a measurement"
    return None


def property_value_from_answer(answer: Any) -> PropertyValue:
    """One property as a lab sent it (``{"value": ..., "std": ..., "units": ...}``), checked field by field.

    Raises ``ValueError`` whose message is one sentence saying what is wrong (an unexpected field, a value that
    is text, null, a list, NaN, infinite or absurdly large, a negative std, units that are not text).
    """
    if not isinstance(answer, dict):
        raise ValueError(f"the answer is {_type_name(answer)}, not an object with a value")
    extra = sorted(str(k) for k in answer if k not in PROPERTY_FIELDS)
    if extra:
        shown = ", ".join(repr(k[:40]) for k in extra[:3])
        raise ValueError(f"the answer carries unexpected field(s) {shown}; only value, std and units are allowed")
    if "value" not in answer:
        raise ValueError("the answer has no value")
    problem = number_problem(answer["value"])
    if problem is None and answer.get("std") is not None:
        problem = number_problem(answer["std"], "std")
        if problem is None and answer["std"] < 0:
            problem = f"the std {answer['std']:g} is negative"
    units = answer.get("units")
    if problem is None and units is not None and not isinstance(units, str):
        problem = f"the units are {_type_name(units)}, not text"
    if problem is not None:
        raise ValueError(problem)
    std = answer.get("std")
    return PropertyValue(value=float(answer["value"]), std=None if std is None else float(std), units=units)


class JobRequest(BaseModel):
    """What the controller asks an executor to do."""

    model_config = ConfigDict(extra="forbid")

    idempotency_key: str
    campaign: str
    candidate: Candidate
    fidelity: str
    properties: list[str]
    attempt: int = 0
    options: dict[str, Any] = Field(default_factory=dict, description="adapter-specific settings")


class JobResult(BaseModel):
    """What an executor reports for a job that reached a terminal state.

    A failed experiment is data too: ``status`` is ``failed`` and ``error`` says why.  A property the lab
    answered but whose answer cannot be used (text, NaN, an unexpected field) is in ``property_errors`` with the
    reason instead of in ``properties``; it is stored as a failed measurement of that property.
    """

    model_config = ConfigDict(extra="forbid")

    status: JobStatus
    properties: dict[str, PropertyValue] = Field(default_factory=dict)
    raw: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    property_errors: dict[str, str] = Field(default_factory=dict)


class AdapterError(RuntimeError):
    """An executor could not do what was asked; ``transient`` says whether to retry."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class LabAnswerError(AdapterError):
    """The executor answered about one job, but the answer cannot be read (an unknown status, a malformed record).

    Never transient: asking again gets the same answer.  The loop stores the job as failed with this message
    rather than asking forever; any other ``AdapterError`` (a refused token, an unreachable lab) concerns the
    whole executor and are not turned into failed jobs.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


@runtime_checkable
class LabAdapter(Protocol):
    """The protocol every executor speaks (shaped like Ax's ``Runner``).

    Every call is safe to repeat: ``submit`` with a key it has seen returns the
    same external id and runs nothing new; ``poll``, ``fetch`` and ``cancel`` have
    no effect beyond the first.
    """

    name: str

    def submit(self, job: JobRequest) -> str: ...

    def poll(self, external_ids: Sequence[str]) -> dict[str, JobStatus]: ...

    def fetch(self, external_id: str) -> JobResult: ...

    def cancel(self, external_id: str) -> None: ...


Goal = Literal["maximize", "minimize", "target"]
