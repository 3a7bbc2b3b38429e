"""A user's own photos, listed in a CSV file, as a photo source.

Required columns: ``path`` (absolute, or relative to ``image_dir``, which defaults to the CSV's folder), ``lat`` and
``lon`` (decimal degrees, WGS84; both blank, or both ``NaN``, for a photo without coordinates: it is kept and the
manifest flags it ``has_coords`` false). Optional: any other manifest column
(docs/architecture.md) under its manifest name: ``image_id``, ``coord_uncertainty_m``, ``observed_on``, ``observer_id``,
``observation_id``, ``taxon_id``, ``species`` … ``kingdom``, ``license``, ``attribution``. Other columns are ignored
(and named in the log). Blank cells are missing values.

Every problem is reported at once, naming the row as a spreadsheet numbers it (the header is row 1) and the column:
missing required columns, non-numeric, infinite or out-of-range coordinates (with a hint when lat and lon look
swapped), only one of lat/lon, empty paths, missing files, files listed twice and repeated image ids.

The images are hard-linked (a copy across filesystems), symlinked or copied into the image folder, never
re-encoded, under their path relative to the deepest folder holding them all. Defaults: ``image_id`` is that
relative path, ``observation_id`` the image id (each photo its own observation), ``license`` and ``attribution``
the config's values.

CLI (the workflow's ``csv`` rule)::

    python -m geocontrast.data.csv_source --config-json '{"path": "my_photos.csv", ...}' \\
        --source results/x/source/photos.parquet --image-root results/x/images
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from geocontrast.cli import exit_without_teardown
from geocontrast.data.download import SourceError, place_file, run_source_cli
from geocontrast.data.manifest import MANIFEST_COLUMNS, STRING_DTYPE

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("path", "lat", "lon")
# Cells that mean "no coordinate", like a blank one (what pandas and spreadsheets write for a missing number).
MISSING_NUMBER_TEXTS = ("nan", "-nan", "+nan")
MAX_LISTED = 20
HEADER_ROWS = 1  # spreadsheet row of the first data row = position + HEADER_ROWS + 1


class CsvSourceError(SourceError):
    """The CSV cannot be used; the message lists every problem with its row and column."""


def csv_photos(config: dict, image_root: Path, progress: bool = True) -> pd.DataFrame:
    """Read and check the CSV named by ``config["path"]``, place its images under ``image_root``, return the table.

    Args:
        config: the ``dataset.csv`` section: ``path``, ``image_dir`` (null: the CSV's folder), ``mode``
            (``hardlink``, ``symlink`` or ``copy``), ``license`` and ``attribution`` (defaults for blank cells).
        image_root: the image folder; the returned ``path`` column is relative to it.
        progress: a tqdm bar over images on stderr.
    """
    if not config["path"]:
        raise CsvSourceError("dataset.csv.path is not set: name the CSV file listing your photos")
    csv_path = Path(config["path"])
    if not csv_path.is_file():
        raise CsvSourceError(f"{csv_path}: no such file")
    # Everything as text, so the errors quote what the user wrote; blank cells stay "" until checked.
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False).apply(lambda column: column.str.strip())
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise CsvSourceError(
            f"{csv_path}: missing required column(s) {', '.join(map(repr, missing))} "
            f"(found {', '.join(map(repr, table.columns))})"
        )
    if table.empty:
        raise CsvSourceError(f"{csv_path}: no rows after the header")
    ignored = [c for c in table.columns if c not in MANIFEST_COLUMNS]
    if ignored:
        log.info("%s: ignoring columns %s", csv_path, ", ".join(ignored))

    image_dir = Path(config["image_dir"]) if config["image_dir"] else csv_path.parent
    problems: list[str] = []
    lat, lon = coordinates(table, problems)
    files = image_files(table["path"], image_dir, problems)
    if "image_id" in table.columns:
        repeated_ids(table["image_id"], problems)
    if problems:
        listed = "\n".join(problems[:MAX_LISTED])
        more = f"\n... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise CsvSourceError(f"{csv_path}: {len(problems)} problem(s):\n{listed}{more}")

    common = os.path.commonpath([os.path.dirname(f) for f in files])
    paths = pd.Series([Path(os.path.relpath(f, common)).as_posix() for f in files])
    photos = pd.DataFrame({c: table.get(c, "") for c in MANIFEST_COLUMNS}, index=table.index)
    photos = photos.astype(STRING_DTYPE).mask(photos == "")
    photos["path"] = paths
    photos["lat"], photos["lon"] = lat, lon
    photos["image_id"] = photos["image_id"].fillna(paths)
    photos["observation_id"] = photos["observation_id"].fillna(photos["image_id"])
    for column in ("license", "attribution"):
        if config[column]:
            photos[column] = photos[column].fillna(config[column])
    photos["source"] = "csv"

    for file, path in tqdm(
        zip(files, paths), total=len(files), unit="img", desc="place images", disable=not progress, file=sys.stderr
    ):
        place_file(Path(file), Path(image_root) / path, config["mode"])
    return photos


def coordinates(table: pd.DataFrame, problems: list[str]) -> tuple[pd.Series, pd.Series]:
    """lat and lon as float64 (NaN where both are blank or NaN); appends a line per bad cell to ``problems``."""
    values, blank = {}, {}
    for column in ("lat", "lon"):
        blank[column] = (table[column] == "") | table[column].str.lower().isin(MISSING_NUMBER_TEXTS)
        values[column] = pd.to_numeric(table[column].mask(blank[column]), errors="coerce").astype("float64")
        not_number = ~blank[column] & values[column].isna()
        problems += [
            f"{_cell(row, column)}: {table.at[row, column]!r} is not a number" for row in table.index[not_number]
        ]
    lat, lon = values["lat"], values["lon"]
    for row in table.index[blank["lat"] != blank["lon"]]:
        missing, given = ("lat", "lon") if blank["lat"][row] else ("lon", "lat")
        text = table.at[row, missing]
        problems.append(
            f"{_cell(row, missing)}: {repr(text) if text else 'blank'} while {given} is given; give both or neither"
        )
    for row in table.index[lat.abs() > 90]:
        swapped = abs(lat[row]) <= 180 and abs(lon[row]) <= 90
        hint = f"; lat and lon look swapped (lon is {lon[row]:g})" if swapped else ""
        problems.append(f"{_cell(row, 'lat')}: {lat[row]:g} is outside [-90, 90]{hint}")
    problems += [f"{_cell(row, 'lon')}: {lon[row]:g} is outside [-180, 180]" for row in table.index[lon.abs() > 180]]
    return lat, lon


def image_files(paths: pd.Series, image_dir: Path, problems: list[str]) -> list[str]:
    """Absolute, normalised file names of ``paths`` (relative ones under ``image_dir``); problems appended."""
    files = [os.path.abspath(Path(image_dir) / path) if path else "" for path in paths]
    first_row: dict[str, int] = {}
    for row, (path, file) in enumerate(zip(paths, files)):
        if not path:
            problems.append(f"{_cell(row, 'path')}: empty")
        elif not os.path.isfile(file):
            problems.append(f"{_cell(row, 'path')}: no file at {file}")
        elif file in first_row:
            problems.append(f"{_cell(row, 'path')}: {file} is already listed in row {_row(first_row[file])}")
        else:
            first_row[file] = row
    return files


def repeated_ids(ids: pd.Series, problems: list[str]) -> None:
    """Appends a line per non-blank id that an earlier row already holds to ``problems``."""
    first_row: dict[str, int] = {}
    for row, image_id in enumerate(ids):
        if image_id in first_row:
            problems.append(
                f"{_cell(row, 'image_id')}: {image_id!r} is already the id of row {_row(first_row[image_id])}"
            )
        elif image_id:
            first_row[image_id] = row


def _row(position: int) -> int:
    return position + HEADER_ROWS + 1


def _cell(position: int, column: str) -> str:
    return f"row {_row(position)}, column '{column}'"


def main(argv: list[str] | None = None) -> int:
    return run_source_cli(
        csv_photos,
        argv,
        prog="python -m geocontrast.data.csv_source",
        description=__doc__.split("\n")[0],
        uses_cache=False,
    )


if __name__ == "__main__":
    exit_without_teardown(main())
