"""Prefect flows and deployments for running campaigns."""
