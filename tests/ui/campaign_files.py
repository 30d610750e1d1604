"""A tiny campaign file for the UI tests: the ``oer`` template, made quick to run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.support.processes import REPO


def tiny_oer_file(folder: Path, name: str, *, experiments: int, approval: str, batch_size: int = 4) -> Path:
    """Batches of ``batch_size`` (the initial design one batch too) on a 20 % grid (252 compositions, not 3,003), a
    lab 10^5 times faster, a GP with 3-fold CV. From 5 a batch, ``auto`` ends each model batch with Thompson picks."""
    data: dict[str, Any] = yaml.safe_load((REPO / "agent" / "templates" / "oer.yaml").read_text())
    data.update(name=name, budget={"max_experiments": experiments, "max_iterations": experiments // batch_size},
                batch_size=batch_size, initial_design_size=batch_size, approval={"policy": approval},
                surrogate={"type": "gp", "settings": {"cv_folds": 3}})
    data["adapters"]["lab"]["settings"] = {"lab": {"time_scale": 1e-5}}
    data["space"]["simplex"][0]["step"] = 0.2
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
