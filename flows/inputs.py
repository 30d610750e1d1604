"""The typed inputs of the campaign flow: the campaign parameter and the approval form.

Both are pydantic models, so Prefect renders their JSON schema as forms in the
UI: the deployment's parameter form (a campaign file path, or a whole spec
inline) and the approval form a paused run shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from prefect.input import RunInput
from pydantic import BaseModel, Field, ValidationError, create_model, field_validator, model_validator

from agent.policy.approval import ApproverName, Decision
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
    """A person's decision on a proposed batch (the form a paused campaign run shows).

    The approver rule (not blank, one line, at most 200 characters) is :data:`ApproverName`'s, shared with
    :class:`Decision`, so the UI's form and ``matloop approve --by`` refuse the same names.
    """

    approver: ApproverName = Field(description="your name (one line, not blank, at most 200 characters); stored "
                                               "with the decision")
    decision: Literal["approve", "reject"] = Field(default="approve", description="reject re-proposes without these")
    drop: list[int] = Field(default_factory=list, description="candidate ids to leave out (when approving)")
    note: str = Field(default="", description="why (optional); stored with the decision")

    @field_validator("note", mode="before")
    @classmethod
    def _no_note(cls, value: object) -> object:
        # a plain text box in the form (a nullable field shows a str/None switch); the CLI's "no --note" is None
        return "" if value is None else value

    def to_decision(self) -> Decision:
        # Rejecting leaves every candidate out, so ids also chosen to drop say nothing more; the form cannot refuse
        # that combination (its schema knows no such rule), and a run must not fail on it after it resumes.
        approve = self.decision == "approve"
        return Decision(approve=approve, approver=self.approver, drop=list(self.drop) if approve else [],
                        note=self.note.strip() or None)


def batch_approval_input(candidate_ids: Sequence[int], description: str) -> type[ApprovalInput]:
    """The approval form for one batch: ``drop`` chooses among the batch's own candidate ids.

    Prefect renders the form from the model's JSON schema, so a ``list[Literal[ids]]`` (an array whose items are an
    ``enum``) becomes a multi-select of exactly these ids: nobody has to look them up in another tab, and an id
    from another batch cannot be typed in.  ``description`` (markdown: the batch, its predictions, reasons, cost
    and links) is shown above the form.  The answer is still an :class:`ApprovalInput`, and the CLI's plain
    ``list[int]`` payload validates against the stored schema as long as its ids are the batch's.
    """
    ids = tuple(dict.fromkeys(int(i) for i in candidate_ids))
    fields: dict[str, Any] = {}
    if ids:
        fields["drop"] = (
            list[Literal[ids]],  # type: ignore[valid-type]
            Field(default_factory=list, description="candidates of this batch to leave out (when approving)"),
        )
    model = create_model("ApprovalInput", __base__=ApprovalInput, **fields)
    return model.with_initial_data(description=description)


def input_problems(exc: ValidationError) -> str:
    """A validation error of a form or CLI input as one sentence (``field: problem; ...``), never a traceback."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(parts)
