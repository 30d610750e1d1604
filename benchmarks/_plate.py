"""OER plate 3496 (the demo's plate) and a campaign's ``batches.csv`` looked up on it: shared by the scripts
that grade a demo run against the plate's recorded values."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

COLUMNS = ["ni_load", "fe_load", "co_load", "mn_load", "ce_load", "la_load"]
PLATE = Path(__file__).resolve().parents[2] / "shared" / "data" / "oer_plates" / "oer_plate_3496.csv"


def composition_key(frame: pd.DataFrame) -> pd.Series:
    """One string per composition, robust to float formatting (loadings on a 0.1 grid)."""
    return frame[COLUMNS].round(3).astype(str).agg(",".join, axis=1)


def read_plate() -> pd.DataFrame:
    """The plate's rows with their composition key and rank (1 = lowest overpotential, ties share a rank)."""
    plate = pd.read_csv(PLATE)
    plate["key"], plate["rank"] = composition_key(plate), plate.overpotential.rank(method="min")
    return plate


def read_batches(path: Path) -> pd.DataFrame:
    """A campaign's ``batches.csv`` (``matloop demo`` / ``matloop report``) with plain loading columns and keys.

    Raises ``ValueError`` naming the file when it is not a batches file of the ``oer`` template.
    """
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    batches = pd.read_csv(path).rename(columns={f"x.{c}": c for c in COLUMNS})
    missing = [c for c in COLUMNS if c not in batches.columns]
    if missing:
        raise ValueError(f"{path}: no columns {missing} (or x.<name>): not a batches.csv of the oer template")
    batches["key"] = composition_key(batches)
    return batches
