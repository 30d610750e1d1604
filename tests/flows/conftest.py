"""One Prefect API for the whole session (its server takes seconds to start), with Prefect's files in a temp dir."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import torch


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server (Prefect's test harness, its own SQLite) shared by every flow test."""
    saved = {k: os.environ.get(k) for k in ("PREFECT_HOME", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")}
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    try:
        with prefect_test_harness(server_startup_timeout=120):
            yield str(PREFECT_API_URL.value())
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def simlab() -> Iterator[Any]:
    from lab_adapters.simlab.inprocess import running_simlab

    with running_simlab(scenarios=["branin"], time_scale=1e-4) as handle:
        yield handle
