"""Flow tests use the loop tests' fixtures (one torch thread, the branin simulated lab); the Prefect API is in
tests/conftest.py."""

from tests.loop.conftest import _one_thread, simlab

__all__ = ["_one_thread", "simlab"]
