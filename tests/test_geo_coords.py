"""Unit-sphere coordinates and great-circle distances."""

import numpy as np
import pytest

from geocontrast.geo.coords import EARTH_RADIUS_KM, chord_to_km, great_circle_km, km_to_chord, unit_vectors

KM_PER_DEGREE = np.pi * EARTH_RADIUS_KM / 180


def test_unit_vectors_point_at_axes_and_have_unit_norm():
    u = unit_vectors([0.0, 0.0, 90.0, -90.0, 37.5], [0.0, 90.0, 12.0, 0.0, -122.3])
    np.testing.assert_allclose(u[:4], [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, -1]], atol=1e-15)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0)


def test_chord_and_km_are_inverse():
    d = np.array([0.0, 0.001, 5.0, 1000.0, np.pi * EARTH_RADIUS_KM])
    np.testing.assert_allclose(chord_to_km(km_to_chord(d)), d, rtol=1e-12, atol=1e-9)
    assert km_to_chord(np.pi * EARTH_RADIUS_KM) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("lat1", "lon1", "lat2", "lon2", "expected_km"),
    [
        (0.0, 179.9, 0.0, -179.9, 0.2 * KM_PER_DEGREE),  # across the antimeridian
        (89.9, 0.0, 89.9, 180.0, 0.2 * KM_PER_DEGREE),  # over the north pole
        (0.0, 0.0, 0.0, 180.0, 180 * KM_PER_DEGREE),  # antipodes
    ],
)
def test_great_circle_km_is_exact_across_antimeridian_and_poles(lat1, lon1, lat2, lon2, expected_km):
    assert great_circle_km(lat1, lon1, lat2, lon2) == pytest.approx(expected_km, rel=1e-9)
    chord = np.linalg.norm(unit_vectors(lat1, lon1) - unit_vectors(lat2, lon2))
    assert chord_to_km(chord) == pytest.approx(expected_km, rel=1e-9)


def test_great_circle_km_matches_chord_distance_on_random_points():
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-90, 90, (2, 50)), rng.uniform(-180, 180, (2, 50))
    chord = np.linalg.norm(unit_vectors(lat[0], lon[0]) - unit_vectors(lat[1], lon[1]), axis=1)
    np.testing.assert_allclose(great_circle_km(lat[0], lon[0], lat[1], lon[1]), chord_to_km(chord), rtol=1e-9)
