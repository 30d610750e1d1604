"""The efficiency comparison's picture: what its curves say, and that --plot draws it from a run or a combine."""

from __future__ import annotations

import sys
from math import comb
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.efficiency_plot import found_share, plot_found_share, random_share  # noqa: E402
from tests.support.per_seed import per_seed_file  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_found_share_counts_a_run_from_the_experiment_that_found_the_best_and_never_a_censored_one():
    n, share = found_share([3, 5, 11], budget=10)  # 11 = budget + 1: not found within the budget
    assert n[0] == 0 and n[-1] == 10
    assert share[2] == 0 and share[3] == pytest.approx(1 / 3) and share[5] == pytest.approx(2 / 3)
    assert share[-1] == pytest.approx(2 / 3)  # ends at the share found within the budget


@pytest.mark.parametrize(("size", "best", "budget"), [(50, 1, 80), (50, 3, 20), (7, 2, 7)])
def test_random_share_is_the_chance_of_drawing_a_best_row_without_replacement(size, best, budget):
    n, share = random_share(size, best, budget)
    expected = [1 - comb(size - best, k) / comb(size, k) for k in n]
    assert np.allclose(share, expected)
    assert n[-1] == min(size, budget) and share[-1] <= 1.0
    if best == 1:
        assert np.allclose(share, n / size)  # one best row: found by n draws with probability n / N


def _runs(dataset: str, q: int, matloop: list[int], baybe: list[int]) -> list[dict]:
    return [{"dataset": dataset, "q": q, "strategy": s, "seed": i, "n_best": b, "n_top": 1}
            for s, hits in (("matloop", matloop), ("baybe", baybe)) for i, b in enumerate(hits)]


def test_the_picture_has_a_panel_per_problem_and_batch_size(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = _runs("branin", 4, [10, 20, 30], [20, 40, 60]) + _runs("mine", 8, [5, 151, 151], [7, 9, 151])
    out = plot_found_share(runs, 150, tmp_path / "deep" / "picture.png", pools={"branin": (1000, 3)},
                           splits={"branin": "heldout"})
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert sorted(p.name for p in out.parent.iterdir()) == ["picture.png"]  # no partial file left beside it
    assert not plt.get_fignums()  # the figure is closed: a long benchmark does not pile them up


def test_the_picture_refuses_no_runs(tmp_path):
    with pytest.raises(ValueError, match="no runs"):
        plot_found_share([], 150, tmp_path / "empty.png")


def test_combine_draws_the_picture_of_its_runs(tmp_path, capsys):
    from benchmarks.efficiency import main

    ours = per_seed_file(tmp_path / "matloop.json", "matloop", [10, 20, 30])
    theirs = per_seed_file(tmp_path / "baybe.json", "baybe", [20, 40, 60])
    picture = tmp_path / "branin.png"
    assert main(["--combine", str(ours), str(theirs), "--plot", str(picture)]) == 0
    assert f"# picture written to {picture}" in capsys.readouterr().out
    assert picture.read_bytes().startswith(PNG_MAGIC)


def test_plot_refuses_a_name_that_is_not_a_png_and_a_folder_it_cannot_write(tmp_path, capsys):
    from benchmarks.efficiency import main

    ours = per_seed_file(tmp_path / "matloop.json", "matloop", [10, 20, 30])
    with pytest.raises(SystemExit) as refused:
        main(["--combine", str(ours), "--plot", str(tmp_path / "picture.svg")])
    assert refused.value.code == 2
    assert "--plot " in (err := capsys.readouterr().err) and "its name must end in .png" in err
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit, match=r"^efficiency.py: the picture cannot be written to .*file/x.png \("):
        main(["--combine", str(ours), "--plot", str(blocker / "x.png")])
