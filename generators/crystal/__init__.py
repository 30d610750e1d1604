"""Crystal campaigns: prototype decoration and substitution, validity, de-duplication, novelty, funnel."""

from generators.crystal.chemistry import OxidationRules, SubstitutionScorer
from generators.crystal.dedup import DedupOutcome, StructureRegistry, coarse_key, deduplicate
from generators.crystal.funnel import FunnelOutcome, FunnelRates, run_funnel, structures_of
from generators.crystal.io import CrystalInputError, load_cif, structure_from_cif_text
from generators.crystal.novelty import ReferenceSet
from generators.crystal.pipeline import FunnelGenerator, FunnelSettings, funnel_generator
from generators.crystal.prototypes import PROTOTYPES, Template, named_prototype, template_from_structure
from generators.crystal.substitution import (
    GenerationStats,
    SubstitutionGenerator,
    SubstitutionSettings,
    substitution_generator,
)
from generators.crystal.validity import ValidityRules, check_structure, partition_valid

__all__ = [
    "PROTOTYPES", "CrystalInputError", "DedupOutcome", "FunnelGenerator", "FunnelSettings", "FunnelOutcome", "FunnelRates", "GenerationStats", "OxidationRules", "ReferenceSet",
    "StructureRegistry", "SubstitutionGenerator", "SubstitutionScorer", "SubstitutionSettings", "Template",
    "ValidityRules", "check_structure", "coarse_key", "deduplicate", "funnel_generator", "load_cif", "named_prototype",
    "partition_valid", "run_funnel", "structure_from_cif_text", "substitution_generator", "structures_of", "template_from_structure",
]
