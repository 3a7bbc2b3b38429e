"""Negative tables: M candidate negatives per anchor under a geographic rule, plus the false-negative radius.

Rules: ``far`` draws uniformly among points beyond ``r_neg_km``, ``band`` among points between ``band_km[0]`` and
``band_km[1]``, ``random`` among all other points. Far negatives are the common case and most points qualify, so
candidates are drawn by rejection from all points instead of enumerating regions. Candidates are drawn
independently (with replacement): rows stay uniform even when a region holds fewer than M points.

Pretraining also masks geo-near items of a batch as false negatives: :func:`geo_near_mask` does that on the
batch's unit vectors with the table's ``false_negative_radius_km``, and :func:`false_negative_degrees` softens
it into weights.

CLI (called by the workflow's negative rule)::

    python -m geocontrast.geo.negatives --manifest manifest.parquet --out negatives.npz --summary summary.json \\
        --m 16 --rule far --r-neg-km 50 [--band-km 10 50] --seed 0 [--threads T]
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

import numpy as np

from geocontrast.cli import exit_without_teardown
from geocontrast.geo._common import encode_ids, manifest_coordinates, table_parser, write_table
from geocontrast.geo.coords import chord_to_km, km_to_chord, unit_vectors

RULES = ("far", "band", "random")
_RULE_CODE = {"far": 0, "band": 1, "random": 2}
# Draws per candidate before deciding the anchor's region is (practically) empty: a region holding 1 % of the
# points is missed with probability 0.99**1000 ~ 4e-5.
MAX_TRIES = 1000


@dataclass
class NegativeTable:
    """``candidates`` (N, M) int32 manifest rows; ``fallback[i]`` when row i fell back to random candidates.

    ``false_negative_radius_km``: in-batch items closer than this to an anchor are masked as false negatives.
    """

    candidates: np.ndarray
    fallback: np.ndarray
    false_negative_radius_km: float
    params: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """Counts a person checks: rows, candidates per row, rule, fallbacks."""
        return {
            "n_rows": int(self.candidates.shape[0]),
            "m": int(self.candidates.shape[1]),
            "n_fallback": int(self.fallback.sum()),
            "n_missing": int((self.candidates < 0).any(axis=1).sum()),
            "false_negative_radius_km": self.false_negative_radius_km,
            **self.params,
        }


def negative_table(
    lat,
    lon,
    m: int,
    rule: str,
    seed: int,
    r_neg_km: float = 50.0,
    band_km: tuple[float, float] | None = None,
    observation_id=None,
    false_negative_radius_km: float | None = None,
) -> NegativeTable:
    """Draw ``m`` negative candidates per row under ``rule`` ("far", "band" or "random").

    Never a photo of the anchor's own observation (rows without observation_id are their own observation).
    ``far`` and ``band`` candidates always have coordinates; rows without coordinates have no geography and get
    ``random`` candidates (not flagged). An anchor whose rule finds no candidate within :data:`MAX_TRIES` draws
    (its region is empty or nearly so) gets random candidates for the remaining slots and ``fallback`` True.
    -1 appears only when no other observation exists (e.g. N == 1).

    ``false_negative_radius_km`` defaults to the radius inside which the rule would not pick a negative:
    ``r_neg_km`` for far, ``band_km[0]`` for band, 0 (mask nothing) for random.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    if rule == "band":
        if band_km is None or not 0 <= band_km[0] < band_km[1]:
            raise ValueError(f"rule 'band' needs band_km=(r1, r2) with 0 <= r1 < r2, got {band_km}")
        lo_km, hi_km = float(band_km[0]), float(band_km[1])
    else:
        lo_km, hi_km = float(r_neg_km), np.inf
    if false_negative_radius_km is None:
        false_negative_radius_km = {"far": float(r_neg_km), "band": lo_km, "random": 0.0}[rule]

    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    n = lat.size
    has_coords = np.isfinite(lat) & np.isfinite(lon)
    obs = encode_ids(observation_id, n, missing_unique=True)
    # Rows sorted by observation, once over all rows and once over rows with coordinates: a uniform draw that
    # skips the anchor's own observation is then one index shift, no rejection needed.
    by_obs_all = np.argsort(obs, kind="stable")
    coord_rows = np.flatnonzero(has_coords)
    by_obs_coord = coord_rows[np.argsort(obs[coord_rows], kind="stable")]
    n_obs = int(obs.max(initial=-1)) + 1
    groups = np.arange(n_obs + 1)
    start_all = np.searchsorted(obs[by_obs_all], groups)
    start_coord = np.searchsorted(obs[by_obs_coord], groups)

    u = unit_vectors(np.where(has_coords, lat, 0.0), np.where(has_coords, lon, 0.0))
    lo_chord2 = float(km_to_chord(lo_km)) ** 2
    hi_chord2 = float(km_to_chord(hi_km)) ** 2 if np.isfinite(hi_km) else np.inf
    candidates = np.empty((n, m), dtype=np.int32)
    fallback = np.zeros(n, dtype=bool)
    from geocontrast.geo.kernels import draw_negatives, seed_key

    draw_negatives(
        u,
        has_coords,
        obs,
        by_obs_all.astype(np.int64),
        start_all,
        by_obs_coord.astype(np.int64),
        start_coord,
        _RULE_CODE[rule],
        lo_chord2,
        hi_chord2,
        seed_key(seed),
        MAX_TRIES,
        candidates,
        fallback,
    )
    params = {
        "rule": rule,
        "seed": int(seed),
        "r_neg_km": float(r_neg_km),
        "band_km": [lo_km, hi_km] if rule == "band" else None,
    }
    return NegativeTable(candidates, fallback, float(false_negative_radius_km), params)


def geo_near_mask(unit_a, unit_b, radius_km: float):
    """Boolean (len(a), len(b)) matrix: True where a and b are within ``radius_km`` (great circle, inclusive).

    Works on numpy arrays and on torch tensors (same operators); the difference form keeps precision for radii
    of metres, where ``2 - 2 a·b`` would cancel.
    """
    chord2 = float(km_to_chord(radius_km)) ** 2
    diff = unit_a[:, None, :] - unit_b[None, :, :]
    return (diff * diff).sum(-1) <= chord2


def false_negative_degrees(unit_a, unit_b, radius_km: float, near_weight: float = 0.0, scale_km: float | None = None):
    """Float (len(a), len(b)) matrix in [0, 1]: how much b is a likely false negative of a, the share of its
    denominator weight a contrastive loss takes away (:class:`geocontrast.losses.NTXentLoss`).

    0 beyond ``radius_km`` (and for rows without coordinates). Within it ``1 - near_weight`` (``near_weight`` 0:
    the hard geo-near mask; 1: no mask), or, with ``scale_km``, ``(1 - near_weight) * exp(-d / scale_km)``: the
    discount fades with the great-circle distance d, as the chance of sharing the species does.
    """
    if not 0.0 <= near_weight <= 1.0:
        raise ValueError(f"near_weight must be in [0, 1], got {near_weight}")
    near = geo_near_mask(unit_a, unit_b, radius_km)
    degrees = np.where(near, 1.0 - near_weight, 0.0)
    if scale_km is not None:
        if not scale_km > 0:
            raise ValueError(f"scale_km must be > 0 (or None: no fading within the radius), got {scale_km}")
        chord = np.sqrt(((unit_a[:, None, :] - unit_b[None, :, :]) ** 2).sum(-1))  # NaN without coordinates
        degrees = degrees * np.exp(-np.nan_to_num(chord_to_km(chord)) / scale_km)
    return degrees


def save_negative_table(table: NegativeTable, path) -> None:
    """Write the table, its fallback flags, false-negative radius and parameters to an .npz file."""
    np.savez(
        path,
        candidates=table.candidates,
        fallback=table.fallback,
        false_negative_radius_km=np.float64(table.false_negative_radius_km),
        params=np.array(json.dumps(table.params)),
    )


def load_negative_table(path) -> NegativeTable:
    """Read a table written by :func:`save_negative_table`."""
    with np.load(path, allow_pickle=False) as data:
        return NegativeTable(
            candidates=data["candidates"],
            fallback=data["fallback"],
            false_negative_radius_km=float(data["false_negative_radius_km"]),
            params=json.loads(str(data["params"])),
        )


def main(argv: list[str] | None = None) -> int:
    parser = table_parser("python -m geocontrast.geo.negatives", __doc__.split("\n")[0], "negative table")
    parser.add_argument("--m", type=int, required=True, help="candidates per anchor")
    parser.add_argument("--rule", choices=RULES, required=True)
    parser.add_argument("--r-neg-km", type=float, default=50.0)
    parser.add_argument("--band-km", type=float, nargs=2, default=None, metavar=("R1", "R2"))
    parser.add_argument("--false-negative-radius-km", type=float, default=None)
    args = parser.parse_args(argv)

    if args.threads:
        import numba

        numba.set_num_threads(args.threads)
    manifest, lat, lon = manifest_coordinates(args.manifest)
    try:
        table = negative_table(
            lat,
            lon,
            m=args.m,
            rule=args.rule,
            seed=args.seed,
            r_neg_km=args.r_neg_km,
            band_km=tuple(args.band_km) if args.band_km else None,
            observation_id=manifest["observation_id"],
            false_negative_radius_km=args.false_negative_radius_km,
        )
    except ValueError as error:
        print(f"{args.manifest}: {error}", file=sys.stderr)
        return 1
    write_table(save_negative_table, table, args.out, args.summary)
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
