"""Presence-only geographic prior P(y | location[, date]) and its calibrated combination with an image classifier.

After Mac Aodha et al. 2019, "Presence-only geographical priors for fine-grained image classification", and
Cole et al. 2023, "Spatial implicit neural representations for global-scale species mapping" (SINR): a residual
MLP maps a wrap-around encoding of the location and, optionally, the day of year to one presence logit per species,
trained from presence-only records with one of the "assume negative" losses (the model, its parameters and its fit:
:mod:`geocontrast.prior.model`). At test time P(y | image, x) ∝ P(y | image) · (P(y | x) / P(y))^w
(:func:`geocontrast.prior.scores.combine`): Bayes' rule at w = 1, with the image model's own class
prior P(y) divided out; w is chosen on val (:func:`~geocontrast.prior.scores.choose_prior_weight`).

The training records are the labelled train photos with coordinates and, with ``--occurrences``, an occurrence
table (:mod:`geocontrast.data.occurrences`) of the classifier's species.

CLI (for the workflow's geo_prior rule)::

    python -m geocontrast.prior.fit --manifest manifest.parquet --splits splits.parquet \\
        --label-fraction 10 --out-dir geoprior [--params-json '{"epochs": 100}'] [--seed 0] [--threads 1] \\
        [--occurrences occurrences.csv] [--oracle replicates/0/oracle.npz]

writes ``probs.npy`` ((N, C) float32, every manifest row, manifest order, rows with no usable input all 1.0),
``prior.json`` (``classes``, params, the training records, the prior's own prior-only val/test accuracy and
reliability; with ``--oracle`` (the synthetic world's, :mod:`geocontrast.data.synthetic.oracle`) the oracle
"limit" rows and each species' range AUC) and
``grid.npz`` (the prior on a lat/lon grid over the observations, averaged over the year for a date model, for
range maps: ``lat`` (n_lat,), ``lon`` (n_lon,) ascending cell centres, ``values`` (C, n_lat, n_lon) float32,
``species`` (C,)) into ``--out-dir``. When no training record is left the prior is skipped: ``probs.npy`` has no
columns, ``grid.npz`` no species and ``prior.json`` says why under ``skipped`` (:func:`load_prior` reads both).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from geocontrast.atomic import atomic_path, write_json
from geocontrast.cli import exit_without_teardown, json_object
from geocontrast.data.manifest import read_manifest
from geocontrast.geo.training_data import training_data
from geocontrast.metrics import most_common_scores
from geocontrast.npy_rows import NpyRows
from geocontrast.prior.model import (
    PriorSettings,
    fit_location_model,
    location_probabilities,
    range_grid_axes,
    range_probabilities,
    rows_per_block,
)
from geocontrast.prior.scores import limits, prior_only_scores, reliability, smoothed_frequencies

TOP_K = (1, 5)
PROBS, PRIOR, GRID = "probs.npy", "prior.json", "grid.npz"


def skip_prior(reason: str, n_rows: int, classes: list[str], label_fraction: float, out_dir: Path) -> dict:
    """Write the outputs of a prior that cannot be fitted: ``probs.npy`` (n_rows, 0), an empty ``grid.npz`` and
    ``prior.json`` with ``skipped``: the reason (which :func:`load_prior` hands to the evaluations)."""
    print(f"geoprior: skipped: {reason}", file=sys.stderr)
    with atomic_path(out_dir / PROBS) as partial:
        np.save(partial, np.zeros((n_rows, 0), np.float32))
    with atomic_path(out_dir / GRID) as partial:
        empty = np.zeros(0)
        np.savez(partial, lat=empty, lon=empty, species=np.array([], dtype=str), values=np.zeros((0, 0, 0)))
    prior = {"classes": classes, "label_fraction": label_fraction, "skipped": reason}
    write_json(prior, out_dir / PRIOR)
    return prior


class LocationPrior(NpyRows):
    """A fitted prior's (N, C) probabilities, read a block of rows at a time, with ``class_prior``: the add-one
    smoothed class frequencies of the records it was trained on (the P(y) its probabilities carry, which the
    combination with an image model divides out; None for a prior written before it recorded them)."""

    def __init__(self, path):
        super().__init__(path)
        summary = Path(path).with_name(PRIOR)
        counts = json.loads(summary.read_text()).get("class_counts") if summary.exists() else None
        self.class_prior = None if counts is None else smoothed_frequencies(np.asarray(counts, dtype=np.float64))


def load_prior(path: Path | None, reason_without: str) -> tuple[LocationPrior | None, str | None]:
    """The prior at ``path`` (:class:`LocationPrior`) and None, or None and why there is none: ``reason_without``
    when ``path`` is None, the ``skipped`` reason of the ``prior.json`` beside a prior that was skipped."""
    if path is None:
        return None, reason_without
    probs = LocationPrior(path)
    if probs.ndim == 2 and probs.shape[1] == 0:
        summary = Path(path).with_name(PRIOR)
        reason = json.loads(summary.read_text()).get("skipped") if summary.exists() else None
        return None, f"geographic prior skipped: {reason or 'no labelled train row with coordinates'}"
    return probs, None


def day_of_year(dates) -> np.ndarray:
    """(N,) float day of year (1-366) of datetime-like values; NaN where missing."""
    return pd.to_datetime(pd.Series(dates)).dt.day_of_year.to_numpy(np.float64, na_value=np.nan)


@dataclass
class Records:
    """Presence records the prior trains on: (N,) lat, lon, day of year (NaN: undated) and class index."""

    lat: np.ndarray
    lon: np.ndarray
    day: np.ndarray
    label: np.ndarray

    def __add__(self, other: Records) -> Records:
        return Records(*(np.concatenate([a, b]) for a, b in zip(self.fields(), other.fields())))

    def fields(self) -> tuple[np.ndarray, ...]:
        return self.lat, self.lon, self.day, self.label

    def subset(self, keep: np.ndarray) -> Records:
        return Records(*(values[keep] for values in self.fields()))


def occurrence_training_records(path: Path, classes: list[str]) -> tuple[Records, dict]:
    """The records of the occurrence table at ``path`` whose species the classifier has, and the counts of
    what was read, kept and dropped (``other_species``: species not among ``classes``)."""
    from geocontrast.data.occurrences import read_occurrences

    table, counts = read_occurrences(path)
    code = {name: i for i, name in enumerate(classes)}
    label = table["species"].map(code).fillna(-1).to_numpy(np.int64)
    known = label >= 0
    counts = {**counts, "other_species": int((~known).sum()), "kept": int(known.sum())}
    records = Records(
        table["lat"].to_numpy(np.float64), table["lon"].to_numpy(np.float64), table["day_of_year"].to_numpy(), label
    )
    return records.subset(known), counts


def _save_probabilities(path: Path, model, lat, lon, days) -> np.ndarray:
    """Write the (N, C) float32 prior of every manifest row to the .npy ``path`` a block of rows at a time (the
    whole matrix is 6 GB at 500,000 photos of 3,000 species) and return it to be read back a block of rows at a
    time (:class:`~geocontrast.npy_rows.NpyRows`)."""
    n_rows, n_classes = lat.size, model.classes.out_features
    block = rows_per_block(model)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False}
    with atomic_path(path) as partial:
        with open(partial, "wb") as file:
            np.lib.format.write_array_header_1_0(file, {**header, "shape": (n_rows, n_classes)})
            for start in range(0, n_rows, block):
                rows = slice(start, start + block)
                block_probs = location_probabilities(model, lat[rows], lon[rows], days[rows])
                file.write(np.ascontiguousarray(block_probs, dtype=np.float32))
    return NpyRows(path)


def geoprior(
    manifest_path: Path,
    splits_path: Path,
    label_fraction: float,
    out_dir: Path,
    settings: PriorSettings,
    seed: int = 0,
    occurrences: Path | None = None,
    oracle: Path | None = None,
) -> dict:
    """Fit the prior on the labelled train rows with coordinates (and the ``occurrences`` table's records of the
    classifier's species); write ``probs.npy``, ``grid.npz`` and ``prior.json``; score it against ``oracle`` (the
    synthetic world's ``oracle.npz`` of this replicate) when given.

    Returns the ``prior.json`` content. Without a training record the prior is skipped (:func:`skip_prior`);
    raises ValueError naming the file when no row has a species.
    """
    uses_date = "date" in settings.inputs
    manifest = read_manifest(Path(manifest_path))
    data = training_data(manifest, pd.read_parquet(splits_path))
    codes, classes = data.species_codes()  # (N,), sorted species names
    if not classes:
        raise ValueError(f"{manifest_path}: no row has a species")
    has_coords = manifest["has_coords"].to_numpy(bool)
    lat = np.where(has_coords, manifest["lat"].to_numpy(np.float64, na_value=np.nan), np.nan)
    lon = np.where(has_coords, manifest["lon"].to_numpy(np.float64, na_value=np.nan), np.nan)
    days = day_of_year(manifest["observed_on"])
    try:
        labelled = data.labelled_rows(label_fraction)
    except ValueError as error:
        raise ValueError(f"{splits_path}: {error}") from None
    labelled = labelled[codes[labelled] >= 0]
    photos = Records(lat[labelled], lon[labelled], days[labelled], codes[labelled])
    sources = {"labelled_photos": {"read": int(labelled.size)}}
    records = photos
    if occurrences is not None:
        table_records, sources["occurrences"] = occurrence_training_records(Path(occurrences), classes)
        records = photos + table_records
    usable = np.isfinite(records.lat) & np.isfinite(records.lon)
    if uses_date:
        usable &= np.isfinite(records.day)
    records = records.subset(usable)
    if records.label.size == 0:
        needs = "coordinates and a date" if uses_date else "coordinates"
        reason = (
            f"none of the {labelled.size} train rows labelled under label_fraction {label_fraction:g}"
            f"{' nor of the occurrence records' if occurrences is not None else ''} has {needs} and a species"
            f" in {manifest_path}"
        )
        return skip_prior(reason, len(manifest), classes, label_fraction, Path(out_dir))

    started = time.perf_counter()
    model = fit_location_model(records.lat, records.lon, records.label, len(classes), settings, seed, records.day)
    seconds = time.perf_counter() - started
    probs = _save_probabilities(Path(out_dir) / PROBS, model, lat, lon, days)  # (N, C), memory-mapped

    prior = {
        "classes": classes,
        "params": settings.as_dict(),
        "seed": seed,
        "label_fraction": label_fraction,
        "sources": sources,
        "n_train": int(records.label.size),
        "class_counts": np.bincount(records.label, minlength=len(classes)).tolist(),  # what P(y) it learned
        "fit_seconds": round(seconds, 3),
    }
    prior_codes = records.label
    for split in ("val", "test"):
        rows = data.rows_of(split)
        rows = rows[has_coords[rows] & (codes[rows] >= 0)]
        prior[f"n_{split}"] = int(rows.size)
        # The most common species is the baseline the prior has to beat. None (JSON null): no usable row.
        most_common = most_common_scores(prior_codes, len(classes), rows.size)
        scores = prior_only_scores(probs, codes[rows], rows)  # the split's rows read a block at a time
        baseline = prior_only_scores(most_common, codes[rows])
        for k in TOP_K:
            prior[f"{split}_top{k}"], prior[f"{split}_most_common_top{k}"] = scores[f"top{k}"], baseline[f"top{k}"]
        if split == "test" and rows.size:
            prior["reliability_test"] = reliability(probs, codes[rows], rows=rows)
            if oracle is not None:
                grid_of_model = lambda a, b: range_probabilities(model, a, b)  # noqa: E731
                prior.update(limits(oracle, classes, rows, codes[rows], scores, grid_of_model))

    grid_lat, grid_lon = range_grid_axes(lat[has_coords], lon[has_coords])
    with atomic_path(Path(out_dir) / GRID) as partial:
        lon_mesh, lat_mesh = np.meshgrid(grid_lon, grid_lat)  # (n_lat, n_lon)
        values = range_probabilities(model, lat_mesh.ravel(), lon_mesh.ravel())  # (n_lat * n_lon, C)
        np.savez(
            partial,
            lat=grid_lat,
            lon=grid_lon,
            species=np.array(classes, dtype=str),
            values=values.T.reshape(len(classes), *lat_mesh.shape).astype(np.float32),
        )
    write_json(prior, Path(out_dir) / PRIOR)
    return prior


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geocontrast.prior.fit", description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", type=Path, required=True, help="validated manifest (.parquet)")
    parser.add_argument("--splits", type=Path, required=True, help="splits (.parquet), manifest order")
    parser.add_argument("--label-fraction", type=float, required=True, help="percent: 10 uses labelled_10")
    parser.add_argument("--out-dir", type=Path, required=True, help=f"gets {PROBS}, {PRIOR} and {GRID}")
    parser.add_argument(
        "--params-json", type=json_object, default="{}", help="evaluate.geoprior settings as a JSON object"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--occurrences", type=Path, help="occurrence table (.csv/.parquet, Darwin Core) to train on too"
    )
    parser.add_argument("--oracle", type=Path, help="the synthetic world's oracle.npz: score the prior against it")
    # The matrices are small: one thread fitted the default world in 4.7 s, two took 35 s on 2 busy cores.
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    try:
        settings = PriorSettings.from_mapping(args.params_json)
    except ValueError as error:
        parser.error(str(error))

    import torch

    torch.set_num_threads(args.threads)
    try:
        prior = geoprior(
            args.manifest,
            args.splits,
            args.label_fraction,
            args.out_dir,
            settings,
            args.seed,
            args.occurrences,
            args.oracle,
        )
    except ValueError as error:
        print(f"geoprior: {error}", file=sys.stderr)
        return 1
    print(json.dumps({key: value for key, value in prior.items() if key not in ("classes", "range_auc")}))
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
