"""What the world knows that a model has to learn: the oracle P(species | place[, day]) and the occurrence records
its observation process makes without photos (the geographic prior's training data beyond the labelled photos).

The oracle is the observation process itself (:func:`~.observations.species_weights`): at a place and day the
observed species is drawn with probability abundance x suitability x flowering season, normalised over species
(with local aggregation too, averaged over the patches' populations, which a prior may learn beyond it);
without the day it is that probability averaged over the distribution of visit days
(:func:`~.observations.visit_day_probabilities`), which does not depend on the place. It reads the reported
coordinates, as a prior does.

CLI (the workflow's world_occurrences rule; regenerates the world without rendering)::

    python -m geocontrast.data.synthetic.truth --world-json '{...}' --out occurrences.csv
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...atomic import atomic_path
from ...cli import exit_without_teardown
from .landscape import Landscape
from .observations import (
    AGGREGATION_STREAM,
    OUT_OF_SEASON,
    season_weights,
    simulate_observations,
    species_weights,
    unseasonal_weights,
    visit_day_probabilities,
)

OCCURRENCE_STREAM = 3  # the occurrence records' own random stream: the photos' world is drawn before and unchanged
ORACLE_BLOCK_ELEMENTS = 1 << 21  # (row, species) cells of one block of the oracle: 16 MB a float64 copy


@dataclass(frozen=True)
class Truth:
    """The part of the world the oracle needs: suitability rasters on the landscape grid and the taxonomy."""

    landscape: Landscape
    suitability: np.ndarray  # (S, H, W), rows in taxonomy order
    taxonomy: pd.DataFrame  # species, abundance, flowering_peak_doy, flowering_width_days

    @classmethod
    def load(cls, truth_path: Path) -> Truth:
        """From a world folder's ``truth.npz`` and the ``taxonomy.parquet`` beside it."""
        truth = np.load(truth_path)
        land = Landscape(truth["lon"], truth["lat"], truth["elevation"], truth["moisture"], truth["land"])
        taxonomy = pd.read_parquet(Path(truth_path).with_name("taxonomy.parquet"))
        if list(taxonomy["species"]) != truth["species"].tolist():
            raise ValueError(f"{truth_path}: its species and taxonomy.parquet's differ")
        return cls(land, truth["suitability"], taxonomy)

    def class_order(self, classes: list[str]) -> np.ndarray:
        """Taxonomy row of each class name; raises naming the classes the world does not have."""
        row = {name: i for i, name in enumerate(self.taxonomy["species"])}
        unknown = [name for name in classes if name not in row]
        if unknown:
            raise ValueError(f"the world has no species {unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
        return np.array([row[name] for name in classes])


def oracle_probabilities(truth: Truth, classes: list[str], lat, lon, day_of_year=None) -> np.ndarray:
    """(N, C) the world's P(class | place) or, with ``day_of_year`` (N,), P(class | place, day), over ``classes``
    (species names, in the classifier's order; renormalised over them). Rows without coordinates, or without a day
    when days are given, are NaN. Computed a block of rows at a time (each row alone: the same numbers, up to the
    rounding of the matrix products without a day, which the BLAS may sum in another order for another block
    shape), so memory stays flat in the rows: each float64 (N, species) copy of the whole was 180 MB at 7,500 test
    photos of 3,000 species."""
    lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    days = None if day_of_year is None else np.asarray(day_of_year, dtype=float)
    order = truth.class_order(classes)
    probs = np.empty((lat.size, len(classes)))
    rows = max(1, ORACLE_BLOCK_ELEMENTS // len(truth.taxonomy))
    for start in range(0, lat.size, rows):
        block = slice(start, start + rows)
        probs[block] = _oracle_rows(truth, order, lat[block], lon[block], None if days is None else days[block])
    return probs


def _oracle_rows(truth: Truth, order: np.ndarray, lat, lon, day_of_year) -> np.ndarray:
    usable = np.isfinite(lat) & np.isfinite(lon)
    land = truth.landscape
    # (N, S) at the nearest cell; rows without coordinates look at the first cell and are blanked below.
    local = land.sample(truth.suitability, np.where(usable, lon, land.lon[0]), np.where(usable, lat, land.lat[0])).T
    if day_of_year is None:
        probs = _averaged_over_visit_days(local, truth.taxonomy)
    else:
        day_of_year = np.asarray(day_of_year, dtype=float)
        usable &= np.isfinite(day_of_year)
        probs = _normalised(species_weights(local, np.nan_to_num(day_of_year), truth.taxonomy))
    probs = _normalised(probs[:, order])
    probs[~usable] = np.nan
    return probs


def _averaged_over_visit_days(local: np.ndarray, taxonomy: pd.DataFrame) -> np.ndarray:
    """(n, S) sum over days d of P(d) x normalised species weights at (place, d), as two matrix products: with
    B = abundance x suitability and W (D, S) the season weights, sum_d P(d) B W_d / (B . W_d) = B x ((P / Z) @ W),
    Z = B @ W.T; days on which nothing flowers at a place (Z <= OUT_OF_SEASON) take the unseasonal weights. The
    day-by-day loop was 364 passes of exp over (n, S): most of geo_prior's time at 50,000 photos."""
    days = visit_day_probabilities()  # (D,)
    season = season_weights(np.arange(1, days.size + 1, dtype=float), taxonomy)  # (D, S)
    base = taxonomy["abundance"].to_numpy()[None] * local  # (n, S)
    totals = base @ season.T  # (n, D)
    flowering = totals > OUT_OF_SEASON
    share = np.where(flowering, days[None] / np.where(flowering, totals, 1.0), 0.0)
    unseasonal = (days[None] * ~flowering).sum(axis=1, keepdims=True)
    return base * (share @ season) + unseasonal * _normalised(unseasonal_weights(local, taxonomy))


def _normalised(weights: np.ndarray) -> np.ndarray:
    return weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-300)


def simulate_occurrences(world, params: dict) -> pd.DataFrame:
    """Darwin Core records (``occurrenceID``, ``species``, ``decimalLatitude``, ``decimalLongitude``,
    ``eventDate``, ``coordinateUncertaintyInMeters``) of ``params["n_occurrences"]`` observations drawn by the
    world's own observation process (other observers, one record each, no photos; some without coordinates or
    species, as in a download). Seeded apart from the photos, which stay the same."""
    rng = np.random.default_rng([params["seed"], OCCURRENCE_STREAM])
    records = simulate_observations(
        world.region,
        world.landscape,
        world.taxonomy,
        world.suitability,
        {**params, "n_images": int(params["n_occurrences"]), "photos_per_observation": [1.0]},
        rng,
        aggregation_rng=np.random.default_rng([params["seed"], OCCURRENCE_STREAM, AGGREGATION_STREAM]),
    )
    species = world.taxonomy["species"].to_numpy()[records["species_index"].to_numpy()]
    return pd.DataFrame(
        {
            "occurrenceID": [f"occ{i:07d}" for i in range(len(records))],
            "species": np.where(records["identified"].to_numpy(), species, ""),
            "decimalLatitude": records["lat"].round(6),
            "decimalLongitude": records["lon"].round(6),
            "eventDate": records["observed_on"].dt.strftime("%Y-%m-%d"),
            "coordinateUncertaintyInMeters": records["coord_uncertainty_m"].round(1),
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m geocontrast.data.synthetic.truth", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--world-json", required=True, help="the `world` config section as JSON")
    parser.add_argument("--out", type=Path, required=True, help="occurrence table (.csv)")
    args = parser.parse_args(argv)
    from .world import generate_world

    params = json.loads(args.world_json)
    occurrences = simulate_occurrences(generate_world(params), params)
    with atomic_path(args.out) as partial:
        occurrences.to_csv(partial, index=False)
    print(f"{args.out}: {len(occurrences)} occurrence records", file=sys.stderr)
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
