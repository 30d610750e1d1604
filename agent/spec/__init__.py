"""Campaign files: the pydantic models and the YAML loader."""

from agent.spec.campaign import (
    AdapterConfig,
    Approval,
    Budget,
    Campaign,
    Measurement,
    Stopping,
)
from agent.spec.loader import CampaignFileError, SpecProblem, dump_campaign, load_campaign, parse_campaign
from agent.spec.objectives import Objective, OutcomeConstraint
from matloop.space import (
    CategoricalParameter,
    CompositionSpace,
    ContinuousParameter,
    CrystalSpace,
    IntegerParameter,
    LinearConstraint,
    MicrostructureSpace,
    ParametricSpace,
    SimplexGroup,
)

__all__ = [
    "AdapterConfig", "Approval", "Budget", "Campaign", "CampaignFileError", "CategoricalParameter",
    "CompositionSpace", "ContinuousParameter", "CrystalSpace", "IntegerParameter",
    "LinearConstraint", "Measurement", "MicrostructureSpace", "Objective", "OutcomeConstraint", "ParametricSpace", "SimplexGroup",
    "SpecProblem", "Stopping", "dump_campaign", "load_campaign", "parse_campaign",
]
