"""Neighbour tables: up to K geographic positives per anchor, sampled uniformly from a great-circle ball.

The K nearest points are not a uniform sample of the ball (on iNaturalist they are mostly one observer at one
spot), and full radius lists grow ~N² on clustered data, so the ball is sampled without being enumerated: unit
vectors are bucketed into cubic cells of side >= chord(r) and sorted by cell; all anchors of a cell share the
pool of points in the 3×3×3 block around it, which contains every ball. For each anchor a partial Fisher–Yates
shuffle of the pool draws candidates without replacement and keeps those inside the ball and eligible, so the
kept ones are a uniform sample of the eligible ball. When too many draws are rejected (the ball is small next to
its pool) the rest of the pool is enumerated once and sampled exactly. Cost grows with N·K plus the pools, not
with the number of pairs. The table's file format is in docs/architecture.md (data contracts).

CLI (called by the workflow's neighbour rule)::

    python -m geocontrast.geo.neighbours --manifest manifest.parquet --out r5_k64.npz --summary summary.json \\
        --radius-km 5 --k 64 --seed 0 [--exclude-same-observer] [--min-km 0] [--fallback self|nearest] \\
        [--memory-budget-gb 4] [--threads T]
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

import numpy as np

from geocontrast.cli import exit_without_teardown
from geocontrast.geo._common import encode_ids, manifest_coordinates, table_parser, write_table
from geocontrast.geo.coords import chord_to_km, km_to_chord, unit_vectors

FALLBACKS = ("self", "nearest")
# Cells never smaller than this, so the int64 cell key (nc³ with nc ~ 2/side) cannot overflow; larger cells
# only make pools bigger, never wrong.
_MIN_CELL_SIDE = 2.0**-19
# Rejected draws allowed per anchor before enumerating the rest of its pool: 4K + 32 keeps rejection sampling
# for balls filling >~20 % of their pool (uniform density fills ~35 %), and enumerates for sparser ones.
_REJECTION_FACTOR = 4
_REJECTION_SLACK = 32
# Work units handed to threads; enough that one dense cluster does not leave a core idle.
_N_CHUNKS = 256
# Bytes per point besides the output: unit vectors and their sorted copy, keys, order, ids, counts.
_BYTES_PER_POINT = 128
# Bytes per pool slot in each thread's buffers: vector, two ids, row, permutation, enumeration list.
_BYTES_PER_POOL_SLOT = 56


@dataclass
class NeighbourTable:
    """CSR table of positives: row i's neighbours are ``indices[indptr[i]:indptr[i+1]]`` (manifest rows).

    ``fallback[i]`` is True for anchors with coordinates but no eligible neighbour within the radius (with
    fallback "nearest" their row holds the nearest eligible point beyond it). ``params`` records how the table
    was built.
    """

    indptr: np.ndarray
    indices: np.ndarray
    dist_km: np.ndarray
    fallback: np.ndarray
    has_coords: np.ndarray
    params: dict = field(default_factory=dict)

    def counts(self) -> np.ndarray:
        """Number of neighbours per row."""
        return np.diff(self.indptr)

    def summary(self) -> dict:
        """Counts a person checks: anchors, rows without coordinates, fallbacks by outcome (``n_fallback_self``:
        no eligible neighbour anywhere or fallback "self", so pretraining uses the anchor itself;
        ``n_fallback_nearest``: the nearest eligible photo beyond the radius), neighbour-count percentiles.
        Pretraining adds a third cause per job, anchors whose neighbours all lie outside the pairs' split
        (``pairs.json``)."""
        counts = self.counts()[self.has_coords]
        percentiles = np.percentile(counts, [0, 5, 50, 95, 100]) if counts.size else np.zeros(5)
        nearest = self.fallback & (self.counts() > 0)
        return {
            "n_rows": int(self.indptr.size - 1),
            "n_anchors": int(self.has_coords.sum()),
            "n_without_coords": int((~self.has_coords).sum()),
            "n_fallback": int(self.fallback.sum()),
            "n_fallback_self": int((self.fallback & ~nearest).sum()),
            "n_fallback_nearest": int(nearest.sum()),
            "n_pairs": int(self.indices.size),
            **{f"neighbours_p{p}": float(v) for p, v in zip((0, 5, 50, 95, 100), percentiles)},
            "radius_km": self.params.get("radius_km"),
            "k": self.params.get("k"),
        }


def neighbour_table(
    lat,
    lon,
    radius_km: float,
    k: int,
    seed: int,
    observation_id=None,
    observer_id=None,
    exclude_same_observer: bool = False,
    min_km: float = 0.0,
    fallback: str = "self",
    memory_budget_gb: float = 4.0,
) -> NeighbourTable:
    """Sample up to ``k`` positives per anchor uniformly from its ball of great-circle radius ``radius_km``.

    Eligible neighbours of an anchor: rows with coordinates within ``radius_km`` (inclusive) and at least
    ``min_km`` away, never the anchor's own observation (which includes the anchor itself; rows without
    observation_id are their own observation), and never its observer when ``exclude_same_observer`` (a
    missing observer_id matches nobody). A ball with <= k eligible points is taken whole. Rows with NaN
    coordinates are neither anchors nor neighbours: empty rows, not flagged. Anchors with no eligible
    neighbour get ``fallback`` True and, with ``fallback="nearest"``, the single nearest eligible point.

    The sample depends only on the data and ``seed`` (not on numba's thread count). Raises ValueError, naming
    ``neighbours.memory_budget_gb``, when the estimated peak memory exceeds ``memory_budget_gb``.
    """
    if not radius_km > 0:
        raise ValueError(f"radius_km must be > 0, got {radius_km}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    n = lat.size
    has_coords = np.isfinite(lat) & np.isfinite(lon)
    rows = np.flatnonzero(has_coords)
    n_valid = rows.size
    params = {
        "radius_km": float(radius_km),
        "k": int(k),
        "seed": int(seed),
        "exclude_same_observer": bool(exclude_same_observer),
        "min_km": float(min_km),
        "fallback": fallback,
    }
    if n_valid == 0:  # no row has coordinates: every row empty (pretraining falls back to the anchor itself)
        empty = np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
        return NeighbourTable(np.zeros(n + 1, dtype=np.int64), *empty, np.zeros(n, dtype=bool), has_coords, params)

    import numba

    from geocontrast.geo.kernels import compact_rows, pool_sizes, sample_neighbours, seed_key

    output_bytes = n_valid * k * 8  # int32 index + float32 distance per slot
    _check_budget(output_bytes + n * _BYTES_PER_POINT, memory_budget_gb)

    obs = encode_ids(observation_id, n, missing_unique=True)[rows]
    observer = encode_ids(observer_id, n, missing_unique=False)[rows]
    u = unit_vectors(lat[rows], lon[rows])
    chord = float(km_to_chord(radius_km))
    side = max(chord, _MIN_CELL_SIDE)
    n_side = int(2.0 / side) + 2
    cell = np.floor((u + 1.0) / side).astype(np.int64)
    keys = (cell[:, 0] * n_side + cell[:, 1]) * n_side + cell[:, 2]
    del cell
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    cell_keys = keys[first]
    cell_start = np.r_[first, n_valid].astype(np.int64)
    del keys

    pool_size = pool_sizes(cell_keys, cell_start, n_side)
    chunks = _chunk_bounds(pool_size, np.diff(cell_start), k)
    max_pool = int(pool_size.max(initial=0))
    _check_budget(
        output_bytes + n * _BYTES_PER_POINT + numba.get_num_threads() * max_pool * _BYTES_PER_POOL_SLOT,
        memory_budget_gb,
    )

    slots = np.empty(n_valid * k, dtype=np.int32)  # positions among rows, row-major with stride k
    dist_km = np.empty(n_valid * k, dtype=np.float32)
    counts = np.zeros(n_valid, dtype=np.int64)
    sample_neighbours(
        np.ascontiguousarray(u[order]),
        obs[order],
        observer[order],
        order.astype(np.int64),
        cell_keys,
        cell_start,
        n_side,
        chunks,
        pool_size,
        chord * chord,
        float(km_to_chord(min_km)) ** 2 if min_km > 0 else -1.0,
        k,
        _REJECTION_FACTOR * k + _REJECTION_SLACK,
        seed_key(seed),
        bool(exclude_same_observer),
        slots,
        dist_km,
        counts,
    )
    flagged = counts == 0
    if fallback == "nearest" and flagged.any():
        _nearest_eligible(
            u, obs, observer, np.flatnonzero(flagged), exclude_same_observer, min_km, k, slots, dist_km, counts
        )

    # In place, so the peak stays at the stride-k buffers; copy only when that frees a lot.
    nnz = compact_rows(slots, dist_km, counts, k, rows.astype(np.int32))
    indices, dist_km = slots[:nnz], dist_km[:nnz]
    if nnz < slots.size // 2:
        indices, dist_km = indices.copy(), dist_km.copy()
    indptr = np.zeros(n + 1, dtype=np.int64)
    indptr[1:][rows] = counts
    np.cumsum(indptr, out=indptr)
    fallback_flag = np.zeros(n, dtype=bool)
    fallback_flag[rows[flagged]] = True
    return NeighbourTable(indptr, indices, dist_km, fallback_flag, has_coords, params)


def save_neighbour_table(table: NeighbourTable, path) -> None:
    """Write the table and its parameters to an .npz file."""
    np.savez(
        path,
        indptr=table.indptr,
        indices=table.indices,
        dist_km=table.dist_km,
        fallback=table.fallback,
        has_coords=table.has_coords,
        params=np.array(json.dumps(table.params)),
    )


def load_neighbour_table(path) -> NeighbourTable:
    """Read a table written by :func:`save_neighbour_table`."""
    with np.load(path, allow_pickle=False) as data:
        return NeighbourTable(
            indptr=data["indptr"],
            indices=data["indices"],
            dist_km=data["dist_km"],
            fallback=data["fallback"],
            has_coords=data["has_coords"],
            params=json.loads(str(data["params"])),
        )


def _check_budget(estimate_bytes: float, budget_gb: float) -> None:
    estimate_gb = estimate_bytes / 2**30
    if estimate_gb > budget_gb:
        raise ValueError(
            f"neighbour table needs about {estimate_gb:.2f} GB, over neighbours.memory_budget_gb={budget_gb}; "
            "raise neighbours.memory_budget_gb or lower k"
        )


def _chunk_bounds(pool_size: np.ndarray, n_anchors: np.ndarray, k: int) -> np.ndarray:
    """Split the cells into runs of about equal work (pool gathering plus draws), as thread work units."""
    work = np.cumsum(pool_size + n_anchors * (k + _REJECTION_SLACK), dtype=np.float64)
    if work.size == 0:
        return np.zeros(1, dtype=np.int64)
    cuts = np.searchsorted(work, np.linspace(0, work[-1], _N_CHUNKS + 1)[1:-1], side="right")
    return np.unique(np.r_[0, cuts, work.size]).astype(np.int64)


def _nearest_eligible(u, obs, observer, anchors, exclude_same_observer, min_km, k, slots, dist_km, counts):
    """Give each anchor in ``anchors`` its single nearest eligible point (all lie beyond the radius)."""
    from scipy.spatial import cKDTree

    tree = cKDTree(u)
    min_chord = float(km_to_chord(min_km)) if min_km > 0 else -1.0
    pending = anchors
    n_query = 8
    while pending.size:
        n_query = min(n_query, u.shape[0])
        d, j = tree.query(u[pending], k=n_query)
        d = d.reshape(pending.size, n_query)
        j = j.reshape(pending.size, n_query)
        ok = (obs[j] != obs[pending, None]) & (d >= min_chord)
        if exclude_same_observer:
            ok &= (observer[pending, None] < 0) | (observer[j] != observer[pending, None])
        hit = ok.any(axis=1)
        first = ok.argmax(axis=1)
        resolved = pending[hit]
        slots[resolved * k] = j[hit, first[hit]]
        dist_km[resolved * k] = chord_to_km(d[hit, first[hit]])
        counts[resolved] = 1
        if n_query == u.shape[0]:
            break  # the rest have no eligible point anywhere
        pending = pending[~hit]
        n_query *= 8


def main(argv: list[str] | None = None) -> int:
    parser = table_parser("python -m geocontrast.geo.neighbours", __doc__.split("\n")[0], "neighbour table")
    parser.add_argument("--radius-km", type=float, required=True)
    parser.add_argument("--k", type=int, required=True)
    parser.add_argument("--exclude-same-observer", action="store_true")
    parser.add_argument("--min-km", type=float, default=0.0)
    parser.add_argument("--fallback", choices=FALLBACKS, default="self")
    parser.add_argument("--memory-budget-gb", type=float, default=4.0)
    args = parser.parse_args(argv)

    if args.threads:
        import numba

        numba.set_num_threads(args.threads)
    manifest, lat, lon = manifest_coordinates(args.manifest)
    try:
        table = neighbour_table(
            lat,
            lon,
            radius_km=args.radius_km,
            k=args.k,
            seed=args.seed,
            observation_id=manifest["observation_id"],
            observer_id=manifest["observer_id"],
            exclude_same_observer=args.exclude_same_observer,
            min_km=args.min_km,
            fallback=args.fallback,
            memory_budget_gb=args.memory_budget_gb,
        )
    except ValueError as error:
        print(f"{args.manifest}: {error}", file=sys.stderr)
        return 1
    write_table(save_neighbour_table, table, args.out, args.summary)
    if not table.has_coords.any():
        print(f"{args.manifest}: no row has coordinates: every row of the table is empty", file=sys.stderr)
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
