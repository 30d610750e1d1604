"""A dataset of one's own as an efficiency problem: the problem file, its checks, and a replay against BayBE."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.problem_file import ProblemFileError, load_problem  # noqa: E402


def _lab_data(n: int = 80, seed: int = 0) -> pd.DataFrame:
    """A made-up catalyst screen: two loadings, a metal, and an activity with one best row."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "loading": rng.integers(0, 20, n) / 20,
        "temperature": rng.integers(300, 340, n).astype(float),
        "metal": rng.choice(["Pt", "Pd", "Ir"], n),
    })
    frame["activity"] = -(frame["loading"] - 0.6) ** 2 - ((frame["temperature"] - 320) / 40) ** 2 \
        + 0.05 * (frame["metal"] == "Ir")
    return frame


def _write(folder: Path, frame: pd.DataFrame, spec: str, name: str = "screen") -> Path:
    frame.to_csv(folder / f"{name}.csv", index=False)
    path = folder / f"{name}.yaml"
    path.write_text(spec.replace("DATA", f"{name}.csv"))
    return path


SPEC = "data: DATA\ntarget: activity\ngoal: maximize\n"


def test_a_problem_file_becomes_a_pool_with_an_inferred_space(tmp_path):
    frame = _lab_data()
    path = _write(tmp_path, frame, SPEC)
    pool = load_problem(path)
    assert re.fullmatch(r"screen-[0-9a-f]{8}", pool.name)
    assert list(pool.frame.columns) == ["loading", "temperature", "metal"]
    assert not pool.minimize and pool.top_share == 0.01
    by_name = {p["name"]: p for p in pool.space["parameters"]}
    assert by_name["loading"] == {"name": "loading", "type": "continuous",
                                  "bounds": [frame["loading"].min(), frame["loading"].max()]}
    assert by_name["metal"]["type"] == "categorical" and by_name["metal"]["options"] == ["Ir", "Pd", "Pt"]
    # repeated parameter rows are one candidate with their mean value
    distinct = frame.groupby(["loading", "temperature", "metal"])["activity"].mean()
    assert len(pool.y) == len(distinct)
    assert pool.utility.max() == pytest.approx(distinct.max())


def test_the_name_changes_with_the_data_so_cached_orders_are_never_reused(tmp_path):
    frame = _lab_data()
    first = load_problem(_write(tmp_path, frame, SPEC)).name
    assert load_problem(_write(tmp_path, frame, SPEC)).name == first
    edited = frame.assign(activity=frame["activity"].where(frame.index != 3, 9.0))
    assert load_problem(_write(tmp_path, edited, SPEC)).name != first
    named = load_problem(_write(tmp_path, frame, SPEC + "name: p3ht\n")).name
    assert named.startswith("p3ht-") and named.endswith(first.rsplit("-", 1)[1])


def test_a_declared_space_is_used_as_a_campaign_file_says_it(tmp_path):
    """A simplex group (the fractions of a mixture) and a numeric-looking code declared categorical stay so."""
    rng = np.random.default_rng(1)
    parts = rng.integers(0, 11, (60, 3))
    parts = parts[parts.sum(1) > 0]
    fractions = np.round(parts / parts.sum(1, keepdims=True) * 10) / 10
    fractions[:, 2] = np.round(1 - fractions[:, 0] - fractions[:, 1], 10)
    keep = fractions[:, 2] >= 0
    frame = pd.DataFrame(fractions[keep], columns=["a", "b", "c"])
    frame["batch"] = rng.choice(["1", "2"], len(frame))
    frame["y"] = frame["a"] * frame["b"] + (frame["batch"] == "2")
    spec = """data: DATA
target: y
goal: maximize
space:
  type: parametric
  parameters:
    - {name: a, type: continuous, bounds: [0, 1]}
    - {name: b, type: continuous, bounds: [0, 1]}
    - {name: c, type: continuous, bounds: [0, 1]}
    - {name: batch, type: categorical, options: ["1", "2"]}
  simplex:
    - {parameters: [a, b, c], total: 1.0, step: 0.1}
"""
    pool = load_problem(_write(tmp_path, frame, spec))
    assert pool.space["simplex"][0]["parameters"] == ["a", "b", "c"]
    assert set(pool.frame["batch"]) == {"1", "2"}


@pytest.mark.parametrize(("spec", "edit", "message"), [
    ("data: DATA\ntarget: rate\ngoal: maximize\n", None, "the target 'rate' is not a column of its data"),
    ("data: DATA\ntarget: activity\ngoal: best\n", None, "goal: Input should be 'minimize' or 'maximize'"),
    ("data: DATA\ntarget: activity\n", None, "goal: Field required"),
    ("data: DATA\ntarget: activity\ngoal: maximize\ncolour: red\n", None, "colour: Extra inputs are not permitted"),
    ("data: other.csv\ntarget: activity\ngoal: maximize\n", None, "its data file"),
    ("data: DATA\ntarget: activity\ngoal: maximize\nparameters: [loading, ph]\n", None,
     "parameter(s) ['ph'] are not columns"),
    ("data: DATA\ntarget: activity\ngoal: maximize\nparameters: [loading, activity]\n", None,
     "the target 'activity' cannot also be a parameter"),
    ("data: DATA\ntarget: activity\ngoal: maximize\nname: ../../etc\n", None, "name: String should match pattern"),
    ("!!python/object/apply:os.system [echo hi]\n", None, "tag"),
    ("- data\n- target\n", None, "must be a mapping"),
    (SPEC, lambda f: f.assign(activity=f["activity"].astype(object).where(f.index != 5, "n/a")),
     "line 7 of its data has 'n/a' for the target 'activity', not a finite number"),
    (SPEC, lambda f: f.assign(loading=f["loading"].astype(object).where(f.index != 0, "")),
     "line 2 of its data has no value for the parameter 'loading'"),
    (SPEC, lambda f: f.assign(loading=f["loading"].astype(object).where(f.index != 2, "high")),
     "line 4 of its data has 'high' for the parameter 'loading', not a finite number"),
    (SPEC, lambda f: f.assign(activity=1.0), "every row has the same 'activity'"),
    (SPEC, lambda f: f.head(5), "a replay needs at least 8"),
    ("data: DATA\ntarget: activity\ngoal: maximize\nspace: {type: parametric, parameters: "
     "[{name: loading, type: continuous, bounds: [0, 1]}]}\n", None, "its space does not fit its data"),
    ("data: DATA\ntarget: activity\ngoal: maximize\nparameters: [loading]\nspace: {type: parametric, parameters: "
     "[{name: loading, type: continuous, bounds: [1, 0]}]}\n", None, "its space is not a valid campaign space"),
])
def test_a_file_that_cannot_be_used_is_refused_in_one_sentence(tmp_path, spec, edit, message):
    frame = _lab_data()
    path = _write(tmp_path, frame if edit is None else edit(frame), spec)
    with pytest.raises(ProblemFileError) as caught:
        load_problem(path)
    text = str(caught.value)
    assert message in text, text
    assert "\n" not in text and text.startswith(str(path))


@pytest.mark.parametrize("name", ["absolute", "../outside.csv", "inside/../../outside.csv", "link.csv", "sub/link.csv"])
def test_data_outside_the_problem_files_folder_is_refused_though_it_is_a_good_csv(tmp_path, name):
    """A problem file from someone else must not make the replay read (and echo) another of the user's files."""
    outside = tmp_path / "outside.csv"
    _lab_data().to_csv(outside, index=False)
    folder = tmp_path / "problem"
    (folder / "sub").mkdir(parents=True)
    (folder / "link.csv").symlink_to(outside)
    (folder / "sub" / "link.csv").symlink_to(outside)
    data = str(outside) if name == "absolute" else name
    path = folder / "screen.yaml"
    path.write_text(SPEC.replace("DATA", data))
    with pytest.raises(ProblemFileError) as caught:
        load_problem(path)
    assert str(caught.value) == f"{path}: its data {data!r} must be a CSV in the problem file's folder or below it"
    (folder / "sub" / "kept.csv").write_text(outside.read_text())
    path.write_text(SPEC.replace("DATA", "sub/kept.csv"))
    assert len(load_problem(path).y) == len(_lab_data())


def test_a_huge_cell_is_cut_short_in_the_sentence(tmp_path):
    frame = _lab_data().astype({"activity": object})
    frame.loc[0, "activity"] = "x" * 100_000
    with pytest.raises(ProblemFileError) as caught:
        load_problem(_write(tmp_path, frame, SPEC))
    assert f"line 2 of its data has {'x' * 40!r} (cut at 40 of 100,000 characters) for the target" in str(caught.value)
    assert len(str(caught.value)) < 300 + len(str(tmp_path))


def test_a_csv_that_is_not_one_is_refused(tmp_path):
    path = tmp_path / "screen.yaml"
    path.write_text(SPEC.replace("DATA", "screen.csv"))
    (tmp_path / "screen.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ProblemFileError, match="is not a readable CSV"):
        load_problem(path)


def test_a_problem_file_that_is_not_a_small_regular_text_file_is_refused_without_reading_it(tmp_path):
    """Read as a campaign file is: a FIFO is not waited on, a device not read forever, a binary file not decoded."""
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    big = tmp_path / "big.yaml"
    big.write_text(SPEC + "#" * 70_000 + "\n")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(SPEC.encode("utf-16"))
    for path, message in [(fifo, "is not a regular file (a FIFO, device or socket); give the path of a problem file"),
                          (tmp_path, "is a directory; give the path of a problem file"),
                          (big, "is larger than 65,536 bytes; a problem file is a few kilobytes"),
                          (binary, "is UTF-16 text; save it as UTF-8 (line 1)"),
                          (tmp_path / "absent.yaml", "cannot read file: No such file or directory")]:
        with pytest.raises(ProblemFileError) as caught:
            load_problem(path)
        assert str(caught.value) == f"{path}: {message}"


def test_a_data_path_that_is_not_a_regular_file_is_refused(tmp_path):
    (tmp_path / "screen.yaml").write_text(SPEC.replace("DATA", "folder"))
    (tmp_path / "folder").mkdir()
    with pytest.raises(ProblemFileError, match="its data file .*folder is not a regular file$"):
        load_problem(tmp_path / "screen.yaml")


@pytest.mark.slow
def test_efficiency_replays_a_problem_file_against_baybe_outside_the_repository(tmp_path):
    """One command: the campaign path and BayBE on the user's data, held out, BayBE's orders in the user's cache."""
    path = _write(tmp_path, _lab_data(60), SPEC)
    committed = sorted((ROOT / "benchmarks" / "results" / "baybe-cache").glob("screen-*"))
    done = subprocess.run(
        [sys.executable, "benchmarks/efficiency.py", "--problem-file", str(path), "--batch-sizes", "4", "--seeds", "1",
         "--budget", "16"], cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert re.search(r"^screen-[0-9a-f]{8} +heldout +4 +\S+ +\S+ +[0-9.]+$", out, re.M), out
    assert re.search(r"summary: datasets=1 .* heldout_ratio=[0-9.]+ heldout_max=[0-9.]+$", out, re.M), out
    assert len(list((tmp_path / "cache" / "matloop" / "baybe-orders").glob("screen-*-q4-seed0-*.json"))) == 1
    assert sorted((ROOT / "benchmarks" / "results" / "baybe-cache").glob("screen-*")) == committed


def test_a_bad_problem_file_stops_the_benchmark_with_its_sentence(tmp_path):
    path = tmp_path / "screen.yaml"
    path.write_text("data: missing.csv\ntarget: y\ngoal: minimize\n")
    done = subprocess.run([sys.executable, "benchmarks/efficiency.py", "--problem-file", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == f"efficiency.py: {path}: its data file {tmp_path / 'missing.csv'} does not exist"


def test_the_committed_xtb_problem_is_read_through_its_problem_file():
    """The held-out xtb_benzenes pool is the worked example: the registry reads it as a user's file would be."""
    from benchmarks.problems import PROBLEMS, SOURCE, SPLIT

    pool = PROBLEMS["xtb_benzenes"](0)
    from_file = load_problem(ROOT / "benchmarks" / "data" / "xtb_benzenes.yaml")
    assert pool.name == "xtb_benzenes" and from_file.name.startswith("xtb_benzenes-")
    assert len(pool.y) == 874 and pool.minimize and SPLIT["xtb_benzenes"] == "heldout"
    assert [p["type"] for p in pool.space["parameters"]] == ["categorical"] * 3
    best = pool.frame.iloc[sorted(pool.best_rows)]
    assert best.to_dict("records") == [{"r1": "OH", "r2": "NO2", "r4": "NH2"}]
    assert "make_xtb_gaps.py" in SOURCE["xtb_benzenes"]


def test_the_thiophenes_are_a_development_problem_read_the_same_way():
    """xtb_thiophenes stands for the benzenes' kind of space on the development side (a different scaffold)."""
    from benchmarks.problems import PROBLEMS, SOURCE, SPLIT

    pool = PROBLEMS["xtb_thiophenes"](0)
    assert pool.name == "xtb_thiophenes" and len(pool.y) == 955 and pool.minimize
    assert SPLIT["xtb_thiophenes"] == "dev"
    assert [p["name"] for p in pool.space["parameters"]] == ["r2", "r3", "r5"]
    best = pool.frame.iloc[sorted(pool.best_rows)]
    assert best.to_dict("records") == [{"r2": "NO2", "r3": "CHO", "r5": "NO2"}]
    assert "make_xtb_gaps.py" in SOURCE["xtb_thiophenes"]
