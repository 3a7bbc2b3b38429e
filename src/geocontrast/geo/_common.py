"""Helpers shared by the neighbour and negative tables: id encoding, the CLIs' arguments, reading and writing.

Their random streams and loops are in :mod:`geocontrast.geo.kernels`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from geocontrast.atomic import atomic_path, write_json


def encode_ids(ids, n: int, missing_unique: bool) -> np.ndarray:
    """int64 codes of an id column; equal ids share a code.

    Missing ids get a fresh code per row when ``missing_unique`` (an image without observation_id is its own
    observation), else -1 (an unknown observer matches nobody). ``ids=None`` means all missing.
    """
    if ids is None:
        return np.arange(n, dtype=np.int64) if missing_unique else np.full(n, -1, dtype=np.int64)
    codes, _ = pd.factorize(pd.Series(ids).reset_index(drop=True))
    codes = codes.astype(np.int64)
    if len(codes) != n:
        raise ValueError(f"id column has {len(codes)} rows, coordinates have {n}")
    missing = codes < 0
    if missing_unique and missing.any():
        codes[missing] = codes.max(initial=-1) + 1 + np.arange(int(missing.sum()))
    return codes


def table_parser(prog: str, description: str, table: str) -> argparse.ArgumentParser:
    """The arguments every geo table CLI shares: manifest in, table and summary out, seed, threads."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--manifest", type=Path, required=True, help="validated manifest (.parquet)")
    parser.add_argument("--out", type=Path, required=True, help=f"{table} (.npz)")
    parser.add_argument("--summary", type=Path, required=True, help="summary counts (.json)")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--threads", type=int, default=None, help="numba threads (default: all cores)")
    return parser


def manifest_coordinates(path: Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The validated manifest and its lat, lon as float64 arrays, NaN where the row has no usable coordinates."""
    from geocontrast.data.manifest import read_manifest

    manifest = read_manifest(path)
    usable = manifest["has_coords"].to_numpy()
    lat = np.where(usable, manifest["lat"].to_numpy(dtype=np.float64, na_value=np.nan), np.nan)
    lon = np.where(usable, manifest["lon"].to_numpy(dtype=np.float64, na_value=np.nan), np.nan)
    return manifest, lat, lon


def write_table(save, table, out: Path, summary: Path) -> None:
    """Save a table with its save function (into a temporary file renamed on success, so an interrupted job
    leaves no half-written table), and its summary as JSON beside it."""
    with atomic_path(out) as partial:
        save(table, partial)
    write_json(table.summary(), summary)
