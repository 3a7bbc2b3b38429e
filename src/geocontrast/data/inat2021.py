"""The iNaturalist 2021 competition files as a photo source (github.com/visipedia/inat_comp, 2021).

Public bucket, no authentication: ``{base_url}/{split}.json.tar.gz`` (COCO-like annotations) and
``{base_url}/{split}.tar.gz`` (the JPEGs), for split in train, train_mini, val, public_test. Both files are
downloaded into the cache folder (resumable, checked against the published md5s in :data:`PUBLISHED_MD5`) and
kept there, so a rerun with another region or taxon downloads nothing.

The photos are chosen **from the JSON first** (taxon at any rank, bounding box); only those members are then
extracted while the image archive is read as a stream, never unpacked whole. Archive members with absolute paths
or ``..`` are refused.

Mapping to the manifest (docs/architecture.md):

- ``image_id``: the image id; ``path``: its ``file_name`` (e.g. ``train_mini/<category dir>/<uuid>.jpg``).
- ``observation_id``: the image id too; the 2021 files carry no observation id, so each photo is its own
  observation (photos of one observation may then land in different splits).
- ``observer_id``: ``rights_holder``; ``observed_on``: ``date``.
- ``lat``/``lon``: ``latitude``/``longitude``; a null stays NaN, and a pair that is impossible (a value outside
  [-90, 90] or [-180, 180], or only one of the two) becomes NaN in both and is counted in the log. Such rows are
  kept: the manifest flags them ``has_coords`` False, unless a ``bbox`` is set, which drops them.
- ``coord_uncertainty_m``: ``location_uncertainty``, with impossible values (negative, or beyond half the
  equator) set to NaN and counted in the log.
- ``taxon_id``: the competition category id (not an iNaturalist taxon id); ``species``: genus + specific epithet;
  the other ranks from the category. ``public_test`` has no labels, so its taxonomy is empty.
- ``license``: the licence's short code (``cc-by-nc``), from its URL; ``attribution``: ``(c) rights_holder,
  licence name``. The extra column ``supercategory`` follows the manifest columns.

CLI (the workflow's ``inat2021`` rule)::

    python -m geocontrast.data.inat2021 --config-json '{"split": "train_mini", ...}' \\
        --source results/x/source/photos.parquet --image-root results/x/images --cache-dir downloads/inat2021
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sys
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import requests
from tqdm import tqdm

from geocontrast.atomic import atomic_path
from geocontrast.cli import exit_without_teardown
from geocontrast.data.download import SourceError, download, new_session, run_source_cli
from geocontrast.data.manifest import STRING_DTYPE

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://ml-inat-competition-datasets.s3.amazonaws.com/2021"
SPLITS = ("train", "train_mini", "val", "public_test")
# Published by the competition (github.com/visipedia/inat_comp, 2021/README.md, "Data"); a mirror at another
# base_url serves the same files. A file without an entry is downloaded unchecked, and the log says so.
PUBLISHED_MD5 = {
    "train.json.tar.gz": "38a7bb733f7a09214d44293460ec0021",
    "train.tar.gz": "e0526d53c7f7b2e3167b2b43bb2690ed",
    "train_mini.json.tar.gz": "395a35be3651d86dc3b0d365b8ea5f92",
    "train_mini.tar.gz": "db6ed8330e634445efc8fec83ae81442",
    "val.json.tar.gz": "4d761e0f6a86cc63e8f7afc91f6a8f0b",
    "val.tar.gz": "f6f6e0e242e3d4c9569ba56400938afc",
    "public_test.json.tar.gz": "7a9413db55c6fa452824469cc7dd9d3d",
    "public_test.tar.gz": "7124b949fe79bfa7f7019a15ef3dbd06",
}
# No place on Earth is farther than half the equator from another: a larger uncertainty is a recording error.
MAX_UNCERTAINTY_M = 20_037_508.0
RANKS = ("kingdom", "phylum", "class", "order", "family", "genus")
# Names a `taxon` filter is compared with (case-insensitively).
TAXON_NAME_COLUMNS = ("supercategory", *RANKS, "species")
_IMAGE_FIELDS = ("id", "file_name", "latitude", "longitude", "location_uncertainty", "date", "rights_holder", "license")
_CREATIVE_COMMONS_URL = re.compile(r"creativecommons\.org/(?:licenses|publicdomain)/([a-z-]+)/")


class UnsafeArchiveError(SourceError):
    """An archive member would be written outside the image folder (absolute path or '..')."""


def inat2021_photos(
    config: dict,
    image_root: Path,
    cache_dir: Path,
    *,
    checksums: Mapping[str, str] = PUBLISHED_MD5,
    session: requests.Session | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Download (or reuse) one split, select its photos and extract them under ``image_root``.

    Args:
        config: the ``dataset.inat2021`` section: ``base_url``, ``split``, ``taxon`` (a name at any rank, or
            null for all), ``bbox`` (``[lon_min, lat_min, lon_max, lat_max]``, or null for everywhere).
        image_root: the image folder; the returned ``path`` column is relative to it.
        cache_dir: where both downloads stay between runs.
        checksums: md5 per file name (tests pass their own files' sums).
        session: HTTP session for the downloads.
        progress: tqdm bars on stderr.

    Returns the photo table: manifest columns plus ``supercategory``.
    """
    split = config["split"]
    if split not in SPLITS:
        raise SourceError(f"dataset.inat2021.split must be one of {', '.join(SPLITS)}, got {split!r}")
    session = session or new_session()

    def fetch(name: str) -> Path:
        md5 = checksums.get(name)
        if md5 is None:
            log.warning("%s: no published md5, the download is not checked", name)
        url = f"{config['base_url'].rstrip('/')}/{name}"
        return download(url, Path(cache_dir) / name, md5, session=session, progress=progress)

    photos = photo_table(read_dataset_json(fetch(f"{split}.json.tar.gz")))
    selected = select_photos(photos, config["taxon"], config["bbox"])
    extract_members(fetch(f"{split}.tar.gz"), selected["path"], Path(image_root), progress=progress)
    return selected


def read_dataset_json(archive: Path) -> dict:
    """The annotation dictionary inside a ``{split}.json.tar.gz``."""
    with tarfile.open(archive, mode="r|gz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".json"):
                return json.load(tar.extractfile(member))
    raise SourceError(f"{archive}: no .json file inside")


def photo_table(dataset: dict) -> pd.DataFrame:
    """One row per image of the COCO-like ``dataset``, in manifest columns (see the module docstring)."""
    images = pd.DataFrame(dataset["images"]).reindex(columns=_IMAGE_FIELDS)
    labels = pd.DataFrame(dataset.get("annotations", []), columns=["image_id", "category_id"])
    categories = pd.DataFrame(
        dataset.get("categories", []), columns=["id", "supercategory", *RANKS, "specific_epithet"]
    )
    licences = pd.DataFrame(dataset.get("licenses", []), columns=["id", "name", "url"])
    licences["code"] = [licence_code(name, url) for name, url in zip(licences["name"], licences["url"])]

    rows = (
        images.merge(labels.rename(columns={"image_id": "id"}), on="id", how="left")
        .merge(categories.rename(columns={"id": "category_id"}), on="category_id", how="left")
        .merge(licences.rename(columns={"id": "license", "name": "license_name"}), on="license", how="left")
    )
    text = {
        column: rows[column].astype(STRING_DTYPE)
        for column in ("rights_holder", "license_name", "code", "supercategory", *RANKS, "specific_epithet")
    }
    image_ids = _id_strings(rows["id"])
    lat, lon = sanitise_coordinates(rows["latitude"], rows["longitude"])
    return pd.DataFrame(
        {
            "image_id": image_ids,
            "path": [PurePosixPath(name).as_posix() for name in rows["file_name"]],
            "lat": lat,
            "lon": lon,
            "coord_uncertainty_m": sanitise_uncertainty(rows["location_uncertainty"]),
            "observed_on": rows["date"],
            "observer_id": text["rights_holder"],
            "observation_id": image_ids,
            "taxon_id": _id_strings(rows["category_id"]),
            "species": text["genus"] + " " + text["specific_epithet"],
            **{rank: text[rank] for rank in reversed(RANKS)},
            "license": text["code"],
            "attribution": "(c) " + text["rights_holder"] + ", " + text["license_name"],
            "source": "inat2021",
            "supercategory": text["supercategory"],
        }
    )


def sanitise_coordinates(lat: pd.Series, lon: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Decimal degrees; a pair with a value out of range, or with one value missing, becomes NaN in both (logged)."""
    lat = pd.to_numeric(lat, errors="coerce").astype("float64")
    lon = pd.to_numeric(lon, errors="coerce").astype("float64")
    bogus = (lat.isna() != lon.isna()) | (lat.abs() > 90) | (lon.abs() > 180)
    if bogus.any():
        log.warning(
            "latitude/longitude: %d impossible pairs (out of range, or half missing) set to NaN", int(bogus.sum())
        )
    return lat.mask(bogus), lon.mask(bogus)


def sanitise_uncertainty(values: pd.Series) -> pd.Series:
    """Location uncertainty in metres; negative values and values beyond :data:`MAX_UNCERTAINTY_M` become NaN."""
    metres = pd.to_numeric(values, errors="coerce").astype("float64")
    bogus = (metres < 0) | (metres > MAX_UNCERTAINTY_M)
    if bogus.any():
        log.warning(
            "location_uncertainty: %d impossible values (negative or over %.0f km) set to NaN",
            int(bogus.sum()),
            MAX_UNCERTAINTY_M / 1000,
        )
    return metres.mask(bogus)


def licence_code(name, url) -> str | None:
    """``cc-by-nc`` for a Creative Commons licence URL (``cc0`` for public-domain zero), else the licence's name."""
    match = _CREATIVE_COMMONS_URL.search(url) if isinstance(url, str) else None
    if match is None:
        return name if isinstance(name, str) else None
    return "cc0" if match.group(1) == "zero" else f"cc-{match.group(1)}"


def select_photos(photos: pd.DataFrame, taxon: str | None = None, bbox: list[float] | None = None) -> pd.DataFrame:
    """The photos of ``taxon`` (a name at any rank, the supercategory or a species) inside ``bbox``.

    ``bbox`` is ``[lon_min, lat_min, lon_max, lat_max]`` (lon_min > lon_max crosses the antimeridian); with a box,
    photos without coordinates are dropped and counted in the log. ``None`` skips a filter.
    """
    keep = np.ones(len(photos), dtype=bool)
    if taxon:
        names = photos[list(TAXON_NAME_COLUMNS)].apply(lambda column: column.str.casefold())
        keep &= names.eq(taxon.casefold()).any(axis=1).to_numpy()
        log.info("taxon %r: %d of %d images", taxon, keep.sum(), len(photos))
    if bbox:
        no_coords = int((photos.loc[keep, "lat"].isna() | photos.loc[keep, "lon"].isna()).sum())
        before = int(keep.sum())
        keep &= in_bbox(photos["lat"], photos["lon"], bbox)
        log.info("bbox %s: %d of %d images (%d without coordinates dropped)", bbox, keep.sum(), before, no_coords)
    if not keep.any():
        raise SourceError(f"no image of taxon {taxon!r} inside bbox {bbox} among {len(photos)} images")
    return photos[keep].reset_index(drop=True)


def in_bbox(lat: pd.Series, lon: pd.Series, bbox: list[float]) -> np.ndarray:
    """Boolean mask of the points inside ``[lon_min, lat_min, lon_max, lat_max]``; missing coordinates are outside."""
    lon_min, lat_min, lon_max, lat_max = bbox
    inside_lon = lon.between(lon_min, lon_max) if lon_min <= lon_max else (lon >= lon_min) | (lon <= lon_max)
    return (lat.between(lat_min, lat_max) & inside_lon).to_numpy()


def extract_members(archive: Path, paths: Iterable[str], image_root: Path, progress: bool = True) -> None:
    """Extract the members named in ``paths`` from a .tar.gz into ``image_root``, reading it once as a stream.

    Every member's name is checked, selected or not: an absolute path or a ``..`` component raises
    :class:`UnsafeArchiveError` naming it. Only regular files are written (links are never followed). Raises
    :class:`SourceError` listing selected paths the archive does not hold.
    """
    remaining = {PurePosixPath(path).as_posix() for path in paths}
    with (
        tarfile.open(archive, mode="r|gz") as tar,
        tqdm(
            total=len(remaining),
            unit="img",
            desc=f"extract {Path(archive).name}",
            disable=not progress,
            file=sys.stderr,
        ) as bar,
    ):
        for member in tar:
            name = _safe_member_name(member.name, archive)
            if name not in remaining or not member.isfile():
                continue
            target = image_root / name
            with tar.extractfile(member) as data, atomic_path(target) as partial, open(partial, "wb") as out:
                shutil.copyfileobj(data, out)
            remaining.discard(name)
            bar.update()
            if not remaining:
                break  # nothing else in the archive is wanted: skip decompressing the rest
    if remaining:
        listed = ", ".join(sorted(remaining)[:5])
        raise SourceError(f"{archive}: {len(remaining)} selected images are not in the archive, e.g. {listed}")


def _safe_member_name(name: str, archive: Path) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise UnsafeArchiveError(
            f"{archive}: refusing archive member {name!r} (absolute path or '..' would be "
            "written outside the image folder)"
        )
    return path.as_posix()


def _id_strings(ids: pd.Series) -> pd.Series:
    """Integer ids (float after a merge with missing rows) as strings, missing ones NaN."""
    return pd.to_numeric(ids, errors="coerce").astype("Int64").astype(STRING_DTYPE)


def main(argv: list[str] | None = None) -> int:
    return run_source_cli(
        inat2021_photos, argv, prog="python -m geocontrast.data.inat2021", description=__doc__.split("\n")[0]
    )


if __name__ == "__main__":
    exit_without_teardown(main())
