"""The DFT queue: real DFT calculations (GPAW; QE and VASP inputs/parsers) through SLURM or a local process pool.

``make_dft_adapter("dft", "local", settings)`` is the embedded default;
``make_dft_adapter("hpc", "slurm", settings)`` submits with ``sbatch`` here or, with
``settings.ssh_host``, on a login node.  Both are :class:`matloop.types.LabAdapter`.
See ``docs/dft.md``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab_adapters.dft.settings import DFTSettings, RecipeSettings, Resources, RetryPolicy

if TYPE_CHECKING:
    from lab_adapters.dft.adapter import DFTQueueAdapter
    from lab_adapters.dft.runner import CommandRunner

#: Imported on first use: the adapter pulls in pymatgen's VASP/QE readers (seconds), and reading a campaign
#: file (``lab_adapters.dft.config``) needs only the settings.
_EXPORTS = {
    "DFTQueueAdapter": "lab_adapters.dft.adapter",
    "LocalQueueScheduler": "lab_adapters.dft.localqueue",
    "CommandRunner": "lab_adapters.dft.runner",
    "LocalRunner": "lab_adapters.dft.runner",
    "RemoteShellRunner": "lab_adapters.dft.runner",
    "SSHRunner": "lab_adapters.dft.runner",
    "SlurmScheduler": "lab_adapters.dft.slurm",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lab_adapters.dft' has no attribute {name!r}")

ADAPTER_TYPES = ("local", "slurm")


def default_work_dir() -> str:
    """``$MATLOOP_DATA_DIR/dft``, else the user's data dir (the same place matloop keeps its database)."""
    base = os.environ.get("MATLOOP_DATA_DIR")
    if not base:
        import platformdirs

        base = platformdirs.user_data_dir("matloop")
    return str(Path(base) / "dft")


def make_dft_adapter(
    name: str, adapter_type: str, settings: DFTSettings | dict[str, Any] | None = None, *,
    runner: CommandRunner | None = None,
) -> DFTQueueAdapter:
    """A DFT adapter from a campaign's ``adapters.<name>`` entry (``type`` and settings)."""
    from lab_adapters.dft.adapter import DFTQueueAdapter
    from lab_adapters.dft.localqueue import LocalQueueScheduler
    from lab_adapters.dft.runner import LocalRunner, SSHRunner
    from lab_adapters.dft.slurm import SlurmScheduler

    if not isinstance(settings, DFTSettings):
        settings = DFTSettings.model_validate(settings or {})
    if adapter_type == "local":
        work_dir = settings.work_dir or default_work_dir()
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        work_dir = str(Path(work_dir).resolve())
        return DFTQueueAdapter(name, LocalQueueScheduler(work_dir, settings.max_workers), settings,
                               runner=LocalRunner(), work_dir=work_dir)
    if adapter_type == "slurm":
        if runner is None:
            runner = SSHRunner(settings.ssh_host, options=settings.ssh_options) if settings.ssh_host else LocalRunner()
        if settings.work_dir is None and not isinstance(runner, LocalRunner):
            raise ValueError(f"adapter {name!r}: settings.work_dir (a path on the cluster) is required with SSH")
        work_dir = settings.work_dir or default_work_dir()
        if isinstance(runner, LocalRunner):
            Path(work_dir).mkdir(parents=True, exist_ok=True)
            work_dir = str(Path(work_dir).resolve())
        return DFTQueueAdapter(name, SlurmScheduler(runner, use_sacct=settings.use_sacct), settings,
                               runner=runner, work_dir=work_dir)
    raise ValueError(f"adapter {name!r}: unknown DFT adapter type {adapter_type!r}; known: {list(ADAPTER_TYPES)}")


__all__ = [
    "ADAPTER_TYPES", "CommandRunner", "DFTQueueAdapter", "DFTSettings", "LocalQueueScheduler", "LocalRunner",
    "RecipeSettings", "RemoteShellRunner", "Resources", "RetryPolicy", "SSHRunner", "SlurmScheduler",
    "make_dft_adapter",
]
