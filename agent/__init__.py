"""The controller core: campaign spec, selection, policy, the iteration steps, the store and the CLI.

``from agent import Recommender`` is the ask/tell API (:mod:`agent.asktell`); it is imported on first use, so
that reading a campaign file does not load the loop, torch and pandas.
"""

from typing import Any

__all__ = ["Recommender", "RecommenderError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from agent import asktell

        return getattr(asktell, name)
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
