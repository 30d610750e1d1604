"""``efficiency.py --per-seed`` files written by hand, for the tests of what reads them back."""

from __future__ import annotations

import json
from pathlib import Path


def per_seed_file(path: Path, strategy: str, n_best: list[int], budget: int = 250) -> Path:
    """One branin run at q=4 per value of ``n_best`` (seeds 0, 1, ...), with random search's baseline."""
    runs = [{"dataset": "branin", "q": 4, "strategy": strategy, "seed": s, "n_best": b, "n_top": 2}
            for s, b in enumerate(n_best)]
    path.write_text(json.dumps({"budget": budget, "n_init": 4, "runs": runs, "random_top": {"branin": 3.0}}))
    return path
