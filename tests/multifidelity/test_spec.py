"""Several fidelities of one property in the campaign file: which is the target, and the mistakes refused."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from agent.spec import Campaign


def spec(measurements: list[dict[str, Any]], **changes: Any) -> Campaign:
    data: dict[str, Any] = {
        "name": "mf", "space": {"type": "parametric", "parameters": [
            {"name": "x", "type": "continuous", "bounds": [0.0, 1.0]}]},
        "objectives": [{"property": "e", "goal": "minimize"}], "budget": {"max_cost": 10},
        "adapters": {"mlip": {"type": "simlab"}, "dft": {"type": "simlab"}}, "measurements": measurements,
        **changes,
    }
    return Campaign.model_validate(data)


CHEAP = {"properties": ["e"], "adapter": "mlip", "fidelity": "mlip", "cost": 0.01}
DEAR = {"properties": ["e"], "adapter": "dft", "fidelity": "dft", "cost": 1.0}


def test_the_most_expensive_fidelity_is_the_target_unless_one_is_marked() -> None:
    campaign = spec([DEAR, CHEAP])
    assert campaign.is_multifidelity and campaign.fidelities == ["mlip", "dft"]
    assert campaign.target_fidelity == "dft" and campaign.experiment_cost == 1.0
    marked = spec([DEAR, {**CHEAP, "target": True}])
    assert marked.target_fidelity == "mlip" and marked.fidelities == ["mlip", "dft"]


def test_one_fidelity_is_as_before() -> None:
    campaign = spec([DEAR])
    assert not campaign.is_multifidelity and campaign.experiment_cost == 1.0
    # two measurements of different properties are not fidelities of one property
    other = spec([DEAR, {**CHEAP, "properties": ["f"]}])
    assert not other.is_multifidelity and other.experiment_cost == 1.01


@pytest.mark.parametrize(("measurements", "changes", "words"), [
    ([DEAR, {**CHEAP, "fidelity": "dft"}], {}, "measured twice at fidelity 'dft'"),
    ([DEAR, {**CHEAP, "cost": 1.0}], {}, "cost the same; mark the one"),
    ([{**DEAR, "target": True}, {**CHEAP, "target": True}], {}, "'target: true' is set at several fidelities"),
    ([DEAR, {**CHEAP, "properties": ["e", "g"]}],
     {"constraints": ["g <= 1"]}, "does not measure ['g']"),
    ([DEAR, {**CHEAP, "cost": 0}], {}, "needs a 'cost' above zero"),
])
def test_mistakes_are_one_sentence(measurements: list[dict], changes: dict, words: str) -> None:
    with pytest.raises(ValidationError) as error:
        spec(measurements, **changes)
    assert words in str(error.value)


def test_a_batch_costs_each_pick_at_its_own_fidelity() -> None:
    """What approval and ``matloop pending`` show: a cheap pick is not priced at the target fidelity."""
    campaign = spec([DEAR, CHEAP])
    assert campaign.pick_cost("mlip") == 0.01 and campaign.pick_cost("dft") == 1.0
    assert campaign.pick_cost(None) == pytest.approx(1.01)  # no fidelity named: every measurement
    assert campaign.batch_cost(["mlip", "mlip", "dft"]) == pytest.approx(1.02)
    assert campaign.batch_cost([]) == 0.0
