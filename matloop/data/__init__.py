"""Where matloop finds its reference data: the small copies it ships, and the shared data folder.

The demo must work on a user's machine with nothing beside the checkout, so the
small datasets it needs (the four OER plates, the hybrid perovskite gaps) are
copied here with their licence (see ``README.md`` in this folder).  Larger data
(the MoS2 DFT set, perov5) stays in the shared data folder, found through
:func:`shared_data_dir`; code that needs it says so clearly when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The folder holding the bundled copies (inside the installed package).
BUNDLED_DIR = Path(__file__).resolve().parent

#: Environment variable that points at the shared data folder (``.../shared/data``).
SHARED_DATA_ENV = "MATLOOP_SHARED_DATA"


class DatasetNotFound(FileNotFoundError):
    """A dataset is neither bundled nor in the shared data folder; the message says where it looked."""


def bundled_path(relative: str) -> Path:
    """The bundled copy of ``relative`` (e.g. ``"oer_plates/oer_plate_3496.csv"``); raises if not shipped."""
    path = BUNDLED_DIR / relative
    if not path.is_file():
        raise DatasetNotFound(f"{relative!r} is not bundled with matloop (looked for {path})")
    return path


def shared_data_dir() -> Path:
    """The shared data folder: ``$MATLOOP_SHARED_DATA``, else ``../shared/data`` beside the checkout."""
    configured = os.environ.get(SHARED_DATA_ENV)
    if configured:
        return Path(configured).expanduser()
    return BUNDLED_DIR.parents[2] / "shared" / "data"


def dataset_path(relative: str) -> Path:
    """A dataset file, bundled copy first, then the shared data folder.

    Bundled copies win so that results do not depend on whether shared/ exists.
    """
    candidates = [BUNDLED_DIR / relative, shared_data_dir() / relative]
    for path in candidates:
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p in candidates)
    raise DatasetNotFound(
        f"dataset {relative!r} not found (looked in {looked}); set {SHARED_DATA_ENV} to the shared data folder"
    )


__all__ = ["BUNDLED_DIR", "SHARED_DATA_ENV", "DatasetNotFound", "bundled_path", "dataset_path", "shared_data_dir"]
