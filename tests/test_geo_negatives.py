"""Negative tables: rule regions, own-observation exclusion, fallback, the false-negative mask."""

import json

import numpy as np
import pytest

from geocontrast.data.manifest import validate_manifest, write_manifest
from geocontrast.geo.coords import great_circle_km, unit_vectors
from geocontrast.geo.negatives import (
    false_negative_degrees,
    geo_near_mask,
    load_negative_table,
    main,
    negative_table,
    save_negative_table,
)


def points(n=300, seed=0):
    """California-sized box, two photos per observation at the same spot."""
    rng = np.random.default_rng(seed)
    lat, lon = rng.uniform(33.0, 41.0, n // 2), rng.uniform(-124.0, -115.0, n // 2)
    observation = np.repeat(np.arange(n // 2), 2).astype(str)
    return np.repeat(lat, 2), np.repeat(lon, 2), observation


def candidate_km(lat, lon, table):
    rows = np.repeat(np.arange(lat.size), table.candidates.shape[1])
    c = table.candidates.ravel()
    return great_circle_km(lat[rows], lon[rows], lat[c], lon[c]).reshape(table.candidates.shape)


def test_far_candidates_lie_beyond_r_neg_outside_own_observation():
    lat, lon, observation = points()
    table = negative_table(lat, lon, 8, "far", seed=0, r_neg_km=300.0, observation_id=observation)
    assert (candidate_km(lat, lon, table) > 300.0).all()
    assert not (observation[table.candidates] == observation[:, None]).any()
    assert not table.fallback.any() and table.false_negative_radius_km == 300.0


def test_band_candidates_lie_within_band():
    lat, lon, observation = points()
    table = negative_table(lat, lon, 8, "band", seed=0, band_km=(100.0, 400.0), observation_id=observation)
    d = candidate_km(lat, lon, table)
    assert not table.fallback.any()
    assert ((d >= 100.0) & (d <= 400.0)).all()


def test_random_candidates_avoid_own_observation_and_cover_rows_without_coordinates():
    lat, lon, observation = points(40)
    lat[:2] = lon[:2] = np.nan
    table = negative_table(lat, lon, 50, "random", seed=0, observation_id=observation)
    assert not (observation[table.candidates] == observation[:, None]).any()
    assert np.isin(table.candidates, [0, 1]).any()  # coordinate-less rows are random candidates too
    assert (table.candidates >= 0).all() and table.false_negative_radius_km == 0.0


def test_anchor_without_region_falls_back_to_random_and_is_counted():
    lat, lon, observation = points(40)
    lat[:2] = lon[:2] = np.nan
    table = negative_table(lat, lon, 4, "far", seed=0, r_neg_km=5000.0, observation_id=observation)
    assert table.fallback[2:].all() and not table.fallback[:2].any()
    assert table.summary()["n_fallback"] == 38
    assert (table.candidates >= 0).all()
    assert not (observation[table.candidates] == observation[:, None]).any()


def test_single_row_has_no_candidate():
    table = negative_table([37.0], [-122.0], 3, "random", seed=0)
    assert table.candidates.tolist() == [[-1, -1, -1]]


def test_same_seed_same_table_and_saved_table_loads_identically(tmp_path):
    lat, lon, observation = points()
    table = negative_table(lat, lon, 8, "far", seed=3, r_neg_km=300.0, observation_id=observation)
    again = negative_table(lat, lon, 8, "far", seed=3, r_neg_km=300.0, observation_id=observation)
    np.testing.assert_array_equal(table.candidates, again.candidates)
    save_negative_table(table, tmp_path / "n.npz")
    loaded = load_negative_table(tmp_path / "n.npz")
    np.testing.assert_array_equal(loaded.candidates, table.candidates)
    assert (loaded.false_negative_radius_km, loaded.params) == (table.false_negative_radius_km, table.params)


def test_geo_near_mask_matches_brute_force():
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(36.9, 37.1, 60), rng.uniform(-122.1, -121.9, 60)
    lat[:10], lon[:10] = rng.uniform(89.95, 90, 10), rng.uniform(-180, 180, 10)
    lon[10:20] = rng.choice([-179.99, 179.99], 10)
    u = unit_vectors(lat, lon)
    expected = great_circle_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :]) <= 5.0
    mask = geo_near_mask(u[:30], u, 5.0)
    np.testing.assert_array_equal(mask, expected[:30])
    assert mask.sum() > 30 and not mask.all()


def test_false_negative_degrees_soften_the_mask_and_fade_with_distance():
    # Points due north of the origin at 0, 3, 6 and 20 km, and one without coordinates; radius 10 km.
    km = np.array([0.0, 3.0, 6.0, 20.0])
    lat = np.append(np.degrees(km / 6371.0088), np.nan)
    u = unit_vectors(lat, np.zeros(lat.size))
    near = geo_near_mask(u[:1], u, 10.0)[0]
    hard = false_negative_degrees(u[:1], u, 10.0, near_weight=0.0)[0]
    np.testing.assert_array_equal(hard, near.astype(float))  # near_weight 0: the hard mask
    assert not false_negative_degrees(u[:1], u, 10.0, near_weight=1.0).any()  # near_weight 1: no mask
    faded = false_negative_degrees(u[:1], u, 10.0, near_weight=0.25, scale_km=3.0)[0]
    np.testing.assert_allclose(faded, [0.75, 0.75 * np.exp(-1.0), 0.75 * np.exp(-2.0), 0.0, 0.0], rtol=1e-6)


def test_false_negative_degrees_refuse_a_weight_outside_zero_one_and_a_scale_of_zero():
    u = unit_vectors(np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="near_weight"):
        false_negative_degrees(u, u, 10.0, near_weight=1.5)
    with pytest.raises(ValueError, match="scale_km"):
        false_negative_degrees(u, u, 10.0, scale_km=0.0)


def test_cli_writes_table_and_summary_from_manifest(tmp_path, make_manifest):
    write_manifest(validate_manifest(make_manifest(6)), tmp_path / "m.parquet")
    argv = [
        "--manifest",
        str(tmp_path / "m.parquet"),
        "--out",
        str(tmp_path / "n.npz"),
        "--summary",
        str(tmp_path / "s.json"),
        "--m",
        "3",
        "--rule",
        "band",
        "--band-km",
        "1",
        "3",
        "--seed",
        "0",
    ]
    assert main(argv) == 0
    assert json.loads((tmp_path / "s.json").read_text())["rule"] == "band"
    d = candidate_km(
        np.full(6, 37.0) + 0.01 * np.arange(6), np.full(6, -122.0), load_negative_table(tmp_path / "n.npz")
    )
    assert ((d >= 1.0) & (d <= 3.0)).all()
