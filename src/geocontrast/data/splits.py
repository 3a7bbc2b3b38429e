"""The splits contract: train/val/test and nested label budgets, written once for every strategy (docs/architecture.md).

Splits are made at observation level (all photos of one observation share a split, so the same plant never sits
in train and test; the observations of near-duplicate photos are split as one, so neither does a copy) in one of
three modes: ``random`` (stratified by species), ``spatial`` (whole equal-area blocks) or ``date`` (earliest
observations to train). Label budgets are nested subsets of the labelled train
images, stratified by species: ``labelled_1`` ⊂ ``labelled_10`` ⊂ ``labelled_100``.

Shuffles use a keyed hash of each observation's (or image's) id instead of a global permutation: the same seed
gives the same order, and one row's place does not move when unrelated rows are added or removed.

CLI (called by the workflow's splits rule)::

    python -m geocontrast.data.splits --manifest manifest.parquet --out splits.parquet --summary splits.json \\
        --mode random --fractions 0.7 0.1 0.2 --label-fractions 0.01 0.1 1.0 --seed 0 --block-km 50 \\
        [--near-duplicates near_duplicates.parquet]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pyproj import Transformer

from geocontrast.atomic import atomic_path, write_json
from geocontrast.cli import exit_without_teardown
from geocontrast.data.manifest import read_manifest

SPLITS = ("train", "val", "test")
MODES = ("random", "spatial", "date")
# When largest-remainder rounding ties, and for species with very few observations: train, then test, then val.
TIE_PRIORITY = np.array([0, 2, 1])  # indexed like SPLITS
TRAIN, VAL, TEST = range(3)
# EPSG:6933 (WGS 84 / NSIDC EASE-Grid 2.0 Global) is equal-area and global, so the block grid is fixed
# and does not depend on which rows are present.
_TO_EQUAL_AREA = Transformer.from_crs("EPSG:4326", "EPSG:6933", always_xy=True)
_BLOCK_OFFSET = 2**30


class SplitError(ValueError):
    """The collection cannot be split as asked (a spatial split without enough located blocks); the message says
    why and what to change."""


def labelled_column(fraction: float) -> str:
    """Column name of a label budget: 0.1 -> 'labelled_10', 0.01 -> 'labelled_1', 0.005 -> 'labelled_0.5'."""
    return f"labelled_{round(fraction * 100, 6):g}"


def spatial_blocks(lat: np.ndarray, lon: np.ndarray, block_km: float) -> np.ndarray:
    """Id (int64) of the block_km × block_km equal-area block holding each point; -1 where lat or lon is missing."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    has_coords = ~(np.isnan(lat) | np.isnan(lon))
    x, y = _TO_EQUAL_AREA.transform(lon[has_coords], lat[has_coords])
    block_m = block_km * 1000.0
    column = np.floor(np.asarray(x) / block_m).astype(np.int64) + _BLOCK_OFFSET
    row = np.floor(np.asarray(y) / block_m).astype(np.int64) + _BLOCK_OFFSET
    blocks = np.full(lat.shape, -1, dtype=np.int64)
    blocks[has_coords] = (column << 31) | row
    return blocks


def make_splits(
    manifest: pd.DataFrame,
    mode: str = "random",
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    label_fractions: Sequence[float] = (0.01, 0.1, 1.0),
    seed: int = 0,
    block_km: float = 50.0,
    min_labelled_per_species: int = 1,
    near_duplicate_group: np.ndarray | None = None,
) -> pd.DataFrame:
    """Assign every manifest row to train/val/test and choose the nested labelled subsets of train.

    Args:
        manifest: validated manifest (image_id, observation_id, species; lat/lon for spatial; observed_on for date).
            A null observation_id makes the image its own observation.
        mode: 'random' stratifies by species: each species' observations are shuffled and divided by
            ``fractions`` with largest-remainder rounding (ties go to train, then test, then val).
            'spatial' assigns whole ``block_km`` blocks, shuffled, greedily to the split furthest below its
            share of images; observations without coordinates go to train. :class:`SplitError` when a split
            with a share would get no labelled observation (no coordinates, or all in too few blocks).
            'date' orders observations by their earliest observed_on: the earliest images fill train, then
            val, then test; observations without a date go to train.
        fractions: shares of (train, val, test), each >= 0, summing to 1.
        label_fractions: label budgets in (0, 1]; each gives a boolean column ``labelled_{pct:g}``.
        seed: fixes every shuffle.
        block_km: side of the spatial blocks in km (spatial mode only).
        min_labelled_per_species: each train species keeps at least this many labelled images (or all it has).
        near_duplicate_group: (N,) group of each row among near-duplicate photos, -1 for none
            (:mod:`geocontrast.data.near_duplicates`): the observations of a group are split as one, as if they
            were one observation. None, or no group, leaves every split as without it.

    Observations whose photos all lack a species go to train and are never labelled. An observation with any
    labelled photo is split as one unit, stratified by its first labelled photo's species.

    Returns:
        A frame in manifest row order: image_id, split, and one boolean column per label fraction.
    """
    _check_arguments(manifest, mode, fractions, label_fractions, block_km, min_labelled_per_species)
    fractions = np.asarray(fractions, dtype=np.float64)
    observations = _observation_table(manifest, seed, near_duplicate_group)
    if mode == "random":
        observation_split = _random_split(observations, fractions)
    elif mode == "spatial":
        blocks = spatial_blocks(manifest["lat"], manifest["lon"], block_km)
        observation_block = observations.first(pd.Series(blocks, dtype="Int64").where(blocks >= 0)).fillna(-1)
        observation_block = observation_block.to_numpy(np.int64)
        observation_split = _spatial_split(observations, observation_block, fractions, seed)
        _check_spatial_split(observations, observation_block, observation_split, fractions, block_km)
    else:
        observation_date = observations.earliest(manifest["observed_on"])
        observation_split = _date_split(observations, observation_date.to_numpy(), fractions)

    split = observation_split[observations.row_observation]
    labelled_train = (split == TRAIN) & manifest["species"].notna().to_numpy()
    splits = pd.DataFrame({"image_id": manifest["image_id"].to_numpy(), "split": np.asarray(SPLITS)[split]})
    budgets = _label_budgets(manifest, labelled_train, label_fractions, seed, min_labelled_per_species)
    for fraction in label_fractions:
        splits[labelled_column(fraction)] = budgets[fraction]
    return splits


def summarise_splits(splits: pd.DataFrame, manifest: pd.DataFrame) -> dict:
    """Images, observations and species per split, and labelled images and species per label budget."""
    species = manifest["species"].to_numpy()
    observation_id = manifest["observation_id"]
    summary: dict = {"splits": {}, "label_budgets": {}}
    for name in SPLITS:
        rows = (splits["split"] == name).to_numpy()
        summary["splits"][name] = {
            "n_images": int(rows.sum()),
            # An image without observation_id is its own observation.
            "n_observations": int(observation_id[rows].nunique() + observation_id[rows].isna().sum()),
            "n_species": int(pd.Series(species[rows]).nunique()),
        }
    for column in (c for c in splits.columns if c.startswith("labelled_")):
        rows = splits[column].to_numpy()
        summary["label_budgets"][column] = {
            "n_images": int(rows.sum()),
            "n_species": int(pd.Series(species[rows]).nunique()),
        }
    return summary


def read_near_duplicate_groups(path: Path, manifest: pd.DataFrame) -> np.ndarray:
    """The near-duplicate group of each manifest row from the manifest rule's table, checked to be in its order."""
    table = pd.read_parquet(path, columns=["image_id", "near_duplicate_group"])
    if not np.array_equal(table["image_id"].to_numpy(str), manifest["image_id"].to_numpy(str)):
        raise ValueError(f"{path}: image ids differ from the manifest's (written by another manifest run?)")
    return table["near_duplicate_group"].to_numpy(np.int64)


def summarise_near_duplicates(splits: pd.DataFrame, group: np.ndarray) -> dict:
    """Groups, the photos in them, and how many groups straddle splits (0 by construction)."""
    grouped = group >= 0
    per_group = pd.Series(splits["split"].to_numpy()[grouped]).groupby(group[grouped]).nunique()
    return {
        "n_groups": int(per_group.size),
        "n_photos": int(grouped.sum()),
        "n_groups_across_splits": int((per_group > 1).sum()),
    }


def _check_arguments(manifest, mode, fractions, label_fractions, block_km, min_labelled_per_species) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(
            f"fractions must be three shares (train, val, test), each >= 0, summing to 1; got {tuple(fractions)}"
        )
    if not label_fractions or not all(0 < f <= 1 for f in label_fractions):
        raise ValueError(f"label_fractions must each be in (0, 1]; got {tuple(label_fractions)}")
    if len({labelled_column(f) for f in label_fractions}) != len(label_fractions):
        raise ValueError(f"label_fractions must be distinct; got {tuple(label_fractions)}")
    if mode == "spatial" and not block_km > 0:
        raise ValueError(f"block_km must be positive, got {block_km}")
    if min_labelled_per_species < 0:
        raise ValueError(f"min_labelled_per_species must be >= 0, got {min_labelled_per_species}")
    by_mode = {"spatial": ["lat", "lon"], "date": ["observed_on"]}
    needed = ["image_id", "observation_id", "species", *by_mode.get(mode, [])]
    missing = [c for c in needed if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest is missing columns needed for {mode} splits: {', '.join(missing)}")


@dataclass(frozen=True)
class _Observations:
    """Observation-level view of the manifest, which every split mode divides."""

    row_observation: np.ndarray  # (n_rows,) observation index of each manifest row
    species: np.ndarray  # (n_observations,) species of the first labelled photo; None when no photo is labelled
    n_images: np.ndarray  # (n_observations,)
    key: np.ndarray  # (n_observations,) seeded shuffle key

    @property
    def labelled(self) -> np.ndarray:
        return pd.notna(self.species)

    def first(self, values: pd.Series) -> pd.Series:
        """Per observation, the first non-missing value among its rows."""
        return _per_observation(values, self.row_observation).first()

    def earliest(self, values: pd.Series) -> pd.Series:
        return _per_observation(values, self.row_observation).min()


def _per_observation(values: pd.Series, row_observation: np.ndarray):
    return pd.Series(values.to_numpy()).groupby(row_observation)


def _observation_table(manifest: pd.DataFrame, seed: int, near_duplicate_group=None) -> _Observations:
    observation_id = manifest["observation_id"]
    row_observation, _ = pd.factorize(observation_id)
    no_id = row_observation < 0
    row_observation[no_id] = row_observation.max(initial=-1) + 1 + np.arange(no_id.sum())
    if near_duplicate_group is not None and (np.asarray(near_duplicate_group) >= 0).any():
        row_observation = _join_near_duplicates(row_observation, np.asarray(near_duplicate_group))
    # An image without observation_id is its own observation, shuffled by its image_id.
    names = observation_id.astype(object).where(~no_id, manifest["image_id"].astype(object))
    species = _per_observation(manifest["species"], row_observation).first()
    return _Observations(
        row_observation=row_observation,
        species=species.astype(object).where(species.notna(), None).to_numpy(),
        n_images=np.bincount(row_observation),
        key=_seeded_keys(_per_observation(names, row_observation).first(), seed, "split"),
    )


def _join_near_duplicates(row_observation: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Row observations renumbered so that the observations holding photos of one near-duplicate group are one."""
    parent = np.arange(row_observation.max(initial=-1) + 1)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    grouped = np.flatnonzero(group >= 0)
    first_observation: dict[int, int] = {}
    for row in grouped.tolist():
        observation = int(row_observation[row])
        other = first_observation.setdefault(int(group[row]), observation)
        a, b = root(observation), root(other)
        if a != b:
            parent[max(a, b)] = min(a, b)
    roots = np.array([root(i) for i in range(parent.size)], dtype=np.int64)
    joined, _ = pd.factorize(roots[row_observation])
    return joined


def _random_split(observations: _Observations, fractions: np.ndarray) -> np.ndarray:
    """Each species' observations, in seeded order, cut into train/val/test by largest-remainder counts."""
    split = np.full(observations.species.shape, TRAIN)
    labelled = np.flatnonzero(observations.labelled)
    species, _ = pd.factorize(observations.species[labelled])
    order = np.lexsort((observations.key[labelled], species))
    n_per_species = np.bincount(species)
    rank = np.arange(order.size) - (np.cumsum(n_per_species) - n_per_species)[species[order]]
    counts = _largest_remainder(n_per_species, fractions)[species[order]]  # (n_labelled, 3)
    split[labelled[order]] = np.where(
        rank < counts[:, TRAIN], TRAIN, np.where(rank < counts[:, TRAIN] + counts[:, VAL], VAL, TEST)
    )
    return split


def _largest_remainder(totals: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """(n_species, 3) whole counts summing to each total, as close to total · fraction as rounding allows."""
    quotas = totals[:, None] * fractions[None, :]
    counts = np.floor(quotas + 1e-9).astype(np.int64)
    remainders = np.round(quotas - counts, 9)  # rounded so float noise cannot break a tie
    preference = np.lexsort((np.broadcast_to(TIE_PRIORITY, quotas.shape), -remainders), axis=-1)
    place = np.argsort(preference, axis=-1)  # 0 for the split that gets the first leftover seat
    return counts + (place < (totals - counts.sum(axis=1))[:, None])


def _spatial_split(
    observations: _Observations, observation_block: np.ndarray, fractions: np.ndarray, seed: int
) -> np.ndarray:
    """Whole blocks, in seeded order, each to the split furthest below its share of the labelled images."""
    split = np.full(observation_block.shape, TRAIN)
    placed = observations.labelled & (observation_block >= 0)
    blocks, block_of_observation = np.unique(observation_block[placed], return_inverse=True)
    block_images = np.bincount(block_of_observation, weights=observations.n_images[placed], minlength=blocks.size)
    target = fractions * block_images.sum()
    filled = np.zeros(3)
    block_split = np.empty(blocks.size, dtype=np.int64)
    for block in np.argsort(_seeded_keys(pd.Series(blocks.astype(str)), seed, "block"), kind="stable"):
        block_split[block] = np.argmax(target - filled)
        filled[block_split[block]] += block_images[block]
    split[placed] = block_split[block_of_observation]
    return split


def _check_spatial_split(
    observations: _Observations, observation_block: np.ndarray, split: np.ndarray, fractions, block_km: float
) -> None:
    """Raise :class:`SplitError` when a split with a share gets no labelled observation: a spatial split needs
    labelled photos with coordinates in at least as many blocks as there are splits to fill. Falling back to a
    random split instead would label the results spatial while they measure something else."""
    labelled = observations.labelled
    empty = [name for i, name in enumerate(SPLITS) if fractions[i] > 0 and not (labelled & (split == i)).any()]
    if not empty:
        return
    located = labelled & (observation_block >= 0)
    advice = "use splits.mode random (or date)"
    if not located.any():
        raise SplitError(
            f"splits.mode spatial needs coordinates, and none of the {int(labelled.sum())} labelled observations "
            f"has them (they would all go to train, leaving {' and '.join(empty)} empty): {advice}"
        )
    n_blocks = np.unique(observation_block[located]).size
    raise SplitError(
        f"splits.mode spatial: the {int(located.sum())} labelled observations with coordinates lie in "
        f"{n_blocks} block(s) of {block_km:g} km, too few to fill train, val and test ({' and '.join(empty)} "
        f"would be empty): lower splits.block_km or {advice}"
    )


def _date_split(observations: _Observations, observation_date: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Labelled observations by date: the earliest images fill train, then val, then test."""
    split = np.full(observation_date.shape, TRAIN)
    dated = np.flatnonzero(observations.labelled & ~np.isnat(observation_date))
    order = dated[np.lexsort((observations.key[dated], observation_date[dated].astype(np.int64)))]
    images = observations.n_images[order]
    # Place each observation by the middle of its images on the cumulative time line.
    middle = (np.cumsum(images) - images / 2) / images.sum() if order.size else np.empty(0)
    split[order] = np.searchsorted(np.cumsum(fractions)[:2], middle, side="right")
    return split


def _label_budgets(manifest, labelled_train, label_fractions, seed, min_labelled_per_species) -> dict:
    """Nested labelled subsets of the labelled train images: per species, prefixes of one seeded permutation."""
    rows = np.flatnonzero(labelled_train)
    species, _ = pd.factorize(manifest["species"].to_numpy()[rows])
    order = np.lexsort((_seeded_keys(manifest["image_id"].iloc[rows], seed, "label"), species))
    n_per_species = np.bincount(species)
    rank = np.empty(rows.size, dtype=np.int64)
    rank[order] = np.arange(order.size) - (np.cumsum(n_per_species) - n_per_species)[species[order]]

    budgets = {}
    for fraction in label_fractions:
        # Prefix lengths grow with the fraction (half-up rounding, floor, cap), so the subsets nest.
        wanted = np.maximum(np.floor(fraction * n_per_species + 0.5 + 1e-9), min_labelled_per_species)
        prefix = np.minimum(wanted, n_per_species)
        budget = np.zeros(len(manifest), dtype=bool)
        budget[rows] = rank < prefix[species]
        budgets[fraction] = budget
    return budgets


def stratified_share(image_ids, species, fraction: float) -> np.ndarray:
    """Sorted positions of round(``fraction`` · n) of n rows (at least one), stratified by ``species`` (n,).

    Within each species the rows take a seeded order; row r of a species of n_s rows has priority (r + ½) / n_s and
    the rows of smallest priority are kept (Sainte-Laguë apportionment: every species gets its share of the rows,
    up to rounding), ties in a seeded order. The seed is fixed by the rows themselves (their image ids), so the
    same rows always give the same draw, another replicate's rows an independent one, and a smaller fraction keeps
    a subset of a larger one's rows.
    """
    ids = pd.Series(np.asarray(image_ids)).astype(str)
    n = len(ids)
    total = min(n, max(1, int(np.floor(float(fraction) * n + 0.5))))
    rows_seed = hashlib.blake2b("\n".join(sorted(ids)).encode(), digest_size=8).hexdigest()
    keys = _seeded_keys(ids, rows_seed, "share")
    codes, _ = pd.factorize(pd.Series(np.asarray(species, dtype=object)))
    n_per_species = np.bincount(codes, minlength=1)
    order = np.lexsort((keys, codes))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - (np.cumsum(n_per_species) - n_per_species)[codes[order]]
    priority = (rank + 0.5) / n_per_species[codes]
    return np.sort(np.lexsort((keys, priority))[:total])


def _seeded_keys(names: pd.Series, seed: int | str, purpose: str) -> np.ndarray:
    """A pseudo-random uint64 per name, fixed by (seed, purpose); sorting by it shuffles."""
    hash_key = hashlib.blake2b(f"{purpose}:{seed}".encode(), digest_size=8).hexdigest()
    return pd.util.hash_array(names.astype(object).to_numpy(), hash_key=hash_key, categorize=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geocontrast.data.splits", description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", type=Path, required=True, help="validated manifest (.parquet)")
    parser.add_argument("--out", type=Path, required=True, help="splits table (.parquet)")
    parser.add_argument("--summary", type=Path, required=True, help="counts per split and label budget (.json)")
    parser.add_argument("--mode", choices=MODES, default="random")
    parser.add_argument("--fractions", type=float, nargs=3, default=(0.7, 0.1, 0.2), metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--label-fractions", type=float, nargs="+", default=(0.01, 0.1, 1.0))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--block-km", type=float, default=50.0, help="side of spatial blocks in km (spatial mode)")
    parser.add_argument("--min-labelled-per-species", type=int, default=1)
    parser.add_argument(
        "--near-duplicates",
        type=Path,
        help="the manifest rule's near-duplicate table (.parquet): each group is split as one observation",
    )
    args = parser.parse_args(argv)

    manifest = read_manifest(args.manifest)
    group = read_near_duplicate_groups(args.near_duplicates, manifest) if args.near_duplicates else None
    try:
        splits = make_splits(
            manifest,
            args.mode,
            args.fractions,
            args.label_fractions,
            args.seed,
            args.block_km,
            args.min_labelled_per_species,
            group,
        )
    except ValueError as error:
        print(f"{args.manifest}: {error}", file=sys.stderr)
        return 1
    summary = {
        "mode": args.mode,
        "fractions": list(args.fractions),
        "label_fractions": list(args.label_fractions),
        "seed": args.seed,
        "block_km": args.block_km if args.mode == "spatial" else None,
        **summarise_splits(splits, manifest),
    }
    if group is not None:
        summary["near_duplicates"] = summarise_near_duplicates(splits, group)
    with atomic_path(args.out) as partial:
        splits.to_parquet(partial, index=False)
    write_json(summary, args.summary)
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
