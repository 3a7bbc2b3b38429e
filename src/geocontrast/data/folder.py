"""A folder of photos (from a phone or a camera) as a photo source: coordinates and dates from their EXIF.

Every image file below ``path`` (``.jpg``, ``.jpeg``, ``.png``, ``.tif``, ``.tiff``, ``.webp``; hidden files and
folders skipped) is one photo. Its coordinates come from the EXIF GPS tags (``GPSLatitude`` with
``GPSLatitudeRef`` N or S, ``GPSLongitude`` with ``GPSLongitudeRef`` E or W, as degrees, minutes and seconds), its
uncertainty from ``GPSHPositioningError`` when recorded, its date from ``DateTimeOriginal`` (else ``DateTime``). A
photo without GPS is kept without coordinates; the log says how many had each. The species is the name of the
folder holding the photo (``<species>/<photo>``, ``_`` read as a space; its genus the first word) with
``species_from_folders``; a ``sidecar`` CSV (a ``path`` column relative to the folder and any manifest columns)
gives any value and wins over EXIF and folder names where its cells are not blank. Its bad cells are named with
their row and column, as the csv source names them.

The photos are placed in the image folder under their path relative to ``path`` (hard-linked, symlinked or copied,
never re-encoded). ``image_id`` is that path, each photo its own observation unless the sidecar says otherwise.

CLI (the workflow's ``folder`` rule)::

    python -m geocontrast.data.folder --config-json '{"path": "my_photos", ...}' \\
        --source results/x/source/photos.parquet --image-root results/x/images
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from geocontrast.cli import exit_without_teardown
from geocontrast.data.download import SourceError, contained, place_file, run_source_cli
from geocontrast.data.manifest import MANIFEST_COLUMNS, STRING_DTYPE
from geocontrast.data.table_checks import TableProblems, coordinate_pair, date_column, number_column, repeated

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")
GPS_IFD = 0x8825
EXIF_IFD = 0x8769
# EXIF tag numbers (the EXIF 2.3 standard).
GPS_LATITUDE_REF, GPS_LATITUDE, GPS_LONGITUDE_REF, GPS_LONGITUDE, GPS_H_POSITIONING_ERROR = 1, 2, 3, 4, 31
DATE_TIME_ORIGINAL, DATE_TIME = 36867, 306


class FolderSourceError(SourceError):
    """The folder or its sidecar cannot be used; the message names what and where."""


def folder_photos(config: dict, image_root: Path, progress: bool = True) -> pd.DataFrame:
    """List the photos under ``config["path"]``, read their EXIF, place them under ``image_root``, return the table.

    Args:
        config: the ``dataset.folder`` section (config/README.md): ``path``, ``sidecar``, ``species_from_folders``,
            ``mode``, ``license``, ``attribution``.
        image_root: the image folder; the returned ``path`` column is relative to it.
        progress: a tqdm bar over photos on stderr.
    """
    if not config["path"]:
        raise FolderSourceError("dataset.folder.path is not set: name the folder of photos")
    folder = Path(config["path"])
    if not folder.is_dir():
        raise FolderSourceError(f"{folder}: no such folder")
    paths = photo_paths(folder)
    if not paths:
        raise FolderSourceError(f"{folder}: no photos ({', '.join(PHOTO_SUFFIXES)}) below it")
    exif = pd.DataFrame(
        [photo_exif(folder / path) for path in tqdm(paths, unit="img", desc="exif", disable=not progress)]
    )
    photos = pd.DataFrame({column: pd.Series(np.nan, index=exif.index, dtype=object) for column in MANIFEST_COLUMNS})
    photos["path"] = photos["image_id"] = photos["observation_id"] = paths
    for column in ("lat", "lon", "coord_uncertainty_m", "observed_on"):
        photos[column] = exif[column]
    if config["species_from_folders"]:
        parent = pd.Series([Path(p).parent.name.replace("_", " ").strip() for p in paths])
        photos["species"] = parent.replace("", None)
        photos["genus"] = [name.split()[0] if isinstance(name, str) else None for name in photos["species"]]
    if config["sidecar"]:
        photos = with_sidecar(photos, Path(config["sidecar"]), folder)
    for column in ("license", "attribution"):
        if config[column]:
            photos[column] = photos[column].fillna(config[column])
    photos["source"] = "folder"
    log.info(
        "%s: %d photos: %d with GPS coordinates, %d with a date, %d with a species",
        folder,
        len(photos),
        int(photos["lat"].notna().sum()),
        int(photos["observed_on"].notna().sum()),
        int(photos["species"].notna().sum()),
    )
    for path in tqdm(paths, unit="img", desc="place images", disable=not progress, file=sys.stderr):
        place_file(folder / path, contained(image_root, path), config["mode"])
    return photos


def photo_paths(folder: Path) -> list[str]:
    """The photos below ``folder`` as sorted POSIX paths relative to it (hidden files and folders skipped)."""
    found = []
    for file in folder.rglob("*"):
        relative = file.relative_to(folder)
        if (
            file.suffix.lower() in PHOTO_SUFFIXES
            and file.is_file()
            and not any(p.startswith(".") for p in relative.parts)
        ):
            found.append(relative.as_posix())
    return sorted(found)


def photo_exif(path: Path) -> dict:
    """lat, lon (decimal degrees, south and west negative), coord_uncertainty_m and observed_on of one photo;
    NaN / None where its EXIF lacks them or cannot be read."""
    found = {"lat": np.nan, "lon": np.nan, "coord_uncertainty_m": np.nan, "observed_on": None}
    try:
        with Image.open(path) as image:
            exif = image.getexif()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        log.warning("%s: EXIF not read (%s)", path, error)
        return found
    gps = exif.get_ifd(GPS_IFD)
    lat = _degrees(gps.get(GPS_LATITUDE), gps.get(GPS_LATITUDE_REF), "N", "S")
    lon = _degrees(gps.get(GPS_LONGITUDE), gps.get(GPS_LONGITUDE_REF), "E", "W")
    if lat is not None and lon is not None and abs(lat) <= 90 and abs(lon) <= 180:
        found["lat"], found["lon"] = lat, lon
        error_m = gps.get(GPS_H_POSITIONING_ERROR)
        if error_m is not None and float(error_m) >= 0:
            found["coord_uncertainty_m"] = float(error_m)
    taken = exif.get_ifd(EXIF_IFD).get(DATE_TIME_ORIGINAL) or exif.get(DATE_TIME)
    found["observed_on"] = _exif_date(taken)
    return found


def _degrees(value, reference, positive: str, negative: str) -> float | None:
    """Degrees, minutes and seconds (three rationals) and a hemisphere reference as signed decimal degrees."""
    if value is None or reference is None:
        return None
    try:
        degrees, minutes, seconds = (float(part) for part in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    reference = reference.decode() if isinstance(reference, bytes) else str(reference)
    sign = {positive: 1.0, negative: -1.0}.get(reference.strip().upper()[:1])
    if sign is None or not np.isfinite([degrees, minutes, seconds]).all():
        return None
    return sign * (degrees + minutes / 60.0 + seconds / 3600.0)


def _exif_date(text) -> str | None:
    """``2023:05:01 14:03:22`` as ``2023-05-01``; None when absent or unreadable (all zeros, blanks)."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text.strip()[:10], "%Y:%m:%d").date().isoformat()
    except ValueError:
        return None


def with_sidecar(photos: pd.DataFrame, sidecar: Path, folder: Path) -> pd.DataFrame:
    """``photos`` with the sidecar's non-blank cells over their values, matched on ``path``; every bad cell named."""
    if not sidecar.is_file():
        raise FolderSourceError(f"{sidecar}: no such file (dataset.folder.sidecar)")
    table = pd.read_csv(sidecar, dtype=str, keep_default_na=False).apply(lambda column: column.str.strip())
    if "path" not in table.columns:
        raise FolderSourceError(f"{sidecar}: no 'path' column (found {', '.join(map(repr, table.columns))})")
    problems = TableProblems(str(sidecar))
    known = set(photos["path"])
    for position, path in enumerate(table["path"]):
        if path not in known:
            problems.add(position, "path", f"{path!r} is no photo below {folder}" if path else "empty")
    repeated(table, "path", problems)
    values = {}
    if {"lat", "lon"} & set(table.columns):
        if not {"lat", "lon"} <= set(table.columns):
            raise FolderSourceError(f"{sidecar}: give both 'lat' and 'lon' columns, or neither")
        values["lat"], values["lon"] = coordinate_pair(table, "lat", "lon", problems)
    if "coord_uncertainty_m" in table.columns:
        values["coord_uncertainty_m"] = number_column(table, "coord_uncertainty_m", problems, 0)
    if "observed_on" in table.columns:
        values["observed_on"] = date_column(table, "observed_on", problems).dt.strftime("%Y-%m-%d")
    problems.raise_if_any(FolderSourceError)
    ignored = [c for c in table.columns if c not in MANIFEST_COLUMNS]
    if ignored:
        log.info("%s: ignoring columns %s", sidecar, ", ".join(ignored))
    row_of = pd.Series(np.arange(len(photos)), index=photos["path"])
    rows = row_of[table["path"]].to_numpy()
    photos = photos.copy()
    for column in (c for c in table.columns if c in MANIFEST_COLUMNS and c != "path"):
        given = values.get(column, table[column].astype(STRING_DTYPE).mask(table[column] == ""))
        given = pd.Series(given.to_numpy(), index=rows)
        current = photos[column].astype(object)
        current.iloc[given.index[given.notna()]] = given[given.notna()].to_numpy()
        photos[column] = current
    return photos


def main(argv: list[str] | None = None) -> int:
    return run_source_cli(
        folder_photos,
        argv,
        prog="python -m geocontrast.data.folder",
        description=__doc__.split("\n")[0],
        uses_cache=False,
    )


if __name__ == "__main__":
    exit_without_teardown(main())
