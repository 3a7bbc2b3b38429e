"""Neighbour tables: exact balls, uniform sampling, exclusions, fallbacks, determinism, memory budget."""

import json
from pathlib import Path

import numba
import numpy as np
import pytest

from geocontrast.data.manifest import validate_manifest, write_manifest
from geocontrast.geo.coords import EARTH_RADIUS_KM, great_circle_km
from geocontrast.geo.neighbours import load_neighbour_table, main, neighbour_table, save_neighbour_table

KM_PER_DEGREE = np.pi * EARTH_RADIUS_KM / 180


def scatter(rng, centre_lat, centre_lon, n, spread_km):
    """n points around a centre, Gaussian in km (longitudes wrapped into [-180, 180))."""
    lat = np.clip(centre_lat + rng.normal(0, spread_km, n) / KM_PER_DEGREE, -90, 90)
    scale = KM_PER_DEGREE * max(np.cos(np.radians(centre_lat)), 1e-3)
    lon = (centre_lon + rng.normal(0, spread_km, n) / scale + 180) % 360 - 180
    return lat, lon


def disk(rng, centre_lat, centre_lon, n, r_min_km, r_max_km):
    """n points uniform by area in the ring [r_min_km, r_max_km] around a mid-latitude centre."""
    r = np.sqrt(rng.uniform(r_min_km**2, r_max_km**2, n))
    theta = rng.uniform(0, 2 * np.pi, n)
    lat = centre_lat + r * np.sin(theta) / KM_PER_DEGREE
    lon = centre_lon + r * np.cos(theta) / (KM_PER_DEGREE * np.cos(np.radians(centre_lat)))
    return lat, lon


def mixed_points(seed=0):
    """Clusters straddling the antimeridian, at the north pole and in California."""
    rng = np.random.default_rng(seed)
    parts = [scatter(rng, 0.0, 179.95, 60, 8), scatter(rng, 89.9, 0.0, 60, 8), scatter(rng, 37.0, -122.0, 60, 8)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def brute_force(lat, lon):
    return great_circle_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])


def rows_of(table):
    return [set(table.indices[table.indptr[i] : table.indptr[i + 1]].tolist()) for i in range(table.indptr.size - 1)]


def test_ball_is_taken_whole_when_it_holds_at_most_k_points():
    lat, lon = mixed_points()
    d = brute_force(lat, lon)
    table = neighbour_table(lat, lon, radius_km=6.0, k=1000, seed=0)
    for i, row in enumerate(rows_of(table)):
        assert row == set(np.flatnonzero((d[i] <= 6.0) & (np.arange(lat.size) != i)).tolist())


def test_sampled_neighbours_lie_within_radius_with_haversine_distances():
    lat, lon = mixed_points()
    table = neighbour_table(lat, lon, radius_km=10.0, k=5, seed=1)
    anchors = np.repeat(np.arange(lat.size), np.diff(table.indptr))
    expected = great_circle_km(lat[anchors], lon[anchors], lat[table.indices], lon[table.indices])
    assert table.indices.size > 0 and np.diff(table.indptr).max() == 5
    np.testing.assert_allclose(table.dist_km, expected, rtol=1e-5, atol=1e-6)
    assert (expected <= 10.0).all()


@pytest.mark.parametrize(("n_ball", "n_outside", "k"), [(400, 0, 20), (40, 4000, 10)], ids=["dense", "sparse"])
def test_ball_points_are_chosen_uniformly_not_nearest_first(n_ball, n_outside, k):
    # Anchor 0 at the centre; n_ball points inside its 5 km ball; n_outside points in its pool but beyond 5 km
    # (the sparse case goes through the enumeration path).
    rng = np.random.default_rng(0)
    inside = disk(rng, 37.0, -120.0, n_ball, 0.0, 4.9)
    outside = disk(rng, 37.0, -120.0, n_outside, 5.1, 9.0)
    lat = np.r_[37.0, inside[0], outside[0]]
    lon = np.r_[-120.0, inside[1], outside[1]]
    n_seeds = 300
    chosen = np.zeros(lat.size)
    for seed in range(n_seeds):
        table = neighbour_table(lat, lon, radius_km=5.0, k=k, seed=seed)
        chosen[table.indices[table.indptr[0] : table.indptr[1]]] += 1
    ball = chosen[1 : n_ball + 1]
    assert chosen[n_ball + 1 :].sum() == 0
    expected = n_seeds * k / n_ball
    # Chi-square with n_ball - 1 dof (sampling without replacement is a bit under-dispersed): mean n_ball - 1,
    # sd sqrt(2 (n_ball - 1)); 5 sd is a safe bound, while nearest-first scores in the thousands.
    chi2 = ((ball - expected) ** 2 / expected).sum()
    assert chi2 < n_ball + 5 * np.sqrt(2 * n_ball)
    near = np.argsort(great_circle_km(37.0, -120.0, inside[0], inside[1]))
    assert ball[near[n_ball // 2 :]].sum() / ball.sum() == pytest.approx(0.5, abs=0.05)


def test_own_observation_is_never_a_neighbour():
    rng = np.random.default_rng(2)
    lat, lon = scatter(rng, 37.0, -122.0, 30, 1)
    lat, lon = np.repeat(lat, 3), np.repeat(lon, 3)  # three photos per observation, same spot
    observation = np.repeat(np.arange(30), 3).astype(str)
    table = neighbour_table(lat, lon, radius_km=50.0, k=1000, seed=0, observation_id=observation)
    for i, row in enumerate(rows_of(table)):
        assert row == set(np.flatnonzero(observation != observation[i]).tolist())


def test_same_observer_is_excluded_only_when_asked():
    rng = np.random.default_rng(3)
    lat, lon = scatter(rng, 37.0, -122.0, 40, 1)
    observer = np.array(["a", "b", None, "c"] * 10, dtype=object)
    kept = rows_of(neighbour_table(lat, lon, 50.0, 1000, 0, observer_id=observer))
    excluded = rows_of(neighbour_table(lat, lon, 50.0, 1000, 0, observer_id=observer, exclude_same_observer=True))
    for i in range(40):
        same = {j for j in range(40) if j != i and observer[i] is not None and observer[j] == observer[i]}
        assert same and same <= kept[i] if observer[i] is not None else True
        assert excluded[i] == kept[i] - same


def test_points_closer_than_min_km_are_excluded():
    lat, lon = mixed_points()
    d = brute_force(lat, lon)
    table = neighbour_table(lat, lon, radius_km=8.0, k=1000, seed=0, min_km=3.0)
    assert table.dist_km.min() >= 3.0
    for i, row in enumerate(rows_of(table)):
        assert row == set(np.flatnonzero((d[i] <= 8.0) & (d[i] >= 3.0)).tolist())


def test_rows_without_coordinates_are_neither_anchors_nor_neighbours():
    lat, lon = mixed_points()
    lat[::7] = np.nan
    lon[::7] = np.nan
    table = neighbour_table(lat, lon, radius_km=20.0, k=1000, seed=0, fallback="nearest")
    counts = np.diff(table.indptr)
    assert (counts[::7] == 0).all() and not table.fallback[::7].any()
    assert not np.isin(table.indices, np.arange(0, lat.size, 7)).any()
    assert table.summary()["n_without_coords"] == len(range(0, lat.size, 7))


def test_fallback_self_leaves_isolated_anchors_empty_and_flagged():
    lat = np.array([37.0, 37.001, 37.002, 10.0])
    lon = np.array([-122.0, -122.0, -122.0, 10.0])
    table = neighbour_table(lat, lon, radius_km=5.0, k=4, seed=0)
    assert table.fallback.tolist() == [False, False, False, True]
    assert np.diff(table.indptr).tolist() == [2, 2, 2, 0]
    assert [table.summary()[key] for key in ("n_fallback", "n_fallback_self", "n_fallback_nearest")] == [1, 1, 0]


def test_fallback_nearest_gives_nearest_eligible_point_beyond_radius():
    # Row 3 is isolated; its own observation's other photo (row 4) is nearest but ineligible.
    lat = np.array([37.0, 37.001, 11.0, 10.0, 9.999])
    lon = np.array([-122.0, -122.0, 11.0, 10.0, 10.0])
    observation = ["a", "b", "c", "d", "d"]
    table = neighbour_table(lat, lon, 5.0, 4, 0, observation_id=observation, fallback="nearest")
    assert table.fallback.tolist() == [False, False, True, True, True]
    assert rows_of(table)[3] == {2} and rows_of(table)[2] == {3}
    row = slice(table.indptr[3], table.indptr[4])
    assert table.dist_km[row][0] == pytest.approx(great_circle_km(10.0, 10.0, 11.0, 11.0), rel=1e-6)
    assert [table.summary()[key] for key in ("n_fallback", "n_fallback_self", "n_fallback_nearest")] == [3, 0, 3]


def test_same_seed_gives_same_table_for_any_thread_count():
    lat, lon = mixed_points()
    default_threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = neighbour_table(lat, lon, 10.0, 5, seed=7)
        numba.set_num_threads(default_threads)
        many = neighbour_table(lat, lon, 10.0, 5, seed=7)
    finally:
        numba.set_num_threads(default_threads)
    for name in ("indptr", "indices", "dist_km", "fallback"):
        np.testing.assert_array_equal(getattr(one, name), getattr(many, name))


def test_different_seed_gives_different_sample():
    lat, lon = mixed_points()
    a = neighbour_table(lat, lon, 10.0, 5, seed=1)
    b = neighbour_table(lat, lon, 10.0, 5, seed=2)
    assert not np.array_equal(a.indices, b.indices)


def test_memory_budget_refusal_names_the_config_key():
    lat, lon = mixed_points()
    with pytest.raises(ValueError, match=r"neighbours\.memory_budget_gb"):
        neighbour_table(lat, lon, 10.0, 64, seed=0, memory_budget_gb=1e-6)


def test_saved_table_loads_identically(tmp_path):
    lat, lon = mixed_points()
    table = neighbour_table(lat, lon, 10.0, 5, seed=0, fallback="nearest")
    save_neighbour_table(table, tmp_path / "t.npz")
    loaded = load_neighbour_table(tmp_path / "t.npz")
    for name in ("indptr", "indices", "dist_km", "fallback", "has_coords"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(table, name))
    assert loaded.params == table.params


def test_cli_writes_table_and_summary_from_manifest(tmp_path, make_manifest):
    manifest = validate_manifest(
        make_manifest(5, lat=[37.0, 37.001, 37.002, None, 10.0], lon=[-122.0, -122.0, -122.0, None, 10.0])
    )
    write_manifest(manifest, tmp_path / "m.parquet")
    argv = [
        "--manifest",
        str(tmp_path / "m.parquet"),
        "--out",
        str(tmp_path / "r5_k4.npz"),
        "--summary",
        str(tmp_path / "s.json"),
        "--radius-km",
        "5",
        "--k",
        "4",
        "--seed",
        "0",
        "--threads",
        "1",
    ]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert (summary["n_anchors"], summary["n_without_coords"], summary["n_fallback"]) == (4, 1, 1)
    assert np.diff(load_neighbour_table(tmp_path / "r5_k4.npz").indptr).tolist() == [2, 2, 2, 0, 0]


def test_interrupted_save_leaves_no_table_behind(tmp_path):
    from geocontrast.geo._common import write_table

    def interrupted_save(table, path):
        Path(path).write_bytes(b"half a table")
        raise KeyboardInterrupt

    out = tmp_path / "r5_k8.npz"
    with pytest.raises(KeyboardInterrupt):
        write_table(interrupted_save, None, out, tmp_path / "r5_k8.json")
    assert list(tmp_path.iterdir()) == []
