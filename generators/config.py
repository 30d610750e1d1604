"""What a campaign file may say about its generator: one typed model per ``generator.type``.

The models live with the generators (not in the campaign format) because each one mirrors what its
generator reads; they import no torch, pymatgen or scipy, so reading a campaign file stays cheap, and
the Prefect run form renders their fields with defaults and descriptions. The loop builds generators
from these models (:func:`generators.registry.build_generator`); there is no free ``settings`` dict
and no ``module:factory`` import. Third-party generators come in as plug-ins registered under the
entry-point group ``matloop.generators`` and are named with ``type: plugin`` (see ``docs/plugins.md``).

Campaign files written before the typed form said ``generator: {type, settings: {...}}``; that shape
(and stored specs in the database) is still read: :func:`normalise_generator` flattens ``settings``
into the typed model.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from matloop.config import UnknownTypeError, flatten_settings

#: Refuse to enumerate grids larger than this (the pool would not fit the scorer anyway).
DEFAULT_MAX_GRID = 2_000_000
#: The entry-point group third-party generators register under.
PLUGIN_GROUP = "matloop.generators"

STRICT = ConfigDict(extra="forbid")


class _Generator(BaseModel):
    """What every generator config has: the loop's pool size (read by the loop, not passed to the generator)."""

    model_config = STRICT
    pool_size: int | None = Field(
        default=None, ge=1,
        description="candidates asked of the generator per iteration; default 100,000 (1,000 for crystal spaces)",
    )


class AutoGenerator(_Generator):
    """Chosen by the design space: the crystal funnel, random-field images, or a grid (every step given) / Sobol pool."""

    type: Literal["auto"] = Field(default="auto", description="which generator")


class GridGenerator(_Generator):
    """Every point of the space's grid (simplex groups and steps), minus known and unmakeable ones."""

    type: Literal["grid"] = Field(default="grid", description="which generator")
    levels: int | None = Field(
        default=None, ge=2, description="points per continuous parameter without a 'step' (none: such a space is refused)"
    )
    max_size: int = Field(default=DEFAULT_MAX_GRID, ge=1, description="refuse grids with more points than this")


class SobolGenerator(_Generator):
    """Scrambled Sobol points mapped onto the space (simplex groups, steps and linear constraints respected)."""

    type: Literal["sobol"] = Field(default="sobol", description="which generator")
    size: int = Field(default=4096, ge=1, description="largest pool drawn per iteration")


class DatasetGenerator(_Generator):
    """The rows of a CSV file whose columns name the space's parameters (a fixed candidate library)."""

    type: Literal["dataset"] = Field(default="dataset", description="which generator")
    path: str = Field(description="CSV file with one column per parameter; relative to the campaign file")


class SubstitutionSettings(BaseModel):
    """The substitution generator's settings (unknown keys refused).

    ``site_sets`` (allowed *compositions* of a multi-site sublattice, ``{X: [O3, O2N, ON2, N3]}``)
    belongs in ``CrystalSpace.site_sets``; given here too, it overrides the space's per label.
    ``reference_formulas`` (a CSV with a ``formula`` column, e.g. the perov5 data)
    restricts proposals to formulas a lookup-table lab can answer.
    """

    model_config = STRICT
    site_sets: dict[str, list[str]] = Field(
        default_factory=dict, description="per sublattice label: allowed compositions (overrides the space's)"
    )
    temperature: float = Field(default=1.0, gt=0, description=">1 flattens the substitution probabilities")
    steer_weight: float = Field(default=1.0, ge=0, description="weight of the standardized surrogate score")
    oversample: int = Field(default=4, ge=1, description="drafts per proposal when steering")
    distinct_sublattices: bool = Field(default=True, description="no element on two cation sublattices")
    rescale_volume: bool = Field(default=True, description="rescale each cell's volume (data-mined bond lengths)")
    symprec: float = Field(default=0.1, gt=0, description="symmetry tolerance (Å) for space groups and de-duplication")
    skip_known: bool = Field(default=True, description="skip decorations whose fingerprint is already known")
    reference_formulas: str | None = Field(
        default=None, description="CSV with a 'formula' column: propose only these formulas (relative to the file)"
    )
    reference_match: bool = Field(
        default=False, description="with reference_formulas: keep only structures matching a reference crystal"
    )
    max_attempts_per_candidate: int = Field(default=60, ge=1, description="draws allowed per wanted proposal")


class FunnelSettings(BaseModel):
    """What the crystal funnel checks beyond generation (``generator.funnel`` in a campaign)."""

    model_config = STRICT
    novelty_reference: str | None = Field(default=None, description="CSV of known crystals (cif, formula columns)")
    min_distance_factor: float = Field(default=0.6, gt=0, description="shortest bond allowed, times the ionic radii sum")
    density_range: tuple[float, float] = Field(default=(0.5, 25.0), description="allowed density, g/cm³")
    mlip: dict[str, Any] | None = Field(default=None, description="surrogates.mlip.MLIPSettings; None: no MLIP stage")


class CrystalGenerator(SubstitutionSettings, _Generator):
    """Prototype decoration and substitution through the validity / de-duplication / novelty (/ MLIP) funnel."""

    type: Literal["crystal", "substitution"] = Field(default="crystal", description="which generator")
    funnel: FunnelSettings = Field(default_factory=FunnelSettings, description="the checks after generation")

    def substitution(self) -> SubstitutionSettings:
        """The substitution generator's own settings (without the loop's and the funnel's)."""
        return SubstitutionSettings.model_validate(self.model_dump(include=set(SubstitutionSettings.model_fields)))


class CINNGenerator(_Generator):
    """MatDesINNe: a conditional invertible network samples designs for the target (parametric spaces)."""

    type: Literal["cinn"] = Field(default="cinn", description="which generator")
    tolerance: float | None = Field(default=None, gt=0, description="target tolerance; none: the objective's, else 0.1 σ(y)")
    localise_steps: int = Field(default=100, ge=0, description="surrogate-gradient steps per draw")
    surrogate_epochs: int = Field(default=150, ge=1, description="epochs of its own MLP surrogate")
    max_candidates: int = Field(default=2000, ge=1, description="most candidates proposed per iteration")
    min_measurements: int = Field(default=16, ge=1, description="below this many results: a Sobol cold start")
    ranking_members: int = Field(
        default=16, ge=0, description="ranking ensemble size; 0 ranks by the surrogate's spread (wider coverage)"
    )
    n_blocks: int = Field(default=6, ge=1, description="coupling blocks of the flow")
    hidden: int = Field(default=96, ge=1, description="hidden width of each block")
    epochs: int = Field(default=60, ge=1, description="flow training epochs")
    batch_size: int = Field(default=256, ge=1, description="flow training batch size")
    lr: float = Field(default=2e-3, gt=0, description="flow learning rate")
    weight_decay: float = Field(default=1e-5, ge=0, description="flow weight decay")
    condition_noise: float = Field(default=0.02, ge=0, description="noise on the standardised condition while training")

    #: The fields that are :class:`generators.inverse.cinn.FlowTraining`'s.
    FLOW_FIELDS: ClassVar[tuple[str, ...]] = ("n_blocks", "hidden", "epochs", "batch_size", "lr", "weight_decay", "condition_noise")


class JanusTraining(BaseModel):
    """Janus encoder-decoder training (:class:`generators.inverse.janus.JanusTraining`)."""

    model_config = STRICT
    latent_channels: int = Field(default=2, ge=1, description="latent channels")
    width: int = Field(default=16, ge=1, description="convolution width")
    epochs: int = Field(default=20, ge=1, description="training epochs")
    batch_size: int = Field(default=32, ge=1, description="batch size")
    lr: float = Field(default=3e-3, gt=0, description="learning rate")
    w_property: float = Field(default=1.0, ge=0, description="weight of the property loss")
    w_cycle: float = Field(default=1.0, ge=0, description="weight of the cycle loss")
    w_deep_cycle: float = Field(default=0.5, ge=0, description="weight of the deep-cycle loss")
    w_latent: float = Field(default=1e-3, ge=0, description="keeps the latent cloud compact")
    seed: int = Field(default=0, description="training seed")


class JanusInversion(BaseModel):
    """The latent descent (:class:`generators.inverse.janus.Inversion`)."""

    model_config = STRICT
    steps: int = Field(default=100, ge=1, description="descent steps")
    lr: float = Field(default=0.02, gt=0, description="descent learning rate")
    n_starts: int = Field(default=8, ge=1, description="latents started from the measured images nearest the target")
    w_anchor: float = Field(default=0.05, ge=0, description="trust region around the start")
    min_start_gap: float = Field(default=0.0, ge=0, description="start only from images at least this far (relative)")


class JanusScoreModel(BaseModel):
    """The CNN ensemble that picks thresholds and designs (:class:`ImageEnsembleTraining`)."""

    model_config = STRICT
    n_members: int = Field(default=3, ge=1, description="ensemble members")
    width: int = Field(default=16, ge=1, description="convolution width")
    epochs: int = Field(default=15, ge=1, description="training epochs")
    batch_size: int = Field(default=64, ge=1, description="batch size")
    lr: float = Field(default=3e-3, gt=0, description="learning rate")
    weight_decay: float = Field(default=1e-5, ge=0, description="weight decay")
    block: int = Field(default=4, ge=1, description="coarse-grid block of the physics prior")
    physics_prior: bool = Field(default=True, description="learn on top of a coarse-grid two-phase conductivity")
    k0: float = Field(default=1.0, description="phase 0 value for the physics prior")
    k1: float = Field(default=10.0, description="phase 1 value for the physics prior")
    seed: int = Field(default=0, description="training seed")


class JanusGenerator(_Generator):
    """Janus: decode latents descended toward the target (microstructure images)."""

    type: Literal["janus"] = Field(default="janus", description="which generator")
    training: JanusTraining = Field(default_factory=JanusTraining, description="encoder-decoder training")
    inversion: JanusInversion = Field(default_factory=JanusInversion, description="the latent descent")
    max_candidates: int = Field(default=64, ge=1, description="most candidates (latent descents) per iteration")
    min_measurements: int = Field(default=8, ge=1, description="below this many images: random-field cold start")
    score_model: JanusScoreModel | None = Field(
        default=None, description="also train a CNN ensemble on the binary images to choose thresholds; none: off"
    )


class RandomFieldGenerator(_Generator):
    """Thresholded Gaussian random-field images over the space's volume-fraction × length-scale box."""

    type: Literal["random_field"] = Field(default="random_field", description="which generator")
    size: int = Field(default=256, ge=1, description="largest pool (each image is size² numbers)")


class PluginGenerator(_Generator):
    """A generator from an installed package, registered under the entry-point group ``matloop.generators``."""

    type: Literal["plugin"] = Field(default="plugin", description="which generator")
    name: str = Field(description="the plug-in's registered entry-point name (see docs/plugins.md)")
    settings: dict[str, Any] = Field(
        default_factory=dict, description="passed to the plug-in (checked by its config model when it has one)"
    )

    @field_validator("name")
    @classmethod
    def _registered_name(cls, v: str) -> str:
        if ":" in v:
            raise ValueError(refuse_module_path(v))
        return v


GeneratorConfig = Annotated[
    AutoGenerator | GridGenerator | SobolGenerator | DatasetGenerator | CrystalGenerator | CINNGenerator
    | JanusGenerator | RandomFieldGenerator | PluginGenerator,
    Field(discriminator="type", description="what proposes the candidates the acquisition scores"),
]
GENERATOR_TYPES = ("auto", "grid", "sobol", "dataset", "crystal", "substitution", "cinn", "janus", "random_field",
                   "plugin")


#: ``module:factory`` strings older files used for built-in generators: read as the built-in's name (nothing is
#: imported on their say-so; any other ``module:factory`` is refused).
BUILTIN_PATHS = {
    "generators.crystal:funnel_generator": "crystal",
    "generators.crystal.pipeline:funnel_generator": "crystal",
    "generators.inverse:CINNGenerator": "cinn",
    "generators.inverse.matdesinne:CINNGenerator": "cinn",
    "generators.inverse:JanusGenerator": "janus",
    "generators.inverse.janus_generator:JanusGenerator": "janus",
    "generators.inverse.images:RandomFieldPool": "random_field",
}


def refuse_module_path(text: str) -> str:
    """The sentence for a ``module:factory`` string: a campaign file never names code to import."""
    return (f"{text!r} names code to import, and a campaign file may not; install a package that registers the "
            f"generator under the entry-point group {PLUGIN_GROUP!r} and write 'type: plugin, name: <its name>' "
            "(docs/plugins.md)")


def normalise_generator(value: Any, space: Any) -> Any:
    """The raw ``generator:`` mapping in the typed shape (before pydantic picks the model by ``type``).

    Missing ``type`` means ``auto``. The older ``{type, settings: {...}}`` shape is flattened (a plug-in
    keeps ``settings``, which is its own). An ``auto`` with settings of a concrete generator (older files)
    is resolved by the space, as the loop would. An unknown ``type`` or a ``module:factory`` string is
    refused with one sentence.
    """
    if value is None:
        return {"type": "auto"}
    if not isinstance(value, dict):
        return value
    value = dict(value)
    kind = value.setdefault("type", "auto")
    if not isinstance(kind, str):
        return value
    kind = value["type"] = BUILTIN_PATHS.get(kind, kind)
    if ":" in kind:
        raise UnknownTypeError(refuse_module_path(kind))
    if kind not in GENERATOR_TYPES:
        raise UnknownTypeError(f"unknown generator {kind!r}; use {', '.join(GENERATOR_TYPES)} "
                         "('plugin' names an installed plug-in by its registered name)")
    if kind != "plugin":  # a plug-in's ``settings`` are its own
        flatten_settings(value)
    if value["type"] == "auto" and set(value) - {"type", "pool_size"}:
        value["type"] = _auto_with_settings(value, space)
    return value


def _auto_with_settings(value: dict[str, Any], space: Any) -> str:
    """``auto`` carrying a concrete generator's settings (older files): the type ``auto`` resolves to."""
    space_type = space.get("type") if isinstance(space, dict) else getattr(space, "type", None)
    if space_type == "crystal":
        return "crystal"
    if space_type == "microstructure":
        return "random_field"
    return "sobol" if set(value) - {"type", "pool_size"} <= {"size"} else "grid"
