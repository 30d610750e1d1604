"""The campaign file: one pydantic model that a YAML file must satisfy.

Every section is strict (unknown keys are refused) so that a typo such as
``batchsize`` is reported instead of silently ignored. The pluggable parts (``generator``,
``surrogate``, ``acquisition``, each of ``adapters``) are typed models chosen by their ``type``,
owned by the packages that implement them; the older ``{type, settings: {...}}`` shape of files
and stored specs is flattened into them before validation.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent.spec.acquisition import (
    AcquisitionConfig,
    GreedyShareAcquisition,
    check_acquisition,
    check_exploit_share,
    normalise_acquisition,
)
from agent.spec.objectives import Objective, OutcomeConstraint
from generators.config import AutoGenerator, GeneratorConfig, normalise_generator
from lab_adapters.dft.config import LocalDFTAdapter, SlurmDFTAdapter
from lab_adapters.mlip.config import MLIPAdapter
from lab_adapters.simlab.config import SimlabAdapter, normalise_simlab
from matloop.config import UnknownTypeError, flatten_settings
from matloop.space import DesignSpace, ParametricSpace
from surrogates.config import AutoSurrogate, SurrogateConfig, normalise_surrogate

STRICT = ConfigDict(extra="forbid")

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The longest duration a campaign may name. Far beyond any campaign, and far inside what ``timedelta``
#: holds, so an absurd ``99999999999999999999h`` is one sentence rather than an ``OverflowError``.
MAX_DURATION = timedelta(days=3650)
_HINT = "write e.g. '90m', '3h' or '2d'"


def parse_duration(value: str | float | int | timedelta) -> timedelta:
    """``'90m'``, ``'3h'``, ``'2d'`` or seconds → ``timedelta``, positive and at most :data:`MAX_DURATION`.

    Raises ``ValueError`` (one sentence) for anything else, including types a YAML file may hold
    (a list, a boolean), so that pydantic reports it against the field instead of crashing.
    """
    if isinstance(value, timedelta):
        duration = value
    elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"cannot read duration {_short(repr(value))}; {_HINT}")
    elif isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"duration {value!r} is not a finite number of seconds")
        duration = _seconds(float(value), value)
    else:
        m = _DURATION_RE.match(value)
        if m:
            duration = _seconds(float(m.group(1)) * _UNIT_SECONDS[m.group(2)], value)
        else:
            try:  # ISO 8601 ('PT2H'), which is how a stored spec writes it back
                duration = TypeAdapter(timedelta).validate_python(value)
            except (ValidationError, ValueError, OverflowError):
                raise ValueError(f"cannot read duration {_short(value)!r}; {_HINT}") from None
    if duration <= timedelta(0):
        raise ValueError(f"duration {_short(str(value))!r} must be longer than zero")
    if duration > MAX_DURATION:
        raise ValueError(f"duration {_short(str(value))!r} is longer than {MAX_DURATION.days} days")
    return duration


def _seconds(seconds: float, value: object) -> timedelta:
    """``timedelta(seconds=...)`` that refuses what it cannot hold instead of overflowing."""
    if seconds <= 0:
        raise ValueError(f"duration {_short(str(value))!r} must be longer than zero")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {_short(str(value))!r} is longer than {MAX_DURATION.days} days")
    return timedelta(seconds=seconds)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…"


#: What costs are counted in when a campaign does not say: plain units of its measurements' ``cost``.
DEFAULT_CURRENCY = "cost units"


class Budget(BaseModel):
    """Limits on spending; the campaign stops at whichever comes first.

    Every limit is finite and positive (``wall_clock: 0`` or ``max_cost: .inf`` would mean
    "stop at once" or "never"; leave a limit out instead). Costs are counted by the campaign's ledger
    (``agent/store/ledger.py``): each job is charged its measurement's ``cost`` when it is dispatched.
    """

    model_config = STRICT
    max_experiments: int | None = Field(
        default=None, ge=1, description="stop after this many experiments (dispatched jobs)"
    )
    max_cost: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="the most the ledger may spend, in `currency`"
    )
    max_iterations: int | None = Field(default=None, ge=1, description="stop after this many iterations of the loop")
    wall_clock: timedelta | None = Field(
        default=None, description="stop after this much time since the campaign started, e.g. '48h' or '2d'"
    )
    currency: str = Field(
        default=DEFAULT_CURRENCY, min_length=1, max_length=40, pattern=r"^[^\x00-\x1f\x7f]+$",
        description="what every measurement's `cost` and `max_cost` are counted in (one per campaign), "
        "e.g. core-hours, USD or hours",
    )
    on_failure: Literal["keep", "refund"] = Field(
        default="keep",
        description="what a job that fails costs: `keep` its charge (what a DFT queue bills, core-hours used "
        "whether or not the run converged, and what a lab bills for a run whose sample failed) or `refund` it "
        "(an executor that bills only results)",
    )

    @field_validator("wall_clock", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return None if v is None else parse_duration(v)


class Approval(BaseModel):
    """Who lets a batch go out: nobody (``auto``), a person (``manual``), or a cost rule."""

    model_config = STRICT
    policy: Literal["auto", "manual", "auto_below_cost"] = Field(
        default="auto", description="auto: batches go out at once; manual: a person approves each (UI or CLI); "
        "auto_below_cost: only batches costing more than cost_limit wait"
    )
    cost_limit: float | None = Field(default=None, gt=0, description="for auto_below_cost: batch cost limit")

    @model_validator(mode="after")
    def _limit_for_cost_policy(self) -> Approval:
        if self.policy == "auto_below_cost" and self.cost_limit is None:
            raise ValueError("policy 'auto_below_cost' needs 'cost_limit'")
        return self


ADAPTER_TYPES = ("simlab", "local", "slurm", "mlip")
#: One executor entry of ``adapters:``, typed by ``type`` (each model lives with its adapter package).
AdapterConfig = Annotated[
    SimlabAdapter | LocalDFTAdapter | SlurmDFTAdapter | MLIPAdapter,
    Field(discriminator="type", description="an executor: the simulated lab (simlab), the DFT queue (local, slurm) "
          "or the in-process MLIP (mlip)"),
]


def normalise_adapter(value: Any, info: ValidationInfo) -> Any:
    """One raw ``adapters.<name>`` entry in the typed shape: an unknown ``type`` refused in a sentence, the older
    ``{type, url, token, settings}`` shape flattened (``url``/``token`` written as null by older stored specs dropped)."""
    if not isinstance(value, dict):
        return value
    value = dict(value)
    kind = value.get("type")
    if kind is None:
        raise UnknownTypeError(f"an adapter needs a 'type' ({', '.join(ADAPTER_TYPES)})")
    if isinstance(kind, str) and kind not in ADAPTER_TYPES:
        raise UnknownTypeError(f"unknown adapter type {kind!r}; use one of {', '.join(ADAPTER_TYPES)}")
    flatten_settings(value)
    if kind == "simlab":
        return normalise_simlab(value, stored=bool((info.context or {}).get("stored")))
    for key in ("url", "token"):  # older stored specs wrote these as null for every adapter
        if key in value and value[key] is None:
            del value[key]
    return value


class Measurement(BaseModel):
    """Which adapter and fidelity measure which properties, and what one experiment costs.

    Several measurements may name the same property at different ``fidelity`` levels (an MLIP, DFT, a lab):
    the campaign then chooses per candidate which fidelity to measure it at (docs/multifidelity.md). The
    *target* fidelity (the answer that counts) is the one marked ``target: true``, else the most expensive.
    """

    model_config = STRICT
    properties: list[str] = Field(min_length=1, description="the properties one job of this measurement returns")
    adapter: str = Field(description="the name of the adapter (under `adapters`) that runs these jobs")
    fidelity: str = Field(
        default="default", description="the name of this fidelity; measurements of one property at several fidelities "
        "form a funnel"
    )
    cost: float = Field(
        default=1.0, ge=0, allow_inf_nan=False, description="what one job costs, in the budget's currency"
    )
    target: bool = Field(default=False, description="this fidelity's answer is the truth the campaign optimises")
    options: dict[str, Any] = Field(default_factory=dict, description="passed with each job (e.g. scenario)")
    units: dict[str, str] = Field(
        default_factory=dict,
        description="expected units per property; a lab's value in other, compatible units is converted, "
        "in incompatible units refused (an objective's own units apply to a property not named here)",
    )


class Stopping(BaseModel):
    """When to stop before the budget is spent."""

    model_config = STRICT
    target_met: bool = Field(default=True, description="stop when every target objective is met")
    no_improvement_iterations: int | None = Field(
        default=None, ge=1, description="stop when the best has not improved for this many iterations"
    )
    min_improvement: float = Field(
        default=0.0, ge=0, allow_inf_nan=False,
        description="what counts as an improvement of the best (in the objective's units)"
    )
    min_results_fraction: float = Field(
        default=1.0, gt=0, le=1, allow_inf_nan=False, description="start the next iteration when this share of a batch is back"
    )


def _shares_property(measurements: list[Measurement]) -> bool:
    props = [(p, m.fidelity) for m in measurements for p in m.properties]
    return len({p for p, _ in props}) < len(set(props))


def _check_fidelities(campaign: Campaign) -> None:
    """Several fidelities of one property: distinct names, one target, every modelled property at the target.

    One sentence per mistake, because a funnel that silently optimised the cheap answer would spend a whole
    campaign on the wrong truth.
    """
    seen: dict[tuple[str, str], int] = {}
    for m in campaign.measurements:
        for p in m.properties:
            if (p, m.fidelity) in seen:
                raise ValueError(f"property {p!r} is measured twice at fidelity {m.fidelity!r}; "
                                 "give each measurement of a property its own 'fidelity'")
            seen[(p, m.fidelity)] = 1
    marked = sorted({m.fidelity for m in campaign.measurements if m.target})
    if len(marked) > 1:
        raise ValueError(f"'target: true' is set at several fidelities {marked}; mark one")
    if not campaign.is_multifidelity:
        return
    names = list(dict.fromkeys(m.fidelity for m in campaign.measurements))
    if not marked:
        costs = sorted(((campaign.fidelity_cost(f), f) for f in names), reverse=True)
        if costs[0][0] == costs[1][0]:
            raise ValueError(f"fidelities {costs[0][1]!r} and {costs[1][1]!r} cost the same; mark the one whose "
                             "answer counts with 'target: true'")
    target = campaign.target_fidelity
    at_target = {p for m in campaign.measurements_at(target) for p in m.properties}
    modelled = [o.property for o in campaign.objectives] + [c.property for c in campaign.constraints]
    missing = sorted({p for p in modelled if p not in at_target})
    if missing:
        raise ValueError(f"the target fidelity {target!r} does not measure {missing}; every objective and "
                         "constraint must be measured at the target fidelity")
    if len(set(modelled)) != 1:
        raise ValueError("a campaign with several fidelities models one property (one objective, no constraints) "
                         f"for now; this one models {sorted(set(modelled))}")
    if any(m.cost <= 0 for m in campaign.measurements):
        raise ValueError("with several fidelities every measurement needs a 'cost' above zero "
                         "(the choice of fidelity is value per unit cost)")


class Campaign(BaseModel):
    """A whole campaign: what may be made, what is wanted, what it may cost."""

    model_config = STRICT
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
        description="the campaign's name: letters, digits, '.', '_' and '-' (the history and the UI key on it)",
    )
    description: str = Field(default="", description="free text shown with the campaign")
    seed: int = Field(default=0, description="seed of every random choice, so a rerun makes the same choices")
    space: DesignSpace = Field(description="what may be made: parameters, compositions, crystals or microstructures")
    objectives: list[Objective] = Field(
        min_length=1, description="what is wanted: properties to maximise, minimise or bring to a target"
    )
    constraints: list[OutcomeConstraint] = Field(
        default_factory=list, description="bounds a result must meet to count (e.g. stability <= 0.1)"
    )
    budget: Budget = Field(
        description="limits on experiments, cost, iterations and time; the first reached stops the campaign"
    )
    batch_size: int = Field(default=4, ge=1, le=1000, description="candidates picked per iteration")
    initial_design_size: int | None = Field(default=None, ge=1, description="space-filling points before modelling")
    approval: Approval = Field(default_factory=Approval, description="who lets a batch go out")
    adapters: dict[str, Annotated[AdapterConfig, BeforeValidator(normalise_adapter)]] = Field(
        min_length=1, description="the executors measurements may use, by name"
    )
    measurements: list[Measurement] = Field(
        min_length=1, description="how each property is measured: adapter, fidelity and cost"
    )
    stopping: Stopping = Field(
        default_factory=Stopping, description="rules that stop a campaign early when it stops improving"
    )
    generator: GeneratorConfig = Field(default_factory=AutoGenerator)
    surrogate: SurrogateConfig = Field(default_factory=AutoSurrogate)
    acquisition: AcquisitionConfig = Field(default_factory=GreedyShareAcquisition)

    @field_validator("generator", mode="before")
    @classmethod
    def _generator(cls, v: Any, info: ValidationInfo) -> Any:
        return normalise_generator(v, (info.data or {}).get("space"))

    @field_validator("surrogate", mode="before")
    @classmethod
    def _surrogate(cls, v: Any) -> Any:
        return normalise_surrogate(v)

    @field_validator("acquisition", mode="before")
    @classmethod
    def _acquisition(cls, v: Any) -> Any:
        return normalise_acquisition(v)

    @field_validator("constraints", mode="before")
    @classmethod
    def _parse_constraints(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [OutcomeConstraint.parse(c) if isinstance(c, str) else c for c in v]
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Campaign:
        props = [o.property for o in self.objectives]
        dupes = sorted({p for p in props if props.count(p) > 1})
        if dupes:
            raise ValueError(f"objectives repeat properties {dupes}")
        measured = {p for m in self.measurements for p in m.properties}
        unmeasured = [p for p in props + [c.property for c in self.constraints] if p not in measured]
        if unmeasured:
            raise ValueError(f"no measurement produces {sorted(set(unmeasured))}; add them to 'measurements'")
        unknown_adapters = sorted({m.adapter for m in self.measurements if m.adapter not in self.adapters})
        if unknown_adapters:
            raise ValueError(f"measurements use adapters {unknown_adapters} that 'adapters' does not define")
        _check_fidelities(self)
        if self.budget.max_experiments is not None and self.batch_size > self.budget.max_experiments:
            raise ValueError(
                f"batch_size {self.batch_size} is larger than budget.max_experiments {self.budget.max_experiments}"
            )
        if not any(
            [self.budget.max_experiments, self.budget.max_cost, self.budget.max_iterations, self.budget.wall_clock]
        ):
            raise ValueError("budget needs at least one limit (max_experiments, max_cost, max_iterations, wall_clock)")
        try:
            check_acquisition(self.acquisition.type, self.objectives)
        except ValueError as e:
            raise ValueError(f"acquisition.type: {e}") from None
        try:
            check_exploit_share(self.acquisition, self.objectives)
        except ValueError as e:
            raise ValueError(f"acquisition.exploit_share: {e}") from None
        return self

    @property
    def parametric(self) -> ParametricSpace | None:
        return self.space if isinstance(self.space, ParametricSpace) else None

    def measurement_for(self, prop: str) -> Measurement:
        for m in self.measurements:
            if prop in m.properties:
                return m
        raise KeyError(prop)

    @property
    def experiment_cost(self) -> float:
        """Cost of measuring one candidate for every property the campaign needs (at the target fidelity when
        there are several: a cheaper pick costs less, so this bounds what one pick may cost)."""
        if self.is_multifidelity:
            return self.fidelity_cost(self.target_fidelity)
        return sum(m.cost for m in self.measurements)

    @property
    def fidelities(self) -> list[str]:
        """The campaign's fidelity names, cheapest first (ties in the file's order)."""
        names = list(dict.fromkeys(m.fidelity for m in self.measurements))
        return sorted(names, key=lambda f: (self.fidelity_cost(f), names.index(f)))

    @property
    def is_multifidelity(self) -> bool:
        """Whether some property is measured at more than one fidelity (then each pick names its fidelity)."""
        return len(set(m.fidelity for m in self.measurements)) > 1 and _shares_property(self.measurements)

    @property
    def target_fidelity(self) -> str:
        """The fidelity whose answer counts: the one marked ``target: true``, else the most expensive."""
        marked = [m.fidelity for m in self.measurements if m.target]
        return marked[0] if marked else self.fidelities[-1]

    def fidelity_cost(self, fidelity: str) -> float:
        """What measuring one candidate at ``fidelity`` costs (every measurement of that fidelity)."""
        return sum(m.cost for m in self.measurements if m.fidelity == fidelity)

    def pick_cost(self, fidelity: str | None) -> float:
        """What one pick costs: its fidelity's measurements, or every measurement when it names none (NULL, as the
        initial design and single-fidelity campaigns store it)."""
        if fidelity is None:
            return sum(m.cost for m in self.measurements)
        return self.fidelity_cost(fidelity)

    def batch_cost(self, fidelities: list[str | None]) -> float:
        """What a batch whose kept picks go to ``fidelities`` costs (each pick at its own fidelity)."""
        return sum(self.pick_cost(f) for f in fidelities)

    def measurements_at(self, fidelity: str) -> list[Measurement]:
        return [m for m in self.measurements if m.fidelity == fidelity]

    def spec_hash(self) -> str:
        """A hash of the whole spec. A lab token is never part of it (only the *name* of the variable or Secret
        block holding it), so rotating a token does not make resume refuse the campaign."""
        from matloop.types import stable_hash

        return stable_hash(self.model_dump(mode="json"), length=64)

    @classmethod
    def from_stored(cls, spec: dict[str, Any]) -> Campaign:
        """A spec as the database stores it, also one written before typed components.

        Older specs said ``{type, settings}`` (flattened as for files) and could hold a literal lab token,
        which is dropped here rather than refused: the stored campaign must stay readable for its history,
        and its next run reads the token from ``token_env`` like any other.
        """
        return cls.model_validate(spec, context={"stored": True})

    def same_as_stored(self, spec: dict[str, Any]) -> bool:
        """Whether ``spec`` (stored JSON) is this campaign, perhaps written in an older shape of the format."""
        try:
            return Campaign.from_stored(spec).spec_hash() == self.spec_hash()
        except ValidationError:
            return False
