"""The synthetic flora world: deterministic, taxonomically consistent, and observed like iNaturalist."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, load_config
from scipy.spatial import cKDTree

from geocontrast.data.render import Habitat, render_photo
from geocontrast.data.synthetic import generate_world, observations, render_photos, write_truth
from geocontrast.data.synthetic.region import KM_PER_DEGREE, make_region
from geocontrast.data.synthetic.taxonomy import individual_traits
from geocontrast.data.synthetic.world import background_places, camera_style

RANKS = ["species", "genus", "family", "order", "class", "phylum", "kingdom"]


@pytest.fixture(scope="module")
def world():
    return generate_world(load_config()["world"])


def _local_km(lon, lat):
    """Points projected to km on a local plane (fine for nearest-neighbour distances within a region)."""
    return np.column_stack([lon * KM_PER_DEGREE * np.cos(np.radians(np.nanmean(lat))), lat * KM_PER_DEGREE])


def test_same_seed_gives_the_same_world(tiny_world_params):
    first, second = generate_world(tiny_world_params), generate_world(tiny_world_params)
    pd.testing.assert_frame_equal(first.photos, second.photos)
    pd.testing.assert_frame_equal(first.taxonomy, second.taxonomy)
    np.testing.assert_array_equal(first.suitability, second.suitability)


def test_another_seed_gives_another_world(tiny_world_params):
    other = generate_world({**tiny_world_params, "seed": tiny_world_params["seed"] + 1})
    first = generate_world(tiny_world_params)
    assert not np.allclose(first.photos["lat"].fillna(0), other.photos["lat"].fillna(0))
    assert list(first.taxonomy["species"]) != list(other.taxonomy["species"])


def test_rendered_photos_are_identical_whatever_the_number_of_workers(tiny_world_params, tmp_path):
    params = {**tiny_world_params, "n_images": 40}
    world = generate_world(params)
    render_photos(world, params, tmp_path / "one", workers=1, progress=False)
    render_photos(world, params, tmp_path / "two", workers=2, progress=False)
    for path in world.photos["path"]:
        assert (tmp_path / "one" / path).read_bytes() == (tmp_path / "two" / path).read_bytes()


def test_photo_count_is_exactly_n_images(world, tiny_world_params):
    assert len(world.photos) == tiny_world_params["n_images"]
    assert world.photos["image_id"].is_unique


def test_each_taxon_has_one_ancestor_per_rank(world):
    taxonomy = world.taxonomy
    for lower, upper in zip(RANKS[:-1], RANKS[1:]):
        assert (taxonomy.groupby(lower)[upper].nunique() == 1).all(), f"a {lower} has two {upper} parents"
    assert taxonomy["species"].is_unique and taxonomy["taxon_id"].is_unique


def test_genera_hold_the_configured_number_of_species(world, tiny_world_params):
    low, high = tiny_world_params["taxonomy"]["species_per_genus"]
    sizes = world.taxonomy.groupby("genus").size()
    assert sizes.between(low, high).all()


def test_congeners_share_petal_count_and_shape_but_differ_in_colour(world):
    by_genus = world.taxonomy.groupby("genus")
    assert (by_genus["petal_count"].nunique() == 1).all()
    assert (by_genus["petal_shape"].nunique() == 1).all()
    assert (by_genus["petal_h"].nunique() == by_genus.size()).all()


def test_observations_are_spatially_clustered(world):
    located = world.photos.drop_duplicates("observation_id").dropna(subset=["lat"])
    observed = _local_km(located["lon"].to_numpy(), located["lat"].to_numpy())
    uniform_lonlat = world.region.sample_uniform(len(located), np.random.default_rng(0))
    uniform = _local_km(uniform_lonlat[:, 0], uniform_lonlat[:, 1])
    nearest = lambda points: cKDTree(points).query(points, k=2)[0][:, 1].mean()  # noqa: E731
    assert nearest(observed) < 0.3 * nearest(uniform)


def test_photos_of_one_observation_share_plant_place_date_and_observer(world):
    shared = ["species", "lat", "lon", "observed_on", "observer_id"]
    multi = world.photos[world.photos.duplicated("observation_id", keep=False)]
    assert len(multi) > 0
    assert (multi.groupby("observation_id")[shared].nunique(dropna=False) == 1).all().all()


def test_some_coordinates_are_missing_and_some_obscured_with_large_uncertainty():
    params = {
        **_default_world(),
        "n_images": 3000,
        "photos_per_observation": [1.0],
        "missing_coords_fraction": 0.05,
        "obscured_fraction": 0.1,
    }
    obs = generate_world(params).observations
    assert obs["lat"].isna().mean() == pytest.approx(0.05, abs=0.015)
    assert obs["obscured"].mean() == pytest.approx(0.1, abs=0.02)
    obscured = obs[obs["obscured"]]
    assert (obscured["coord_uncertainty_m"] > 10_000).all()
    # obscured points stay in the 0.2 degree cell of the true location
    same_cell = np.floor(obscured["lat"] / 0.2) == np.floor(obscured["true_lat"] / 0.2)
    assert same_cell.all()
    precise = obs[~obs["obscured"] & obs["lat"].notna()]
    assert (precise["lat"] == precise["true_lat"]).all()


def test_species_abundance_is_long_tailed():
    counts = generate_world({**_default_world(), "n_images": 3000}).photos["species"].value_counts()
    assert counts.iloc[0] > 5 * counts.median()


def test_species_are_observed_where_their_suitability_is_high(world):
    obs = world.observations
    local = world.landscape.sample(world.suitability, obs["true_lon"].to_numpy(), obs["true_lat"].to_numpy())
    own = local[obs["species_index"].to_numpy(), np.arange(len(obs))]
    assert own.mean() > 2 * local.mean()


def test_observation_dates_follow_flowering_seasons():
    # The default world: the tiny one has too few species for a stable comparison against shuffled species.
    world = generate_world(_default_world())
    obs = world.observations
    peak = world.taxonomy["flowering_peak_doy"].to_numpy()
    doy = obs["observed_on"].dt.day_of_year.to_numpy()
    gap = lambda peaks: np.minimum(np.abs(doy - peaks), 365 - np.abs(doy - peaks)).mean()  # noqa: E731
    shuffled = np.random.default_rng(0).permutation(obs["species_index"].to_numpy())
    assert gap(peak[obs["species_index"].to_numpy()]) < 0.8 * gap(peak[shuffled])


def test_unidentified_photos_have_no_species_but_keep_their_genus(world):
    unidentified = world.photos[world.photos["species"].isna()]
    assert unidentified["taxon_id"].isna().all()
    assert unidentified["genus"].notna().all()


def test_bbox_region_keeps_every_point_inside_it():
    params = {**_default_world(), "region": "bbox", "bbox": [10.0, 45.0, 12.0, 47.0], "n_images": 200}
    photos = generate_world(params).photos.dropna(subset=["lat"])
    assert photos["lon"].between(9.8, 12.2).all() and photos["lat"].between(44.8, 47.2).all()


def test_bad_bbox_is_refused_naming_the_key():
    with pytest.raises(ValueError, match="world.bbox"):
        make_region("bbox", [12.0, 45.0, 10.0, 47.0], np.random.default_rng(0))


def test_truth_holds_a_suitability_raster_per_species(world, tmp_path):
    write_truth(world, tmp_path)
    truth = np.load(tmp_path / "truth.npz")
    assert truth["suitability"].shape == (len(world.taxonomy), len(truth["lat"]), len(truth["lon"]))
    assert list(truth["species"]) == list(world.taxonomy["species"])
    assert (truth["suitability"][:, ~truth["land"]] == 0).all()


def _default_world() -> dict:
    return load_config(REPO / "config" / "config.yaml")["world"]


def test_the_species_draw_in_row_blocks_equals_the_whole_matrix_draw(tiny_world_params, monkeypatch):
    """Observations draw their species in row blocks (memory flat in the photos); any block size, same world."""
    whole = generate_world(tiny_world_params)
    n_species = len(whole.taxonomy)
    monkeypatch.setattr(observations, "SPECIES_DRAW_ELEMENTS", 7 * n_species)  # blocks of 7 observations
    blocked = generate_world(tiny_world_params)
    assert len(whole.observations) > 7 * 3
    pd.testing.assert_frame_equal(blocked.observations, whole.observations, check_exact=True)


# --- the knobs of the world's geography (issue [R]) -------------------------------------------------------------


def _purity_within_5_km(world) -> float:
    """Share of pairs of observations within 5 km of each other that show the same species."""
    obs = world.observations
    pairs = cKDTree(_local_km(obs["true_lon"].to_numpy(), obs["true_lat"].to_numpy())).query_pairs(
        5.0, output_type="ndarray"
    )
    species = obs["species_index"].to_numpy()
    return float(np.mean(species[pairs[:, 0]] == species[pairs[:, 1]]))


def test_aggregation_raises_purity_monotonically_at_fixed_species_shares():
    params = _default_world()
    levels = (0.0, 0.25, 0.5, 0.75, 1.0)
    worlds = [generate_world({**params, "aggregation": level}) for level in levels]
    purity = [_purity_within_5_km(world) for world in worlds]
    assert all(low < high for low, high in zip(purity, purity[1:])), purity
    assert purity[-1] > 2 * purity[0]
    # Places and days are the same at every level: only the species draw is coupled.
    obs = worlds[0].observations
    for world in worlds[1:]:
        assert world.observations.drop(columns="species_index").equals(obs.drop(columns="species_index"))
    # Each species' count stays within sampling error of its expected count, the sum of each observation's
    # P(species | place, day); bounded as if the observations of a patch all showed one species.
    local = worlds[0].landscape.sample(worlds[0].suitability, obs["true_lon"].to_numpy(), obs["true_lat"].to_numpy())
    p = observations.species_weights(local.T, obs["observed_on"].dt.day_of_year.to_numpy(), worlds[0].taxonomy)
    p /= p.sum(axis=1, keepdims=True)  # (n_obs, S)
    location = obs[["true_lon", "true_lat"]].to_numpy()
    _, patch = np.unique(
        observations.patch_cells(worlds[0].region, location, params["aggregation_km"]), axis=0, return_inverse=True
    )
    per_patch = np.zeros((patch.max() + 1, p.shape[1]))
    np.add.at(per_patch, patch.ravel(), p)  # expected count of each species in each patch
    size = np.bincount(patch.ravel())[:, None]
    error = np.sqrt((per_patch * (1 - per_patch / size) * size).sum(axis=0))  # (S,)
    for world in worlds:
        counts = np.bincount(world.observations["species_index"], minlength=p.shape[1])
        assert (np.abs(counts - p.sum(axis=0)) <= 4 * error + 1).all()


def test_long_flowering_seasons_lift_the_purity_aggregation_reaches_and_change_nothing_else():
    """Flowering seasons cap local aggregation (a patch shows other species months later); ``season_length``
    widens every season after all the draws, so only the seasons and the species draw they weight move."""
    params = {**_default_world(), "aggregation": 1.0}
    seasonal, year_round = generate_world(params), generate_world({**params, "season_length": 100.0})
    widths = seasonal.taxonomy["flowering_width_days"]
    assert np.allclose(year_round.taxonomy["flowering_width_days"], 100 * widths)
    others = seasonal.taxonomy.columns.drop("flowering_width_days")
    assert year_round.taxonomy[others].equals(seasonal.taxonomy[others])
    places_days = ["observer_id", "true_lon", "true_lat", "observed_on"]
    assert year_round.observations[places_days].equals(seasonal.observations[places_days])
    assert _purity_within_5_km(year_round) > 1.2 * _purity_within_5_km(seasonal)


def test_observer_style_is_the_same_within_an_observer_and_differs_between_observers():
    first, again, other = camera_style(0, 1, 1.0), camera_style(0, 1, 1.0), camera_style(0, 2, 1.0)
    assert first == again
    assert first.gains != other.gains and first.zoom != other.zoom and first.sharpness != other.sharpness
    assert camera_style(0, 1, 0.0) is None  # strength 0: no camera at all


def test_observer_style_changes_the_rendered_photo_the_same_way_for_each_photo_of_an_observer(world):
    traits = individual_traits(world.taxonomy.iloc[0], np.random.default_rng(0))
    habitat = Habitat((0.5, 0.5, 0.4), 0.5, 0.5)
    photo = lambda style: render_photo(traits, habitat, 32, np.random.default_rng(1), 1.0, style)  # noqa: E731
    plain, styled = photo(None), photo(camera_style(0, 1, 1.0))
    assert not np.array_equal(plain, styled)
    assert np.array_equal(styled, photo(camera_style(0, 1, 1.0)))
    assert not np.array_equal(styled, photo(camera_style(0, 2, 1.0)))


def test_background_coupling_at_zero_makes_backgrounds_independent_of_place(world, tiny_world_params):
    params = {**tiny_world_params, "background_coupling": 0.0}
    obs = world.observations
    coupled = background_places(world, {**params, "background_coupling": 1.0})
    assert (coupled == np.arange(len(obs))).all()
    moisture = world.landscape.sample(world.landscape.moisture, obs["true_lon"].to_numpy(), obs["true_lat"].to_numpy())
    latitude = obs["true_lat"].to_numpy()
    decoupled = background_places(world, params)
    # The world's moisture grows to the north: coupled backgrounds follow latitude, decoupled ones do not.
    assert np.corrcoef(latitude, moisture[coupled])[0, 1] > 0.3
    assert abs(np.corrcoef(latitude, moisture[decoupled])[0, 1]) < 0.15
    assert (decoupled != np.arange(len(obs))).mean() > 0.9
