"""Who lets a batch go out: the automatic policies, and the shape of a person's decision."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, model_validator
from pydantic_core import PydanticCustomError

from agent.spec import Approval

AUTO_APPROVER = "policy:auto"
#: The longest approver name stored (the ``batch.approver`` and ``event.actor`` columns hold 200 characters).
APPROVER_MAX_LENGTH = 200


def check_approver(value: str) -> str:
    """The approver's name, trimmed; refused when empty, only spaces, several lines, or too long.

    Every batch that goes out names who let it go, so a blank name is no name: the rule is here, once, for the
    Prefect form, ``matloop approve --by`` and the automatic policies alike.
    """
    name = value.strip()
    if not name:
        raise PydanticCustomError("approver_blank", "the approver's name is empty; give your name (it is stored with "
                                  "the decision)")
    if any(ch < " " or ch == "\x7f" for ch in name):
        raise PydanticCustomError("approver_control", "the approver's name must be one line of printable text")
    if len(name) > APPROVER_MAX_LENGTH:
        raise PydanticCustomError(
            "approver_too_long", "the approver's name is {length} characters long; at most {limit} are stored",
            {"length": len(name), "limit": APPROVER_MAX_LENGTH},
        )
    return name


#: The same rule as a JSON-schema pattern: one line of printable text with something besides spaces in it.
APPROVER_PATTERN = r"^\s*[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*\s*$"

#: A person's (or a policy's) name.  The JSON schema carries the same rule, so the Prefect server refuses a name
#: the flow would refuse before the paused run ever sees it (a run resumed with an invalid answer would fail).
ApproverName = Annotated[
    str,
    AfterValidator(check_approver),
    Field(json_schema_extra={"minLength": 1, "maxLength": APPROVER_MAX_LENGTH, "pattern": APPROVER_PATTERN}),
]


class Decision(BaseModel):
    """A decision on a proposed batch: approve (possibly dropping candidates) or reject it.

    ``approver`` is required: every batch that goes out names who let it go
    (a person, or ``policy:...`` for an automatic policy).
    """

    approve: bool = True
    approver: ApproverName
    drop: list[int] = Field(default_factory=list, description="candidate ids to leave out of the batch")
    note: str | None = None

    @model_validator(mode="after")
    def _drop_only_when_approving(self) -> Decision:
        if not self.approve and self.drop:
            raise ValueError("a rejected batch drops every candidate; give either --reject or --drop, not both")
        return self


def automatic_decision(approval: Approval, batch_cost: float, remaining: float = math.inf,
                       currency: str = "cost units") -> Decision | None:
    """The policy's own decision, or ``None`` when a person must decide.

    ``auto_below_cost`` lets a batch go by itself only when it costs at most the limit *and* what is left of
    the budget (``remaining``: ``max_cost`` less the ledger's spend) can pay for it: cheap batches do not wait
    for anyone; an expensive one, or one that would overspend the budget, waits for a person, who may drop
    candidates until it fits (or raise the budget). ``auto`` is not held back: it promises that nobody is asked,
    and the batch was already sized to what the budget allows (``agent.loop.select.batch_size_now``).
    """
    if approval.policy == "auto":
        return Decision(approver=AUTO_APPROVER, note="approved automatically (policy auto)")
    if approval.policy == "auto_below_cost":
        assert approval.cost_limit is not None
        if batch_cost <= approval.cost_limit and batch_cost <= remaining + 1e-9:
            left = "" if math.isinf(remaining) else f", and the budget has {remaining:g} {currency} left"
            return Decision(
                approver="policy:auto_below_cost",
                note=f"batch cost {batch_cost:g} {currency} is within the limit {approval.cost_limit:g}{left}",
            )
    return None

