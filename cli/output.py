"""CSV and JSON written row by row, so a command's memory does not grow with the rows it prints.

``DataFrame.to_csv``/``to_json`` need the whole frame first: with 10^5 history rows that was most of a
command's 600 MB and 20 s. These writers take any iterable of row tuples (a streaming query's rows) and
format each value as the frame writers did: empty for missing values in CSV; in JSON ISO 8601 timestamps, and
NaN and infinities as ``null`` (JSON has no spelling for them).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, TextIO


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):  # a numpy scalar from a data frame
        return _json_value(value.item())
    return value


def write_csv(out: TextIO, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write a header and ``rows`` as CSV; returns how many rows were written."""
    writer = csv.writer(out, lineterminator="\n")  # writes None as an empty field, as pandas did
    writer.writerow(columns)
    n = 0
    for row in rows:
        writer.writerow(row)
        n += 1
    return n


#: Lines gathered before one write to the output.
_LINES_PER_WRITE = 1000


def write_csv_lines(out: TextIO, columns: Sequence[str], lines: Iterable[str]) -> int:
    """Write a header and ready CSV ``lines`` (each ending in a newline); returns how many lines were written.

    For rows the database already rendered as CSV text (``agent.store.history_csv``): no per-value work here.
    """
    csv.writer(out, lineterminator="\n").writerow(columns)
    n = 0
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= _LINES_PER_WRITE:
            out.write("".join(batch))
            n += len(batch)
            batch.clear()
    out.write("".join(batch))
    return n + len(batch)


def write_json(out: TextIO, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write ``rows`` as a JSON array of objects keyed by ``columns``; returns how many rows were written."""
    n = 0
    out.write("[")
    for row in rows:
        record = {c: _json_value(v) for c, v in zip(columns, row, strict=True)}
        out.write(("\n  " if n == 0 else ",\n  ") + json.dumps(record, ensure_ascii=False, allow_nan=False))
        n += 1
    out.write("\n]\n" if n else "]\n")
    return n
