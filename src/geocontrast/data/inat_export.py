"""An iNaturalist export (the site's CSV export tool, or a project's CSV; also zipped) as a photo source.

Columns read (the export's own names): ``id`` (observation), ``image_url``, ``latitude``, ``longitude`` (required);
``observed_on``, ``user_id``, ``user_login``, ``user_name``, ``quality_grade``, ``license``,
``positional_accuracy``, ``public_positional_accuracy``, ``coordinates_obscured``, ``geoprivacy``,
``taxon_geoprivacy``, ``taxon_id``, ``scientific_name`` and ``taxon_<rank>_name`` for species … kingdom, when the
export has them. Rows are kept when their ``quality_grade`` is ``config["quality_grade"]`` (null: any), they have an
``image_url`` and their licence is one of ``photo_licenses``; each kept row's photo is fetched (in ``photo_size``)
through :func:`~geocontrast.data.inat_client.fetch_listed_photos`, within a per-minute rate and a daily media
budget, into ``cache_dir/photos/<size>/`` (a rerun downloads nothing twice), and placed in the image folder.

Locations as the API source has them: the public ``latitude``/``longitude`` (an obscured observation's public
point, with an uncertainty of at least 28 km; a private one has none and is kept without coordinates);
``coord_uncertainty_m`` is the public positional accuracy. The export's ``license`` is the observation's, which
iNaturalist gives its photos unless the observer chose otherwise: it is taken as the photo's. Every bad cell
(an id that is not a number or repeats, a coordinate that is not a number or out of range, one of the pair alone,
an unreadable date or accuracy, a URL that is not http(s)) is named with its file, row and column, all at once.

One row per observation (the export lists one photo each): ``image_id`` the photo id in the URL, ``path``
``<photo id>.<ext>``, ``observation_id`` the export's ``id``, ``observer_id`` the ``user_id``. Extra columns after
the manifest's: ``obscured``, ``geoprivacy``, ``positional_accuracy_m``, ``photo_url``, ``observer_login``,
``quality_grade``.

CLI (the workflow's ``inat_export`` rule)::

    python -m geocontrast.data.inat_export --config-json '{"path": "observations-123.csv.zip", ...}' \\
        --source results/x/source/photos.parquet --image-root results/x/images --cache-dir downloads/inat_export
"""

from __future__ import annotations

import io
import logging
import re
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import requests

from geocontrast.cli import exit_without_teardown
from geocontrast.data.download import SourceError, image_suffix, run_source_cli
from geocontrast.data.inat_api import OBSCURED_UNCERTAINTY_M
from geocontrast.data.inat_client import fetch_listed_photos
from geocontrast.data.manifest import TAXONOMIC_RANKS
from geocontrast.data.table_checks import (
    TableProblems,
    coordinate_pair,
    date_column,
    number_column,
    repeated,
)

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("id", "image_url", "latitude", "longitude")
_PHOTO_ID_IN_URL = re.compile(r"/photos/(\d+)/")
_PHOTO_SIZE_IN_URL = re.compile(r"/(?:square|thumb|small|medium|large|original)(\.\w+)(?=$|\?)")
TRUE_TEXTS = ("true", "t", "1", "yes")


class ExportError(SourceError):
    """The export cannot be used; the message names the file and every bad cell."""


def inat_export_photos(
    config: dict,
    image_root: Path,
    cache_dir: Path,
    *,
    session: requests.Session | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.time,
    progress: bool = True,
) -> pd.DataFrame:
    """Read the export named by ``config["path"]``, fetch the kept rows' photos under ``image_root``, return the
    table (manifest columns, then the extra ones).

    Args:
        config: the ``dataset.inat_export`` section (config/README.md): ``path``, ``quality_grade``,
            ``photo_licenses``, ``photo_size``, ``photo_requests_per_minute``, ``max_media_gb_per_day``,
            ``max_photo_mb``.
        image_root: the image folder; the returned ``path`` column is relative to it.
        cache_dir: photos and the day's media usage, reused by later runs.
        session, clock, sleep, now: injected by tests (as :func:`geocontrast.data.inat_api.inat_api_photos`).
        progress: a tqdm bar over photos on stderr.
    """
    table, name = read_export(config["path"])
    rows = export_rows(table, name, config)
    if rows.empty:
        raise ExportError(f"{name}: no row is left to fetch (see the counts in the log)")
    return fetch_listed_photos(
        rows,
        config,
        image_root,
        Path(cache_dir) / "photos" / config["photo_size"],
        session=session,
        clock=clock,
        sleep=sleep,
        now=now,
        progress=progress,
        section="dataset.inat_export",
    )


def read_export(path: str | None) -> tuple[pd.DataFrame, str]:
    """The export as text cells (stripped; blank cells ""), and its name for messages: ``file.zip:member.csv``
    for a zipped export (the one CSV inside, which is read, never extracted)."""
    if not path:
        raise ExportError("dataset.inat_export.path is not set: name the export's CSV (or its .zip)")
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if m.lower().endswith(".csv") and not m.endswith("/")]
            if len(members) != 1:
                raise ExportError(f"{path}: expected one .csv inside, found {members or 'none'}")
            name = f"{path}:{members[0]}"
            text = archive.read(members[0]).decode("utf-8-sig")
    else:
        name, text = str(path), path.read_text(encoding="utf-8-sig")
    table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False).apply(lambda column: column.str.strip())
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ExportError(
            f"{name}: missing column(s) {', '.join(map(repr, missing))} of an iNaturalist export "
            f"(found {', '.join(map(repr, table.columns))})"
        )
    if table.empty:
        raise ExportError(f"{name}: no rows after the header")
    return table, name


def export_rows(table: pd.DataFrame, name: str, config: dict) -> pd.DataFrame:
    """The rows to fetch as manifest rows (plus extra columns), after checking every cell and filtering."""
    column = _columns(table)
    problems = TableProblems(name)
    for position in np.flatnonzero(~table["id"].str.fullmatch(r"\d+").to_numpy()):
        problems.add(position, "id", f"{table['id'].iat[position]!r} is not an observation id (digits)")
    repeated(table, "id", problems)
    lat, lon = coordinate_pair(table, "latitude", "longitude", problems)
    recorded, public = (
        number_column(table, accuracy, problems, 0) if accuracy in table.columns else None
        for accuracy in ("positional_accuracy", "public_positional_accuracy")
    )
    observed_on = (
        date_column(table, "observed_on", problems)
        if "observed_on" in table.columns
        else pd.Series(pd.NaT, table.index)
    )
    url = table["image_url"]
    not_http = (url != "") & ~url.str.match(r"https?://")
    for position in np.flatnonzero(not_http.to_numpy()):
        problems.add(position, "image_url", f"{url.iat[position]!r} is not an http(s) URL")
    if config["quality_grade"] and "quality_grade" not in table.columns:
        raise ExportError(f"{name}: no 'quality_grade' column, needed by dataset.inat_export.quality_grade")
    if "license" not in table.columns:
        raise ExportError(f"{name}: no 'license' column, needed by dataset.inat_export.photo_licenses")
    problems.raise_if_any(ExportError)

    licence = table["license"].str.lower().replace("", None)
    obscured = table.get("coordinates_obscured", pd.Series("", table.index)).str.lower().isin(TRUE_TEXTS)
    uncertainty = pd.Series(np.nan, table.index)
    for accuracy in (recorded, public):  # the public accuracy where the export has it, as the API source
        if accuracy is not None:
            uncertainty = accuracy.fillna(uncertainty)
    uncertainty = uncertainty.where(~obscured, np.fmax(uncertainty.fillna(0.0), OBSCURED_UNCERTAINTY_M))

    keep = _kept(table, licence, config, name)
    photo_url = url.map(lambda u: photo_at_size(u, config["photo_size"]))
    photo_id = url.str.extract(_PHOTO_ID_IN_URL, expand=False).fillna(table["id"])
    who = table.get("user_name", pd.Series("", table.index)).mask(lambda s: s == "", table.get("user_login", ""))
    rows = pd.DataFrame(
        {
            "image_id": photo_id,
            "path": photo_id + photo_url.map(image_suffix),
            "lat": lat,
            "lon": lon,
            "coord_uncertainty_m": uncertainty,
            "observed_on": observed_on,
            "observer_id": column("user_id"),
            "observation_id": table["id"],
            "taxon_id": _species_taxon_id(table, column),
            **{rank: column(f"taxon_{rank}_name") for rank in TAXONOMIC_RANKS},
            "license": licence,
            "attribution": [_attribution(w, lic) for w, lic in zip(who, licence)],
            "source": "inat_export",
            "obscured": obscured,
            "geoprivacy": column("geoprivacy").fillna(column("taxon_geoprivacy")),
            "positional_accuracy_m": recorded if recorded is not None else np.nan,
            "photo_url": photo_url,
            "observer_login": column("user_login"),
            "quality_grade": column("quality_grade"),
        }
    )
    rows = rows[keep.to_numpy()].drop_duplicates("image_id").reset_index(drop=True)  # one photo, two observations
    log.info("%s: %d photos to fetch", name, len(rows))
    return rows


def photo_at_size(url: str, size: str) -> str:
    """The URL of another size of an iNaturalist photo (``.../medium.jpg`` to ``.../large.jpg``); other URLs as
    they are."""
    return _PHOTO_SIZE_IN_URL.sub(f"/{size}\\1", url, count=1)


def _columns(table: pd.DataFrame) -> Callable[[str], pd.Series]:
    """column(name): the column as nullable text (blank cells missing), all missing when the export lacks it."""

    def column(name: str) -> pd.Series:
        if name not in table.columns:
            return pd.Series(None, index=table.index, dtype=object)
        return table[name].replace("", None)

    return column


def _kept(table: pd.DataFrame, licence: pd.Series, config: dict, name: str) -> pd.Series:
    """Rows of the configured quality grade, with a photo, under an accepted licence; the rest counted in the log."""
    grade = config["quality_grade"]
    right_grade = table["quality_grade"].str.lower() == grade if grade else pd.Series(True, table.index)
    has_photo = table["image_url"] != ""
    licensed = licence.isin(config["photo_licenses"])
    log.info(
        "%s: %d rows; left out: %d not %s grade, %d without a photo, %d under another licence (%s accepted)",
        name,
        len(table),
        int((~right_grade).sum()),
        grade,
        int((right_grade & ~has_photo).sum()),
        int((right_grade & has_photo & ~licensed).sum()),
        ", ".join(config["photo_licenses"]),
    )
    return right_grade & has_photo & licensed


def _species_taxon_id(table: pd.DataFrame, column) -> pd.Series:
    """The row's taxon id where its taxon is its species (not a subspecies, nor a genus): the species' id."""
    species = column("taxon_species_name")
    at_species = species.notna() & (column("scientific_name") == species)
    return column("taxon_id").where(at_species)


def _attribution(who, licence) -> str | None:
    if not isinstance(who, str) or not who:
        return None
    if not isinstance(licence, str):
        return f"(c) {who}, all rights reserved"
    reserved = "no rights reserved" if licence == "cc0" else "some rights reserved"
    label = "CC0" if licence == "cc0" else "CC " + licence.upper().removeprefix("CC-")
    return f"(c) {who}, {reserved} ({label})"


def main(argv: list[str] | None = None) -> int:
    return run_source_cli(
        inat_export_photos, argv, prog="python -m geocontrast.data.inat_export", description=__doc__.split("\n")[0]
    )


if __name__ == "__main__":
    exit_without_teardown(main())
