"""The served deployment: the campaign parameter's schema is what the Prefect UI renders as a form."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flows.deployments import campaign_deployment
from flows.inputs import ApprovalInput, CampaignSource
from tests.loop.conftest import branin_spec


def test_deployment_exposes_a_typed_campaign_parameter() -> None:
    from prefect.utilities.callables import parameter_schema

    from flows.campaign import campaign_flow

    deployment = campaign_deployment()
    assert deployment.name == "campaign" and deployment.flow_name == "matloop-campaign"
    schema = parameter_schema(campaign_flow).model_dump()
    assert "campaign" in schema["properties"] and "campaign" in schema["required"]
    text = str(schema)
    assert "path" in text and "spec" in text and "batch_size" in text  # the inline spec's fields are in the form
    # one select (no str/None toggle): "campaign" follows the campaign file
    assert schema["properties"]["approval"]["enum"] == ["campaign", "auto", "manual", "auto_below_cost"]
    assert schema["properties"]["approval"]["default"] == "campaign"
    for name, prop in schema["properties"].items():  # every parameter is explained in the run form
        assert len(prop.get("description") or "") > 20, name
    definitions = schema.get("definitions") or schema.get("$defs") or {}
    assert {"Campaign", "Measurement", "Budget", "ParametricSpace", "RecipeSettings", "Resources"} <= set(definitions)
    unexplained = [f"{model}.{field}" for model, d in definitions.items()
                   for field, prop in (d.get("properties") or {}).items() if not prop.get("description")]
    assert unexplained == []  # and so is every field of the campaign spec nested inside it


def test_campaign_source_and_approval_input_validate() -> None:
    with pytest.raises(ValidationError, match="either 'path'"):
        CampaignSource()
    with pytest.raises(ValidationError, match="either 'path'"):
        CampaignSource(path="a.yaml", spec=branin_spec())
    assert CampaignSource(spec=branin_spec()).load().name == "branin-loop"
    with pytest.raises(ValidationError):
        ApprovalInput(approver="")
    decision = ApprovalInput(approver="ada", decision="reject", note="no").to_decision()
    assert not decision.approve and decision.approver == "ada"
