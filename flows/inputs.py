"""The typed inputs of the campaign flow: the campaign parameter and the approval form.

Both are pydantic models, so Prefect renders their JSON schema as forms in the
UI: the deployment's parameter form (a campaign file path, or a whole spec
inline) and the approval form a paused run shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect.input import RunInput
from pydantic import BaseModel, Field, model_validator

from agent.policy.approval import Decision
from agent.spec import Campaign, load_campaign


class CampaignSource(BaseModel):
    """Which campaign to run: a campaign file on the worker's disk, or the spec itself."""

    path: str | None = Field(default=None, description="path of a campaign YAML file (on the machine running the flow)")
    spec: Campaign | None = Field(default=None, description="the campaign spec inline")

    @model_validator(mode="after")
    def _exactly_one(self) -> CampaignSource:
        if (self.path is None) == (self.spec is None):
            raise ValueError("give either 'path' (a campaign file) or 'spec' (an inline campaign), not both or neither")
        return self

    def load(self) -> Campaign:
        return self.spec if self.spec is not None else load_campaign(self.path or "")

    @property
    def base_dir(self) -> Path | None:
        return Path(self.path).resolve().parent if self.path else None


class ApprovalInput(RunInput):
    """A person's decision on a proposed batch (the form a paused campaign run shows)."""

    approver: str = Field(min_length=1, max_length=200, description="your name; stored with the decision")
    decision: Literal["approve", "reject"] = Field(default="approve", description="reject re-proposes without these")
    drop: list[int] = Field(default_factory=list, description="candidate ids to leave out (when approving)")
    note: str | None = Field(default=None, description="why (optional)")

    def to_decision(self) -> Decision:
        return Decision(approve=self.decision == "approve", approver=self.approver, drop=list(self.drop), note=self.note)
