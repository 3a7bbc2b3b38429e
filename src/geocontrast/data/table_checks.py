"""Checking the rows of a table a user brings (an export, an archive's data file, a sidecar CSV), naming each bad
cell as a spreadsheet shows it: the file, the row (the header being row 1) and the column.

Example::

    problems = TableProblems("observations.csv")
    lat, lon = coordinate_pair(table, "latitude", "longitude", problems)
    problems.raise_if_any(ExportError)  # one error listing every bad cell
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MAX_LISTED = 20
MISSING_NUMBER_TEXTS = ("nan", "-nan", "+nan")


class TableProblems:
    """The bad cells of one file; ``header_rows`` lines come before the first data row."""

    def __init__(self, file: str, header_rows: int = 1):
        self.file, self.header_rows = file, header_rows
        self.lines: list[str] = []

    def row(self, position: int) -> int:
        """The spreadsheet row of data row ``position`` (0-based)."""
        return position + self.header_rows + 1

    def add(self, position: int, column: str, text: str) -> None:
        self.lines.append(f"row {self.row(position)}, column '{column}': {text}")

    def message(self) -> str:
        listed = "\n".join(self.lines[:MAX_LISTED])
        more = f"\n... and {len(self.lines) - MAX_LISTED} more" if len(self.lines) > MAX_LISTED else ""
        return f"{self.file}: {len(self.lines)} problem(s):\n{listed}{more}"

    def raise_if_any(self, error: type[Exception]) -> None:
        if self.lines:
            raise error(self.message())


def blank(values: pd.Series) -> pd.Series:
    """Empty cells and the texts that mean a missing number (nan)."""
    return (values == "") | values.str.lower().isin(MISSING_NUMBER_TEXTS)


def number_column(
    table: pd.DataFrame, column: str, problems: TableProblems, low: float | None = None, high: float | None = None
) -> pd.Series:
    """``column`` as float64, NaN where blank; a cell that is not a number or lies outside [low, high] is named."""
    empty = blank(table[column])
    values = pd.to_numeric(table[column].mask(empty), errors="coerce").astype("float64")
    for position in np.flatnonzero((~empty & values.isna()).to_numpy()):
        problems.add(position, column, f"{table[column].iat[position]!r} is not a number")
    outside = values.notna() & ~values.between(-np.inf if low is None else low, np.inf if high is None else high)
    for position in np.flatnonzero(outside.to_numpy()):
        problems.add(position, column, f"{values.iat[position]:g} is outside [{_bound(low)}, {_bound(high)}]")
    return values.mask(outside)


def coordinate_pair(
    table: pd.DataFrame, lat_column: str, lon_column: str, problems: TableProblems
) -> tuple[pd.Series, pd.Series]:
    """Latitude and longitude (NaN where both are blank); out of range, not a number, or only one given: named."""
    lat = number_column(table, lat_column, problems, -90, 90)
    lon = number_column(table, lon_column, problems, -180, 180)
    lat_blank, lon_blank = blank(table[lat_column]), blank(table[lon_column])
    for position in np.flatnonzero((lat_blank != lon_blank).to_numpy()):
        missing, given = (lat_column, lon_column) if lat_blank.iat[position] else (lon_column, lat_column)
        problems.add(position, missing, f"blank while {given} is given; give both or neither")
    half = lat.isna() != lon.isna()
    return lat.mask(half), lon.mask(half)


def date_column(table: pd.DataFrame, column: str, problems: TableProblems) -> pd.Series:
    """The calendar date of each cell (ISO dates, with or without a time; an interval ``a/b`` gives ``a``)."""
    text = table[column].str.split("/").str[0].str.slice(0, 10)
    dates = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
    for position in np.flatnonzero(((table[column] != "") & dates.isna()).to_numpy()):
        problems.add(position, column, f"{table[column].iat[position]!r} is not a date (YYYY-MM-DD)")
    return dates


def repeated(table: pd.DataFrame, column: str, problems: TableProblems) -> None:
    """Names each non-blank value that an earlier row already holds."""
    first: dict[str, int] = {}
    for position, value in enumerate(table[column]):
        if value in first:
            problems.add(position, column, f"{value!r} is already in row {problems.row(first[value])}")
        elif value:
            first[value] = position


def _bound(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
