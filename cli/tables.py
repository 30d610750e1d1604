"""Data frames as rich tables that stay readable in the terminal they are printed to.

rich folds every column of a table wider than the console, so fourteen columns in an 80-column
terminal (or a pipe, which rich treats as 80 wide) came out as one- or two-character slivers. A
:class:`TableLayout` says which columns matter most, which free-text ones may fold and how far, and
shorter headers; :func:`print_frame` keeps the columns that fit and says which it left out. CSV and
JSON output never go through here: they always carry every column under its full name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # pandas is imported by whoever builds the frame; `history --format csv` never does
    import pandas as pd


@dataclass(frozen=True)
class TableLayout:
    """How to narrow a table: ``priority`` lists every column to show, most important first."""

    order: list[str]  # the columns in the order they appear
    priority: list[str]  # the same columns, kept in this order while they fit
    labels: dict[str, str] = field(default_factory=dict)  # shorter headers
    folding: dict[str, int] = field(default_factory=dict)  # free-text column -> narrowest width (padding included)
    always: tuple[str, ...] = ()  # kept even when nothing fits beside them
    drop_when_empty: tuple[str, ...] = ()  # left out, without mention, when every cell is empty


def cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if hasattr(value, "strftime"):  # datetimes and pandas timestamps
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def frame_table(frame: pd.DataFrame, title: str, columns: list[str] | None = None,
                labels: dict[str, str] | None = None) -> Table:
    """``frame``'s ``columns`` as a rich table; ``labels`` gives shorter headers."""
    table = Table(title=title, title_justify="left")
    columns = columns or list(frame.columns)
    for c in columns:
        table.add_column((labels or {}).get(c, c), overflow="fold")
    for row in frame[columns].itertuples(index=False):
        table.add_row(*(cell(v) for v in row))
    return table


def _is_empty(frame: pd.DataFrame, column: str) -> bool:
    return not frame[column].map(cell).any()


def _natural_width(frame: pd.DataFrame, column: str, label: str) -> int:
    """Characters a column needs unfolded: its header or its longest cell, plus rich's padding and border."""
    return max(len(label), *(len(cell(v)) for v in frame[column])) + 3 if len(frame) else len(label) + 3


def columns_that_fit(frame: pd.DataFrame, width: int, layout: TableLayout) -> list[str]:
    """``layout``'s columns, in table order, taken by priority while they fit ``width``."""
    keep: list[str] = []
    used = 1  # the table's left border
    for column in layout.priority:
        if column in layout.drop_when_empty and _is_empty(frame, column):
            continue
        need = min(_natural_width(frame, column, layout.labels.get(column, column)),
                   layout.folding.get(column, math.inf))
        if used + need > width and column not in layout.always:
            continue
        keep.append(column)
        used += int(need)
    return [c for c in layout.order if c in keep]


def print_frame(console: Console, frame: pd.DataFrame, title: str, layout: TableLayout) -> None:
    """Print ``frame`` narrowed to ``console``'s width, then name the columns left out and how to see them."""
    shown = columns_that_fit(frame, console.width, layout)
    console.print(frame_table(frame, title, shown, layout.labels))
    hidden = [c for c in layout.order
              if c not in shown and not (c in layout.drop_when_empty and _is_empty(frame, c))]
    if hidden:
        console.print(f"({console.width} columns wide: left out {', '.join(hidden)}; "
                      "a wider terminal or --format csv shows every column)", highlight=False)
