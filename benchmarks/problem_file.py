"""A fully measured dataset of one's own as an efficiency problem: a small YAML file naming a CSV, a target, a goal.

Why: "would matloop have found our best material in fewer experiments than BayBE?" is answered by replaying a
lab's past data, and the selection target is also checked on datasets this repository does not hold. A problem
file makes that one command, through the campaign path, the defaults and the BayBE cache of the built-in
problems, without writing Python::

    python benchmarks/efficiency.py --problem-file my-data.yaml

    data: p3ht.csv          # a CSV in this file's folder or below it; one row per measured candidate
    target: conductivity    # the measured column
    goal: maximize          # or minimize
    name: p3ht              # optional (default: the file's stem)
    parameters: [a, b, c]   # optional (default: every column but the target)
    space: {...}            # optional: a campaign file's ``space`` section, e.g. with a simplex group; default:
                            # numeric columns continuous within their range, text columns categorical
    top_share: 0.01         # optional: the share of the pool counted as its top set
    source: "..."           # optional: where the data comes from, and its licence

Both files come from outside, so each problem with them is one sentence (:class:`ProblemFileError`): the YAML
is read by the campaign files' safe loader (no tags, so nothing runs because the file names it), the CSV as data
only, and a space is checked as a campaign file's is. Repeated parameter rows become one candidate with their
mean value, as the built-in pools' are (:func:`benchmarks._common.dedupe`). The pool's name ends in a digest of
its content, so that BayBE's cached orders for an edited dataset are never replayed for the new one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benchmarks._common import Pool, campaign_spec, dedupe, numeric_space

#: A problem file is a few lines; its CSV is a measured pool (the selection handles pools up to 10^6 rows).
MAX_FILE_BYTES = 64 * 1024
MAX_DATA_BYTES = 200 * 1024 * 1024
#: A replay draws its first points at random and then chooses: fewer distinct rows leave nothing to compare.
MIN_ROWS = 8


class ProblemFileError(ValueError):
    """A problem file or its data that cannot be used, said in one sentence."""


class ProblemFile(BaseModel):
    """What a problem file may say (unknown fields are refused, so a misspelt one is not silently ignored)."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(min_length=1, max_length=4096)
    target: str = Field(min_length=1, max_length=256)
    goal: Literal["minimize", "maximize"]
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    parameters: list[str] | None = Field(default=None, min_length=1, max_length=1000)
    space: dict[str, Any] | None = None
    top_share: float = Field(default=0.01, gt=0.0, le=0.5)
    source: str = Field(default="", max_length=1000)


def load_problem(path: str | Path) -> Pool:
    """The pool a problem file describes; raises :class:`ProblemFileError` naming the first thing wrong."""
    path = Path(path)
    spec = _read_spec(path)
    frame = _read_data(_data_path(path, spec.data), path)
    columns = _parameter_columns(spec, frame, path)
    y = _target_values(frame, spec.target, path)
    declared = _declared_types(spec.space)
    for column in columns:
        frame[column] = _parameter_values(frame[column], column, path, declared.get(column))
    frame = frame.assign(**{spec.target: y})
    pooled = dedupe(frame, columns, spec.target)
    if len(pooled) < MIN_ROWS:
        raise ProblemFileError(f"{path}: its data has {len(pooled)} distinct parameter rows; a replay needs at least "
                               f"{MIN_ROWS}")
    values = pooled[spec.target].to_numpy(dtype=float)
    if np.ptp(values) == 0:
        raise ProblemFileError(f"{path}: every row has the same {spec.target!r}, so there is no best row to find")
    parameters = pooled[columns].reset_index(drop=True)
    space = spec.space if spec.space is not None else _inferred_space(parameters)
    name = f"{spec.name or _stem_name(path)}-{_digest(parameters, values, spec.goal)}"
    try:
        pool = Pool(name, parameters, values, spec.goal == "minimize", spec.top_share, space)
    except (ValueError, KeyError, TypeError) as exc:
        raise ProblemFileError(f"{path}: its space does not fit its data ({_first_line(exc)})") from None
    _check_campaign(pool, path)
    return pool


def _read_spec(path: Path) -> ProblemFile:
    """The problem file read as a campaign file is (a regular file, size-limited, UTF-8, safe YAML)."""
    from agent.spec import CampaignFileError
    from agent.spec.loader import read_campaign_text
    from agent.spec.safe_yaml import YamlRefused, load_yaml

    try:
        data, _ = load_yaml(read_campaign_text(path, limit=MAX_FILE_BYTES, what="problem file"))
    except (CampaignFileError, YamlRefused) as exc:
        first = exc.problems[0]
        where = f" (line {first.line})" if first.line else ""
        raise ProblemFileError(f"{path}: {first.message}{where}") from None
    if not isinstance(data, dict):
        raise ProblemFileError(f"{path}: must be a mapping with at least data, target and goal")
    try:
        return ProblemFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "<file>"
        raise ProblemFileError(f"{path}: {field}: {error['msg']}") from None


def _data_path(path: Path, data: str) -> Path:
    """The CSV a problem file names, which must lie in the file's folder or below it.

    Why: a problem file may come from someone else, and replaying it echoes parts of its CSV; confined to its
    own folder (links resolved), it cannot make the command read another of the user's files.
    """
    folder = path.parent.resolve()
    target = (folder / data).resolve()
    if Path(data).is_absolute() or not target.is_relative_to(folder):
        raise ProblemFileError(f"{path}: its data {_cell(data, shown=200)} must be a CSV in the problem file's folder or below it")
    return target


def _read_data(data: Path, path: Path) -> pd.DataFrame:
    try:
        if not data.exists():
            raise ProblemFileError(f"{path}: its data file {data} does not exist")
        if not data.is_file():  # a directory, FIFO or device: never opened, so never waited on or read forever
            raise ProblemFileError(f"{path}: its data file {data} is not a regular file")
        if data.stat().st_size > MAX_DATA_BYTES:
            raise ProblemFileError(f"{path}: its data file {data} is larger than {MAX_DATA_BYTES:,} bytes")
        frame = pd.read_csv(data, dtype=str, keep_default_na=False, skipinitialspace=True)
    except ProblemFileError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
        raise ProblemFileError(f"{path}: its data file {data} is not a readable CSV ({_first_line(exc)})") from None
    if frame.columns.duplicated().any():
        repeated = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise ProblemFileError(f"{path}: its data file repeats the column(s) {repeated}")
    return frame


def _parameter_columns(spec: ProblemFile, frame: pd.DataFrame, path: Path) -> list[str]:
    if spec.target not in frame.columns:
        raise ProblemFileError(f"{path}: the target {spec.target!r} is not a column of its data "
                               f"({_names(frame.columns)})")
    columns = spec.parameters if spec.parameters is not None else [c for c in frame.columns if c != spec.target]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ProblemFileError(f"{path}: parameter(s) {missing} are not columns of its data ({_names(frame.columns)})")
    if spec.target in columns:
        raise ProblemFileError(f"{path}: the target {spec.target!r} cannot also be a parameter")
    if len(set(columns)) != len(columns):
        raise ProblemFileError(f"{path}: parameters names a column more than once")
    if not columns:
        raise ProblemFileError(f"{path}: its data has no column besides the target to choose by")
    return list(columns)


def _target_values(frame: pd.DataFrame, target: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(frame[target].str.strip(), errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        line = int(bad[0]) + 2  # the header is line 1
        raise ProblemFileError(f"{path}: line {line} of its data has {_cell(frame[target].iloc[bad[0]])} for the target "
                               f"{target!r}, not a finite number (a replay needs every row measured)")
    return values


def _declared_types(space: dict[str, Any] | None) -> dict[str, str]:
    """Parameter name -> type, as a space given in the file declares them (none when the space is inferred)."""
    entries = (space or {}).get("parameters")
    if not isinstance(entries, list):
        return {}
    return {str(e["name"]): str(e.get("type")) for e in entries if isinstance(e, dict) and "name" in e}


def _parameter_values(column: pd.Series, name: str, path: Path, declared: str | None) -> pd.Series:
    """Text for a categorical parameter (declared so, or not all numbers when the space is inferred), else
    numbers; never an empty cell or a number that is not finite."""
    text = column.str.strip()
    empty = np.flatnonzero((text == "").to_numpy())
    if len(empty):
        raise ProblemFileError(f"{path}: line {int(empty[0]) + 2} of its data has no value for the parameter {name!r}")
    if declared == "categorical":
        return text
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(numbers))
    if len(bad) == 0:
        return pd.Series(numbers, index=column.index)
    if declared is None and np.isnan(numbers).all():
        return text
    hint = "" if declared is not None else " (other rows have numbers; a space that declares it categorical makes it text)"
    raise ProblemFileError(f"{path}: line {int(bad[0]) + 2} of its data has {_cell(text.iloc[bad[0]])} for the parameter "
                           f"{name!r}, not a finite number{hint}")


def _inferred_space(parameters: pd.DataFrame) -> dict[str, Any]:
    """Numeric columns continuous within their range (as the built-in measured pools'), text columns categorical."""
    entries = []
    for column in parameters.columns:
        if parameters[column].dtype.kind == "f":
            entries.extend(numeric_space(parameters[[column]])["parameters"])
        else:
            entries.append({"name": column, "type": "categorical",
                            "options": sorted(str(v) for v in parameters[column].unique())})
    return {"type": "parametric", "parameters": entries}


def _check_campaign(pool: Pool, path: Path) -> None:
    """The campaign a replay runs must be valid: a space from the file is checked as a campaign file's is."""
    from agent.spec import CampaignFileError, parse_campaign

    spec = campaign_spec(pool, seed=0, q=1, n_init=4, budget=max(len(pool.y), 5))
    try:
        parse_campaign(yaml.safe_dump(spec, sort_keys=False), source=str(path))
    except CampaignFileError as exc:
        raise ProblemFileError(f"{path}: its space is not a valid campaign space ({exc.problems[0]})") from None


def _digest(parameters: pd.DataFrame, values: np.ndarray, goal: str) -> str:
    content = hashlib.sha256(goal.encode())
    content.update(parameters.to_csv(index=False).encode())
    content.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return content.hexdigest()[:8]


def _stem_name(path: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "_.-" else "_" for c in path.stem).strip("._-")
    return stem[:64] or "problem"


def _cell(value: str, shown: int = 40) -> str:
    """A cell of the CSV as an error shows it: quoted, and cut short, so that one huge cell is not the message."""
    return repr(value) if len(value) <= shown else repr(value[:shown]) + f" (cut at {shown} of {len(value):,} characters)"


def _names(columns: Any) -> str:
    names = [str(c) for c in columns]
    return ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


