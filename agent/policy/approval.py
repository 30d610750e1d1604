"""Who lets a batch go out: the automatic policies, and the shape of a person's decision."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from agent.spec import Approval

AUTO_APPROVER = "policy:auto"


class Decision(BaseModel):
    """A decision on a proposed batch: approve (possibly dropping candidates) or reject it.

    ``approver`` is required: every batch that goes out names who let it go
    (a person, or ``policy:...`` for an automatic policy).
    """

    approve: bool = True
    approver: str = Field(min_length=1, max_length=200)
    drop: list[int] = Field(default_factory=list, description="candidate ids to leave out of the batch")
    note: str | None = None

    @model_validator(mode="after")
    def _drop_only_when_approving(self) -> Decision:
        if not self.approve and self.drop:
            raise ValueError("a rejected batch drops every candidate; give either --reject or --drop, not both")
        return self


def automatic_decision(approval: Approval, batch_cost: float) -> Decision | None:
    """The policy's own decision, or ``None`` when a person must decide.

    ``auto_below_cost`` lets a batch go by itself only when it costs at most the
    limit: cheap batches do not wait for anyone, expensive ones always do.
    """
    if approval.policy == "auto":
        return Decision(approver=AUTO_APPROVER, note="approved automatically (policy auto)")
    if approval.policy == "auto_below_cost":
        assert approval.cost_limit is not None
        if batch_cost <= approval.cost_limit:
            return Decision(
                approver="policy:auto_below_cost",
                note=f"batch cost {batch_cost:g} is within the limit {approval.cost_limit:g}",
            )
    return None
