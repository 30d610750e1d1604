"""Approval and stopping policies: small pure functions the loop consults."""

from agent.policy.approval import Decision, automatic_decision
from agent.policy.stopping import CampaignProgress, stop_reason

__all__ = ["CampaignProgress", "Decision", "automatic_decision", "stop_reason"]
