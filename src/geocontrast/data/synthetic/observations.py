"""The observation process, imitating iNaturalist: who goes where, when, and which plant they photograph.

Observers live near population centres and have a long tail of activity. Each visit is either near home or a
trip to a park or a random place; a visit produces a few observations a few hundred metres apart. The species
seen at a place and date is drawn with probability proportional to abundance x suitability x flowering season.
Some observations have 2-3 photos, a few lack coordinates, some are obscured to a 0.2 degree cell, and a few
were never identified to species.

Local aggregation (``aggregation`` > 0): plants grow in populations. The region is cut into square patches of
``aggregation_km``; each patch holds one Gumbel variable per species (its own random stream, keyed by the patch,
so photos and occurrence records see the same populations), and a share ``aggregation`` of the observations draws
its species as the argmax of log P(species | place, day) + the patch's Gumbels instead of by its own uniform.
Either draw is an exact sample of P(species | place, day), so each observation's distribution, hence every
species' expected share of the photos, is unchanged; only observations in one patch now tend to show the same
species (the Gumbel-max coupling).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .landscape import Landscape
from .region import KM_PER_DEGREE, Region

OBSCURED_CELL_DEGREES = 0.2
OBSCURED_UNCERTAINTY_M = 28_000.0  # about the diagonal of a 0.2 degree cell at these latitudes
AGGREGATION_STREAM = 4  # the aggregation's own random streams: the draws of the world before it are unchanged
OUT_OF_SEASON = 1e-12  # a place and day whose summed species weight is at most this: nothing flowers there then
SPECIES_DRAW_ELEMENTS = 1 << 22  # (observation, species) cells per block of the species draw: 32 MB of float64
# Visit dates: day of year ~ Normal(mean, sd), clipped to [1, 364] and rounded (more visits in spring).
VISIT_DAY_MEAN, VISIT_DAY_SD, LAST_VISIT_DAY = 130.0, 70.0, 364


def _observers(
    region: Region, n_observers: int, activity_exponent: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Home locations (n, 2) scattered around weighted hotspots and Zipf-like activity weights (n,)."""
    hotspot = rng.choice(len(region.hotspots), size=n_observers, p=region.hotspot_weights)
    homes = region.scatter_around(region.hotspots[hotspot], 25.0, rng)
    activity = 1.0 / (rng.permutation(n_observers) + 1.0) ** activity_exponent
    return homes, activity / activity.sum()


def visit_day_probabilities() -> np.ndarray:
    """(LAST_VISIT_DAY,) P(a visit falls on day d + 1): the exact distribution of the clipped, rounded draw."""
    from scipy.stats import norm

    edges = norm.cdf((np.arange(1, LAST_VISIT_DAY) + 0.5 - VISIT_DAY_MEAN) / VISIT_DAY_SD)  # P(day <= d)
    return np.diff(np.concatenate([[0.0], edges, [1.0]]))


def species_weights(local_suitability: np.ndarray, day_of_year: np.ndarray, taxonomy: pd.DataFrame) -> np.ndarray:
    """(n, S) unnormalised P(species | place, day): abundance x suitability x flowering season, with abundance x
    suitability where no species flowers. ``local_suitability``: (n, S) at the places; ``day_of_year``: (n,)."""
    abundance = taxonomy["abundance"].to_numpy()[None]
    weight = abundance * local_suitability * season_weights(np.asarray(day_of_year, dtype=float), taxonomy)
    out_of_season = weight.sum(axis=1) <= OUT_OF_SEASON
    weight[out_of_season] = unseasonal_weights(local_suitability[out_of_season], taxonomy)
    return weight


def unseasonal_weights(local_suitability: np.ndarray, taxonomy: pd.DataFrame) -> np.ndarray:
    """(n, S) abundance x suitability, never all zero: the weights where no species flowers that day."""
    return taxonomy["abundance"].to_numpy()[None] * (local_suitability + 1e-6)


def season_weights(day_of_year: np.ndarray, taxonomy: pd.DataFrame) -> np.ndarray:
    """(n, S) Gaussian flowering-season weight on the circular calendar."""
    gap = np.abs(day_of_year[:, None] - taxonomy["flowering_peak_doy"].to_numpy()[None])
    gap = np.minimum(gap, 365 - gap)
    return np.exp(-0.5 * (gap / taxonomy["flowering_width_days"].to_numpy()[None]) ** 2)


def simulate_observations(
    region: Region,
    landscape: Landscape,
    taxonomy: pd.DataFrame,
    suitability: np.ndarray,
    params: dict,
    rng: np.random.Generator,
    aggregation_rng: np.random.Generator | None = None,
) -> pd.DataFrame:
    """One row per observation: observer, true and reported coordinates, date, species index, photo count.

    Draws observations until their photos reach params["n_images"], then trims the last observation's photos.
    ``aggregation_rng`` chooses which observations draw their species from their patch's population (default: the
    stream ``[seed, AGGREGATION_STREAM]``); unused while ``params["aggregation"]`` is 0.
    """
    photo_probs = np.asarray(params["photos_per_observation"], dtype=float)
    n_obs = params["n_images"]  # enough even if every observation has one photo
    homes, activity = _observers(region, params["n_observers"], params["observer_activity_exponent"], rng)
    parks = region.sample_uniform(params["n_parks"], rng)

    # Visits: 1 + geometric observations each, near home or on a trip (a park or anywhere).
    per_visit = rng.geometric(1.0 / params["observations_per_visit"], size=n_obs)
    visit_of_obs = np.repeat(np.arange(n_obs), per_visit)[:n_obs]
    n_visits = visit_of_obs[-1] + 1
    observer = rng.choice(params["n_observers"], size=n_visits, p=activity)
    at_home = rng.random(n_visits) < params["home_fraction"]
    to_park = rng.random(n_visits) < params["park_trip_fraction"]
    sites = homes[observer]
    park_trip = ~at_home & to_park
    sites[park_trip] = parks[rng.integers(len(parks), size=park_trip.sum())]
    anywhere = ~at_home & ~to_park  # only these trips need a fresh uniform draw over the region
    sites[anywhere] = region.sample_uniform(int(anywhere.sum()), rng)
    sites = region.scatter_around(sites, np.where(at_home, params["home_radius_km"], params["trip_radius_km"]), rng)
    location = region.scatter_around(sites[visit_of_obs], params["visit_radius_km"], rng)

    # Dates: one per visit, in the configured years, more visits in spring.
    first_year, last_year = params["years"]
    year = rng.integers(first_year, last_year + 1, size=n_visits)
    day_of_year = (
        np.clip(rng.normal(VISIT_DAY_MEAN, VISIT_DAY_SD, size=n_visits), 1, LAST_VISIT_DAY).round().astype(int)
    )
    obs_doy = day_of_year[visit_of_obs]

    uniform = rng.random(n_obs)
    population = None
    if params["aggregation"] > 0:
        if aggregation_rng is None:
            aggregation_rng = np.random.default_rng([params["seed"], AGGREGATION_STREAM])
        coupled = aggregation_rng.random(n_obs) < params["aggregation"]
        population = _population_noise(region, location, coupled, params, len(taxonomy))
    species_index = _draw_species(landscape, suitability, location, obs_doy, taxonomy, uniform, population)

    n_photos = rng.choice(len(photo_probs), size=n_obs, p=photo_probs / photo_probs.sum()) + 1
    cumulative_photos = np.cumsum(n_photos)
    keep = int(np.searchsorted(cumulative_photos, params["n_images"])) + 1
    n_photos = n_photos[:keep]
    n_photos[-1] -= cumulative_photos[keep - 1] - params["n_images"]

    observations = pd.DataFrame(
        {
            "observation_id": [f"o{i:07d}" for i in range(keep)],
            "observer_id": [f"u{u:05d}" for u in observer[visit_of_obs[:keep]]],
            "true_lon": location[:keep, 0],
            "true_lat": location[:keep, 1],
            "observed_on": pd.to_datetime(year[visit_of_obs[:keep]].astype(str), format="%Y")
            + pd.to_timedelta(obs_doy[:keep] - 1, unit="D"),
            "species_index": species_index[:keep],
            "n_photos": n_photos,
        }
    )
    return _report_coordinates(observations, params, rng)


def _draw_species(
    landscape: Landscape,
    suitability: np.ndarray,
    location: np.ndarray,
    day_of_year: np.ndarray,
    taxonomy: pd.DataFrame,
    uniform: np.ndarray,
    population: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Which plant each observation shows: the species whose cumulative P(species | place, day) (abundance x
    suitability x flowering season) first reaches the observation's uniform draw; with ``population`` (the
    coupled rows' patch index (n,), -1 for the others, and the patches' Gumbels (P, S)), a coupled row takes the
    argmax of log P + its patch's Gumbels instead. Row blocks of at most :data:`SPECIES_DRAW_ELEMENTS`
    (observation, species) cells keep memory flat: the whole (n_obs, S) matrix was 1.2 GB a copy at 50,000
    photos of 3,000 species; each row's arithmetic is the same either way."""
    n_species = len(taxonomy)
    rows = max(1, SPECIES_DRAW_ELEMENTS // n_species)
    species_index = np.empty(len(uniform), dtype=np.int64)
    for start in range(0, len(uniform), rows):
        block = slice(start, start + rows)
        local = landscape.sample(suitability, location[block, 0], location[block, 1]).T  # (rows, S)
        weight = species_weights(local, day_of_year[block], taxonomy)
        cumulative = np.cumsum(weight / weight.sum(axis=1, keepdims=True), axis=1)
        species_index[block] = np.minimum((cumulative < uniform[block, None]).sum(axis=1), n_species - 1)
        if population is not None:
            patch = population[0][block]
            coupled = np.flatnonzero(patch >= 0)
            with np.errstate(divide="ignore"):
                score = np.log(weight[coupled]) + population[1][patch[coupled]]  # (coupled rows, S)
            species_index[start + coupled] = score.argmax(axis=1)
    return species_index


def patch_cells(region: Region, location: np.ndarray, side_km: float) -> np.ndarray:
    """(n, 2) int (column, row) of each location's square patch of side ``side_km``, counted from the region's
    south-west corner (columns in km at the region's middle latitude)."""
    lon_min, lat_min, _, lat_max = region.bbox
    km_per_lon = KM_PER_DEGREE * np.cos(np.radians(0.5 * (lat_min + lat_max)))
    column = np.floor((location[:, 0] - lon_min) * km_per_lon / side_km)
    row = np.floor((location[:, 1] - lat_min) * KM_PER_DEGREE / side_km)
    return np.maximum(0, np.column_stack([column, row])).astype(np.int64)


def _population_noise(
    region: Region, location: np.ndarray, coupled: np.ndarray, params: dict, n_species: int
) -> tuple[np.ndarray, np.ndarray]:
    """The coupled observations' patch index (n,), -1 for the others, and one Gumbel per species for each patch
    (P, S), each patch's drawn from the stream ``[seed, AGGREGATION_STREAM, column, row]`` of its square
    (:func:`patch_cells`), whoever observes there."""
    cells, patch = np.unique(
        patch_cells(region, location, params["aggregation_km"])[coupled], axis=0, return_inverse=True
    )
    gumbels = np.array(
        [
            np.random.default_rng([params["seed"], AGGREGATION_STREAM, int(c), int(r)]).gumbel(size=n_species)
            for c, r in cells
        ]
    ).reshape(len(cells), n_species)
    patch_of_row = np.full(len(location), -1, dtype=np.int64)
    patch_of_row[coupled] = patch.ravel()
    return patch_of_row, gumbels


def _report_coordinates(observations: pd.DataFrame, params: dict, rng: np.random.Generator) -> pd.DataFrame:
    """Reported lat/lon and uncertainty: most GPS-precise, some obscured to a 0.2 degree cell, a few missing."""
    n = len(observations)
    draw = rng.random(n)
    missing = draw < params["missing_coords_fraction"]
    obscured = ~missing & (draw < params["missing_coords_fraction"] + params["obscured_fraction"])
    lon = observations["true_lon"].to_numpy().copy()
    lat = observations["true_lat"].to_numpy().copy()
    # Obscured: a uniform point in the 0.2 degree cell that holds the true location, as iNaturalist does.
    cell = OBSCURED_CELL_DEGREES
    lon[obscured] = np.floor(lon[obscured] / cell) * cell + rng.uniform(0, cell, obscured.sum())
    lat[obscured] = np.floor(lat[obscured] / cell) * cell + rng.uniform(0, cell, obscured.sum())
    uncertainty = np.exp(rng.normal(np.log(30.0), 1.0, n))  # GPS accuracy, metres
    uncertainty[rng.random(n) < 0.1] = np.nan  # often not recorded
    uncertainty[obscured] = OBSCURED_UNCERTAINTY_M
    lon[missing] = lat[missing] = uncertainty[missing] = np.nan
    return observations.assign(
        lon=lon,
        lat=lat,
        coord_uncertainty_m=uncertainty,
        obscured=obscured,
        identified=rng.random(n) >= params["unidentified_fraction"],
    )
