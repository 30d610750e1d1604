"""Prefect flows and deployments: the campaign flow, the approval pause, serving for the Prefect UI."""
