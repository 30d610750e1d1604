"""Fixtures for the DFT queue tests: a real single-node SLURM, real GPAW, adapters over a temporary work dir.

SLURM is started through ``.ci/start_slurm.sh`` when it is not already running (and
stopped again at the end of the session if this fixture started it).  A test skips
only when SLURM or GPAW is genuinely not installed; under CI=true that skip fails.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab_adapters.dft import DFTQueueAdapter, make_dft_adapter

from .dft_helpers import REPO, TINY_RECIPE, AdapterFactory

GPAW_PYTHON = "/usr/bin/python3"


def slurm_ready() -> bool:
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, check=False)
    return "is UP" in ping.stdout


@pytest.fixture(scope="session")
def slurm() -> Iterator[None]:
    """A running single-node SLURM on localhost."""
    missing = [c for c in ("slurmctld", "slurmd", "sbatch", "munged") if shutil.which(c) is None]
    if missing:
        pytest.skip(f"SLURM is not installed here (missing {missing}; Debian packages slurm-wlm and munge)")
    started_here = False
    if not slurm_ready():
        proc = subprocess.run(["bash", str(REPO / ".ci" / "start_slurm.sh")], capture_output=True, text=True,
                              check=False, timeout=120)
        if proc.returncode != 0:
            pytest.fail(f".ci/start_slurm.sh failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        started_here = True
    else:  # running, but make sure the node is usable (idempotent, fast)
        subprocess.run(["bash", str(REPO / ".ci" / "start_slurm.sh")], capture_output=True, check=False, timeout=120)
    yield
    if started_here:
        subprocess.run(["bash", str(REPO / ".ci" / "slurm" / "stop.sh")], capture_output=True, check=False)


@pytest.fixture(scope="session")
def gpaw() -> None:
    """Debian's GPAW (with its PAW setups) under /usr/bin/python3."""
    if not Path(GPAW_PYTHON).exists():
        pytest.skip(f"{GPAW_PYTHON} is missing (GPAW runs on Debian's Python; packages gpaw gpaw-data)")
    probe = subprocess.run([GPAW_PYTHON, "-c", "import gpaw, ase"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"GPAW is not installed for {GPAW_PYTHON} (Debian packages gpaw gpaw-data): {probe.stderr[-300:]}")


def _settings(work_dir: Path, **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "work_dir": str(work_dir),
        "max_workers": 2,
        "recipe": dict(TINY_RECIPE),
        "resources": {"time": "10m"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(settings.get(key), dict):
            settings[key] = {**settings[key], **value}
        else:
            settings[key] = value
    return settings


@pytest.fixture(params=["local", "slurm"])
def adapter_kind(request: pytest.FixtureRequest, gpaw: None) -> str:
    """Each queue test runs against the local process queue and against real SLURM."""
    if request.param == "slurm":
        request.getfixturevalue("slurm")
    return request.param


@pytest.fixture
def make_adapter(adapter_kind: str, tmp_path: Path) -> AdapterFactory:
    """Build an adapter of the parametrised kind over a work dir in ``tmp_path`` (same dir = a restart)."""

    def build(work_dir: Path | None = None, **overrides: Any) -> DFTQueueAdapter:
        return make_dft_adapter("dft", adapter_kind, _settings(work_dir or tmp_path / "dft", **overrides))

    return build


@pytest.fixture
def make_local_adapter(gpaw: None, tmp_path: Path) -> AdapterFactory:
    """Build a local-queue adapter (for what only the local queue does)."""

    def build(work_dir: Path | None = None, **overrides: Any) -> DFTQueueAdapter:
        return make_dft_adapter("dft", "local", _settings(work_dir or tmp_path / "dft", **overrides))

    return build
