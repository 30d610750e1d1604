"""Serving the campaign flow as a deployment, so campaigns start from the Prefect UI.

The deployment's parameters are the flow's typed signature: ``campaign`` is a
:class:`flows.inputs.CampaignSource` (a file path or a whole inline spec),
whose JSON schema the UI renders as a form.
"""

from __future__ import annotations

from typing import Any

from flows.campaign import campaign_flow

DEPLOYMENT_NAME = "campaign"


def campaign_deployment(name: str = DEPLOYMENT_NAME, **options: Any) -> Any:
    """The deployment object (a ``RunnerDeployment``) for the campaign flow."""
    return campaign_flow.to_deployment(
        name=name,
        description="Run or resume a matloop campaign (give a campaign file path or an inline spec).",
        tags=["matloop"],
        **options,
    )


def serve_deployments(name: str = DEPLOYMENT_NAME, limit: int | None = None) -> None:
    """Serve the campaign deployment until interrupted (a long-running process, like a worker)."""
    from prefect import serve

    serve(campaign_deployment(name), limit=limit)
