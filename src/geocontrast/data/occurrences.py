"""Occurrence tables: presence records without photos (GBIF / iNaturalist downloads), the geographic prior's
training data beyond the labelled photos.

The table has the Darwin Core columns ``species``, ``decimalLatitude``, ``decimalLongitude`` and ``eventDate``
(other columns are ignored), as CSV or Parquet. :func:`read_occurrences` returns one row per usable record with
``species``, ``lat``, ``lon`` and ``day_of_year`` (float, NaN when the date is empty or coarser than a day).
Records without a species or without coordinates are dropped and counted; a value that cannot be read (a
coordinate that is not a number or lies off the globe, a date that is not ISO 8601) is an error that names its
row (1-based, the first record is row 1) and column.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

SPECIES, LATITUDE, LONGITUDE, EVENT_DATE = "species", "decimalLatitude", "decimalLongitude", "eventDate"
COLUMNS = (SPECIES, LATITUDE, LONGITUDE, EVENT_DATE)
_COARSER_THAN_A_DAY = re.compile(r"^\d{4}(-\d{2})?$")  # "2019" or "2019-05": no day of year


def read_occurrences(path: Path) -> tuple[pd.DataFrame, dict]:
    """(records, counts): the usable records of the table at ``path`` (.csv or .parquet) and how many were read,
    kept and dropped (``no_species``, ``no_coordinates``). Raises ValueError naming the file, row and column of
    the first unreadable value, or the missing columns."""
    path = Path(path)
    if path.suffix == ".parquet":
        table = pd.read_parquet(path)
    elif path.suffix == ".csv":
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    else:
        raise ValueError(f"{path}: an occurrence table is .csv or .parquet")
    try:
        return occurrence_records(table)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def occurrence_records(table: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """:func:`read_occurrences` on a table already in memory."""
    missing = [column for column in COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"missing Darwin Core column(s) {missing}; found {list(table.columns)}")
    species = table[SPECIES].astype("string").str.strip().replace("", pd.NA)
    lat = _coordinate(table[LATITUDE], LATITUDE, 90.0)
    lon = _coordinate(table[LONGITUDE], LONGITUDE, 180.0)
    day = _day_of_year(table[EVENT_DATE])
    has_species = species.notna().to_numpy()
    has_coordinates = np.isfinite(lat) & np.isfinite(lon)
    keep = has_species & has_coordinates
    records = pd.DataFrame(
        {"species": species[keep].astype(str).to_numpy(), "lat": lat[keep], "lon": lon[keep], "day_of_year": day[keep]}
    )
    counts = {
        "read": len(table),
        "kept": int(keep.sum()),
        "no_species": int((~has_species).sum()),
        "no_coordinates": int((has_species & ~has_coordinates).sum()),
    }
    return records, counts


def _blank(values: pd.Series) -> np.ndarray:
    return (values.isna() | (values.astype("string").str.strip() == "")).to_numpy(bool)


def _coordinate(values: pd.Series, column: str, limit: float) -> np.ndarray:
    """Degrees as float64 (NaN when blank); raises on text or a value beyond ±``limit``."""
    blank = _blank(values)
    numbers = pd.to_numeric(values.where(~blank), errors="coerce").to_numpy(np.float64)
    bad = ~blank & ~(np.abs(numbers) <= limit)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"row {row + 1}, column {column}: {values.iloc[row]!r} is not a number within ±{limit:g} degrees"
            f" ({int(bad.sum())} such row(s))"
        )
    return numbers


def _day_of_year(values: pd.Series) -> np.ndarray:
    """Day of year (1-366) of each ISO 8601 date (an interval "start/end" gives its start's day); NaN when blank
    or coarser than a day; raises on anything else."""
    text = values.astype("string").str.strip().fillna("")
    start = text.str.split("/", n=1).str[0]
    blank = (start == "").to_numpy(bool) | start.str.fullmatch(_COARSER_THAN_A_DAY.pattern).fillna(False).to_numpy(bool)
    dates = pd.to_datetime(start.where(~blank), format="ISO8601", errors="coerce", utc=True)
    bad = ~blank & dates.isna().to_numpy(bool)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"row {row + 1}, column {EVENT_DATE}: {values.iloc[row]!r} is not an ISO 8601 date"
            f" ({int(bad.sum())} such row(s))"
        )
    return dates.dt.day_of_year.to_numpy(np.float64, na_value=np.nan)
