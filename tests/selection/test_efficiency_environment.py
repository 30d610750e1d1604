"""A per-seed file says where it was measured, and joining files measured differently says so.

The same commit and seeds gave different experiments-to-best on two machines (RESULTS-selection.md, twelfth
round), so a table that joins runs from several machines or package sets must not pass for one measurement.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from tests.support.per_seed import per_seed_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def test_per_seed_files_say_where_they_were_measured_and_combine_says_when_that_differs(tmp_path, capsys):
    """The same code's picks differ between CPUs and package versions, so a joined table says when its runs
    come from different numerical environments, naming what differs."""
    from benchmarks.efficiency import main, write_per_seed
    from benchmarks.environment import PACKAGES, numerics_environment

    here = numerics_environment()
    assert {"python", "cpu", "torch_cpu_capability", *PACKAGES} <= here.keys()
    assert here["numpy"] == np.__version__ and here["torch_cpu_capability"] not in ("", "absent")
    ours = tmp_path / "matloop.json"
    write_per_seed(ours, 250, 4, [{"dataset": "branin", "q": 4, "strategy": "matloop", "seed": 0, "n_best": 10,
                                   "n_top": 2}], {"branin": 3.0})
    assert json.loads(ours.read_text())["environment"] == here
    theirs = per_seed_file(tmp_path / "baybe.json", "baybe", [20])
    assert main(["--combine", str(ours), str(theirs)]) == 0  # an older file records no environment
    assert "# these runs were measured in 2 numerical environments (and files that do not record theirs)" \
        in capsys.readouterr().out
    elsewhere = json.loads(theirs.read_text())
    theirs.write_text(json.dumps({**elsewhere, "environment": {**here, "numpy": "1.26.4"}}))
    assert main(["--combine", str(ours), str(theirs)]) == 0
    assert f"(numpy: 1.26.4 / {here['numpy']}); the same code's picks can differ" in capsys.readouterr().out
    theirs.write_text(json.dumps({**elsewhere, "environment": here}))
    assert main(["--combine", str(ours), str(theirs)]) == 0
    assert "numerical environments" not in capsys.readouterr().out
