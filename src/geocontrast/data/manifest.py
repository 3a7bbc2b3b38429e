"""The manifest contract: one validated row per image (docs/architecture.md).

Every data source writes a table with :data:`MANIFEST_COLUMNS`; :func:`validate_manifest` checks it, coerces the
dtypes and flags rows without usable coordinates (``has_coords``) instead of dropping them. Row numbers in error
messages are 0-based positions in the input table.

CLI (called by the workflow's manifest rule)::

    python -m geocontrast.data.manifest --source raw.csv --image-root images/ \\
        --out manifest.parquet --summary summary.json \\
        [--near-duplicates near_duplicates.parquet --near-duplicates-json '{"max_distance": 6, "drop": false}']

With ``--near-duplicates`` every photo is hashed and near-duplicate groups found
(:mod:`geocontrast.data.near_duplicates`); the table (image_id, phash, near_duplicate_group) is written in
manifest order for the splits, and the summary gains their counts. ``drop`` keeps only the first photo (in source
order) of each group.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from geocontrast.atomic import atomic_path, write_json
from geocontrast.cli import exit_without_teardown

MANIFEST_COLUMNS = (
    "image_id",
    "path",
    "lat",
    "lon",
    "coord_uncertainty_m",
    "observed_on",
    "observer_id",
    "observation_id",
    "taxon_id",
    "species",
    "genus",
    "family",
    "order",
    "class",
    "phylum",
    "kingdom",
    "license",
    "attribution",
    "source",
)
TAXONOMIC_RANKS = ("species", "genus", "family", "order", "class", "phylum", "kingdom")
FLOAT_COLUMNS = ("lat", "lon", "coord_uncertainty_m")
DATE_COLUMN = "observed_on"
STRING_COLUMNS = tuple(c for c in MANIFEST_COLUMNS if c not in FLOAT_COLUMNS and c != DATE_COLUMN)

# pandas' default string dtype from 3.0 on: missing values are NaN, so `species == x` is a plain bool mask.
STRING_DTYPE = pd.StringDtype(na_value=np.nan)
DATE_DTYPE = "datetime64[ns]"
# iNaturalist obscures coordinates of sensitive taxa to a ~0.2° cell; its uncertainty is then tens of km.
OBSCURED_UNCERTAINTY_M = 10_000.0
MAX_LISTED = 10

_PARQUET_SCHEMA = pa.schema(
    [
        (c, pa.float64() if c in FLOAT_COLUMNS else pa.date32() if c == DATE_COLUMN else pa.string())
        for c in MANIFEST_COLUMNS
    ]
    + [("has_coords", pa.bool_())]
)


class ManifestError(ValueError):
    """A manifest violates the contract; the message names the offending rows, columns or files."""


def validate_manifest(table: pd.DataFrame, image_root: Path | None = None) -> pd.DataFrame:
    """Check a raw manifest table and return it normalised.

    Returns a new frame with exactly :data:`MANIFEST_COLUMNS` plus ``has_coords``, in the input row order:
    lat/lon/coord_uncertainty_m as float64, observed_on as datetime64 (a calendar date; NaT allowed), every
    other column as a nullable string. Rows without coordinates are kept, with ``has_coords`` False.

    When ``image_root`` is given, every ``image_root / path`` must be a readable file (not decoded here).
    Raises :class:`ManifestError` listing every problem found.
    """
    missing = [c for c in MANIFEST_COLUMNS if c not in table.columns]
    if missing:
        raise ManifestError(f"missing columns: {', '.join(missing)}")

    manifest = table.loc[:, list(MANIFEST_COLUMNS)].reset_index(drop=True)
    for column in STRING_COLUMNS:
        manifest[column] = _as_string(manifest[column])
    problems: list[str] = []
    for column in FLOAT_COLUMNS:
        manifest[column] = _as_float(manifest, column, problems)
    manifest[DATE_COLUMN] = _as_date(manifest, problems)

    problems += _identity_problems(manifest)
    problems += _coordinate_problems(manifest)
    problems += _taxonomy_problems(manifest)
    if image_root is not None:
        problems += _unreadable_path_problems(manifest, Path(image_root))
    if problems:
        raise ManifestError("\n".join(problems))

    manifest["has_coords"] = manifest["lat"].notna() & manifest["lon"].notna()
    return manifest


def write_manifest(manifest: pd.DataFrame, path: Path) -> None:
    """Write a validated manifest to parquet (observed_on as date32), atomically."""
    path = Path(path)
    columns = {
        name: pa.array(manifest[name], type=pa.timestamp("ns")).cast(pa.date32())
        if name == DATE_COLUMN
        else pa.array(manifest[name], type=field.type, from_pandas=True)
        for name, field in zip(_PARQUET_SCHEMA.names, _PARQUET_SCHEMA)
    }
    with atomic_path(path) as partial:
        pq.write_table(pa.table(columns, schema=_PARQUET_SCHEMA), partial)


def read_manifest(path: Path) -> pd.DataFrame:
    """Read a manifest written by :func:`write_manifest`, with the dtypes :func:`validate_manifest` returns."""
    table = pq.read_table(path)
    missing = [c for c in _PARQUET_SCHEMA.names if c not in table.column_names]
    if missing:
        raise ManifestError(f"{path}: missing columns: {', '.join(missing)}")
    manifest = table.select(_PARQUET_SCHEMA.names).to_pandas(date_as_object=False)
    for column in STRING_COLUMNS:
        manifest[column] = manifest[column].astype(STRING_DTYPE)
    for column in FLOAT_COLUMNS:
        manifest[column] = manifest[column].astype("float64")
    manifest[DATE_COLUMN] = manifest[DATE_COLUMN].astype(DATE_DTYPE)
    manifest["has_coords"] = manifest["has_coords"].astype(bool)
    return manifest


def species_classes(species) -> tuple[np.ndarray, list[str]]:
    """(N,) int64 class index per value of ``species`` (-1 where missing) and the sorted class names: the class
    order of every classifier and prior."""
    species = np.asarray(species, dtype=object)
    labelled = pd.notna(species)
    names = sorted(set(species[labelled].tolist()))
    lookup = {name: i for i, name in enumerate(names)}
    codes = np.array([lookup[s] if ok else -1 for s, ok in zip(species, labelled)], dtype=np.int64)
    return codes, names


def summarise_manifest(manifest: pd.DataFrame) -> dict:
    """Counts a person checks before training: images, observations, labels, coordinates, taxa per rank."""
    labelled = manifest["species"].notna()
    images_per_species = manifest.loc[labelled, "species"].value_counts()
    # An image without observation_id is its own observation.
    n_observations = manifest["observation_id"].nunique() + int(manifest["observation_id"].isna().sum())
    return {
        "n_images": len(manifest),
        "n_observations": n_observations,
        "n_observers": int(manifest["observer_id"].nunique()),
        "n_species": int(images_per_species.size),
        "n_labelled": int(labelled.sum()),
        "n_without_coords": int((~(manifest["lat"].notna() & manifest["lon"].notna())).sum()),
        "n_obscured": int((manifest["coord_uncertainty_m"] > OBSCURED_UNCERTAINTY_M).sum()),
        "images_per_species": {
            "min": int(images_per_species.min()) if images_per_species.size else 0,
            "median": float(images_per_species.median()) if images_per_species.size else 0.0,
            "max": int(images_per_species.max()) if images_per_species.size else 0,
        },
        "taxa_per_rank": {rank: int(manifest[rank].nunique()) for rank in TAXONOMIC_RANKS},
    }


def _as_string(values: pd.Series) -> pd.Series:
    """Nullable strings; integral floats (ids read next to NaN) lose their '.0'; blank strings become missing."""
    if pd.api.types.is_float_dtype(values) and np.all(np.mod(values.dropna(), 1) == 0):
        values = values.astype("Int64")
    strings = values.astype(STRING_DTYPE).str.strip()
    return strings.mask(strings == "")


def _as_float(manifest: pd.DataFrame, column: str, problems: list[str]) -> pd.Series:
    numbers = pd.to_numeric(manifest[column], errors="coerce").astype("float64")
    bad = manifest[column].notna() & numbers.isna()
    if bad.any():
        problems.append(f"non-numeric {column} in {_describe_rows(manifest, bad, [column])}")
    return numbers


def _as_date(manifest: pd.DataFrame, problems: list[str]) -> pd.Series:
    raw = manifest[DATE_COLUMN]
    if pd.api.types.is_datetime64_any_dtype(raw):
        dates = raw.dt.tz_localize(None) if raw.dt.tz is not None else raw
    else:
        # observed_on is the local calendar date: drop UTC offsets (keeping local wall time) instead of converting.
        text = raw.astype(STRING_DTYPE).str.replace(
            r"(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(?:Z|[+-]\d{2}:?\d{2})$", r"\1", regex=True
        )
        dates = pd.to_datetime(text, format="mixed", errors="coerce")
        bad = raw.notna() & dates.isna()
        if bad.any():
            problems.append(f"unparseable {DATE_COLUMN} in {_describe_rows(manifest, bad, [DATE_COLUMN], raw)}")
    return dates.dt.normalize().astype(DATE_DTYPE)


def _identity_problems(manifest: pd.DataFrame) -> list[str]:
    problems = []
    ids = manifest["image_id"]
    if ids.isna().any():
        problems.append(f"missing image_id in {_describe_rows(manifest, ids.isna(), [])}")
    duplicated = ids.notna() & ids.duplicated(keep=False)
    if duplicated.any():
        groups = manifest.index[duplicated].to_series().groupby(ids[duplicated], sort=False).agg(list)
        listed = "; ".join(f"{image_id!r} at rows {rows}" for image_id, rows in groups.head(MAX_LISTED).items())
        more = f"; ... and {len(groups) - MAX_LISTED} more ids" if len(groups) > MAX_LISTED else ""
        problems.append(f"duplicate image_id: {listed}{more}")
    if manifest["path"].isna().any():
        problems.append(f"missing path in {_describe_rows(manifest, manifest['path'].isna(), [])}")
    return problems


def _coordinate_problems(manifest: pd.DataFrame) -> list[str]:
    problems = []
    lat, lon = manifest["lat"], manifest["lon"]
    half = lat.notna() != lon.notna()
    if half.any():
        rows = _describe_rows(manifest, half, ["lat", "lon"])
        problems.append(f"lat and lon must be both present or both missing; {rows}")
    bad_lat = lat.notna() & ~lat.between(-90.0, 90.0)
    if bad_lat.any():
        problems.append(f"lat outside [-90, 90] in {_describe_rows(manifest, bad_lat, ['lat'])}")
    bad_lon = lon.notna() & ~lon.between(-180.0, 180.0)
    if bad_lon.any():
        problems.append(f"lon outside [-180, 180] in {_describe_rows(manifest, bad_lon, ['lon'])}")
    return problems


def _taxonomy_problems(manifest: pd.DataFrame) -> list[str]:
    """Each species must have exactly one ancestor per rank (a missing ancestor counts as a value)."""
    labelled = manifest[manifest["species"].notna()]
    problems = []
    for rank in TAXONOMIC_RANKS[1:]:
        n_ancestors = labelled.groupby("species")[rank].nunique(dropna=False)
        inconsistent = n_ancestors.index[n_ancestors > 1]
        for species in inconsistent[:MAX_LISTED]:
            rows = labelled.index[labelled["species"] == species]
            ancestors = sorted(labelled.loc[rows, rank].fillna("<missing>").unique())
            listed_rows = rows.tolist()[:MAX_LISTED]
            problems.append(f"species {species!r} has {len(ancestors)} {rank} values {ancestors} at rows {listed_rows}")
        if len(inconsistent) > MAX_LISTED:
            problems.append(f"... and {len(inconsistent) - MAX_LISTED} more species with several {rank} values")
    return problems


def _unreadable_path_problems(manifest: pd.DataFrame, image_root: Path) -> list[str]:
    files = [image_root / p if isinstance(p, str) else None for p in manifest["path"]]
    unreadable = pd.Series([f is not None and not (f.is_file() and os.access(f, os.R_OK)) for f in files])
    if not unreadable.any():
        return []
    return [f"unreadable image files under {image_root} in {_describe_rows(manifest, unreadable, ['path'])}"]


def _describe_rows(manifest: pd.DataFrame, mask: pd.Series, columns: list[str], values: pd.Series | None = None) -> str:
    """'3 rows: row 4 (image_id 'a', lat 91.0), ...', listing the first few."""
    rows = np.flatnonzero(mask.to_numpy())
    described = []
    for row in rows[:MAX_LISTED]:
        fields = [f"image_id {manifest.at[row, 'image_id']!r}"]
        for column in columns:
            value = (values if values is not None else manifest[column]).iat[row]
            fields.append(f"{column} {value!r}" if isinstance(value, str) else f"{column} {value}")
        described.append(f"row {row} ({', '.join(fields)})")
    more = f", ... and {len(rows) - MAX_LISTED} more" if len(rows) > MAX_LISTED else ""
    return f"{len(rows)} row{'s' if len(rows) != 1 else ''}: {', '.join(described)}{more}"


def _read_source(source: Path) -> pd.DataFrame:
    if source.suffix == ".parquet":
        return pd.read_parquet(source)
    if source.suffix == ".csv":
        # Read everything as text so validation sees the raw values and names the rows it cannot parse.
        return pd.read_csv(source, dtype=str)
    raise ManifestError(f"unsupported source format {source.suffix!r} (expected .parquet or .csv)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geocontrast.data.manifest", description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="raw table (.parquet or .csv) with MANIFEST_COLUMNS")
    parser.add_argument("--image-root", type=Path, required=True, help="folder the path column is relative to")
    parser.add_argument("--out", type=Path, required=True, help="validated manifest (.parquet)")
    parser.add_argument("--summary", type=Path, required=True, help="summary counts (.json)")
    parser.add_argument("--near-duplicates", type=Path, help="also hash every photo and write its group (.parquet)")
    parser.add_argument(
        "--near-duplicates-json", default="{}", help='the settings: {"max_distance": bits, "drop": bool}'
    )
    parser.add_argument("--workers", type=int, default=1, help="processes decoding photos for the hashes")
    args = parser.parse_args(argv)

    try:
        manifest = validate_manifest(_read_source(args.source), args.image_root)
    except ManifestError as error:
        print(f"{args.source}: {error}", file=sys.stderr)
        return 1
    summary_extra = {}
    if args.near_duplicates:
        manifest, hashes, summary_extra["near_duplicates"] = find_near_duplicates(
            manifest, args.image_root, json.loads(args.near_duplicates_json), args.workers
        )
        with atomic_path(args.near_duplicates) as partial:
            hashes.to_parquet(partial, index=False)
    write_manifest(manifest, args.out)
    write_json({**summarise_manifest(manifest), **summary_extra}, args.summary)
    return 0


def find_near_duplicates(
    manifest: pd.DataFrame, image_root: Path, settings: dict, workers: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Hash every photo, group the near-duplicates and, with ``settings["drop"]``, keep one photo of each group.

    Returns the manifest (fewer rows after a drop), the hash table in its row order and the summary counts.
    """
    from geocontrast.data import near_duplicates

    max_distance, drop = settings["max_distance"], settings["drop"]
    paths = [Path(image_root) / path for path in manifest["path"]]
    hashes, flat, failed = near_duplicates.photo_hashes(paths, workers)
    group = near_duplicates.near_duplicate_groups(hashes, max_distance, usable=~flat & ~failed)
    summary = {"max_distance": max_distance, **near_duplicates.summarise_groups(group, flat, failed)}
    if drop:
        keep = (group < 0) | (group == np.arange(group.size))
        summary["n_dropped"] = int((~keep).sum())
        manifest = manifest[keep].reset_index(drop=True)
        hashes, flat, failed = hashes[keep], flat[keep], failed[keep]
        group = np.full(keep.sum(), -1)  # one photo of each group is left: nothing to keep together
    table = near_duplicates.hash_table(manifest["image_id"], hashes, flat, failed, group)
    return manifest, table, summary


if __name__ == "__main__":
    exit_without_teardown(main())
