"""The geographic prior's truth: the world's oracle P(species | place[, day]) on a hand-made world, the oracle
product the prior is scored against, and the occurrence table the prior can train on (its errors name the row and
column)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geocontrast.data.occurrences import read_occurrences
from geocontrast.data.synthetic import truth as truth_module
from geocontrast.data.synthetic.landscape import Landscape
from geocontrast.data.synthetic.observations import (
    OUT_OF_SEASON,
    season_weights,
    species_weights,
    visit_day_probabilities,
)
from geocontrast.data.synthetic.oracle import oracle_product
from geocontrast.data.synthetic.truth import Truth, oracle_probabilities
from geocontrast.prior.scores import limits


@pytest.fixture
def truth():
    """A 2 x 2 cell world, the same in both rows: only 'A' grows in the west column; in the east column 'A' and
    'B' are equally suitable,
    'B' three times as abundant; 'A' flowers around day 100, 'B' around day 280, both 20 days wide."""
    zeros = np.zeros((2, 2))
    landscape = Landscape(np.array([0.0, 1.0]), np.array([0.0, 1.0]), zeros, zeros, zeros == 0)
    suitability = np.array([[[1.0, 0.5]] * 2, [[0.0, 0.5]] * 2])  # (S, H, W)
    taxonomy = pd.DataFrame(
        {
            "species": ["A", "B"],
            "abundance": [0.25, 0.75],
            "flowering_peak_doy": [100, 280],
            "flowering_width_days": [20, 20],
        }
    )
    return Truth(landscape, suitability, taxonomy)


def _season(day, peak, width=20.0):
    gap = min(abs(day - peak), 365 - abs(day - peak))
    return np.exp(-0.5 * (gap / width) ** 2)


def test_the_oracle_given_the_day_is_abundance_times_suitability_times_season(truth):
    probs = oracle_probabilities(truth, ["B", "A"], [0.0, 0.0, 0.0], [0.0, 1.0, 1.0], [100, 100, 280])
    assert probs[0].tolist() == [0.0, 1.0]  # west: only A grows
    a, b = 0.25 * 0.5 * _season(100, 100), 0.75 * 0.5 * _season(100, 280)
    np.testing.assert_allclose(probs[1], [b / (a + b), a / (a + b)], rtol=1e-9)
    a, b = 0.25 * 0.5 * _season(280, 100), 0.75 * 0.5 * _season(280, 280)
    np.testing.assert_allclose(probs[2], [b / (a + b), a / (a + b)], rtol=1e-9)


def test_the_oracle_without_the_day_averages_over_the_visit_days(truth):
    days = visit_day_probabilities()
    drawn = np.clip(np.random.default_rng(0).normal(130, 70, 400_000), 1, 364).round().astype(int)  # the process
    np.testing.assert_allclose(days, np.bincount(drawn, minlength=365)[1:] / drawn.size, atol=3e-4)
    expected_a = sum(
        p * 0.25 * _season(d, 100) / (0.25 * _season(d, 100) + 0.75 * _season(d, 280))
        for d, p in enumerate(days, start=1)
    )
    probs = oracle_probabilities(truth, ["A", "B"], [0.0, np.nan], [1.0, np.nan])
    np.testing.assert_allclose(probs[0], [expected_a, 1 - expected_a], rtol=1e-9)
    assert np.isnan(probs[1]).all()  # no coordinates: no oracle


@pytest.mark.parametrize("with_days", [False, True])
def test_the_oracle_a_block_of_rows_at_a_time_equals_the_oracle_in_one_block(truth, monkeypatch, with_days):
    lat, lon = np.array([0.0, 0.0, np.nan, 0.0, 0.0]), np.array([0.0, 1.0, 1.0, 1.0, 0.0])
    days = np.array([100.0, 280.0, 100.0, np.nan, 200.0]) if with_days else None
    whole = oracle_probabilities(truth, ["B", "A"], lat, lon, days)
    monkeypatch.setattr(truth_module, "ORACLE_BLOCK_ELEMENTS", 2 * len(truth.taxonomy))  # blocks of 2 rows
    blocks = oracle_probabilities(truth, ["B", "A"], lat, lon, days)
    # Without a day the oracle is two matrix products, whose rounding can follow the kernel the BLAS picks for a
    # block's shape (1 ulp apart on an AVX-512 Xeon): equal to 1e-12, NaN where the whole has NaN.
    np.testing.assert_allclose(blocks, whole, rtol=1e-12, atol=0)


def test_the_oracle_without_the_day_equals_the_day_by_day_average_also_where_nothing_flowers():
    """Narrow seasons (5 days) leave most days with no species flowering at a place: those days take the
    unseasonal weights (abundance x suitability), as the observation process does."""
    zeros = np.zeros((2, 2))
    landscape = Landscape(np.array([0.0, 1.0]), np.array([0.0, 1.0]), zeros, zeros, zeros == 0)
    suitability = np.array([[[1.0, 0.5]] * 2, [[0.2, 0.5]] * 2, [[0.0, 0.9]] * 2])
    taxonomy = pd.DataFrame(
        {
            "species": ["A", "B", "C"],
            "abundance": [0.2, 0.5, 0.3],
            "flowering_peak_doy": [60, 150, 300],
            "flowering_width_days": [5, 5, 5],
        }
    )
    world = Truth(landscape, suitability, taxonomy)
    lat, lon = np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0])
    local = landscape.sample(suitability, lon, lat).T
    by_day = sum(
        p * (w := species_weights(local, np.full(lat.size, day), taxonomy)) / w.sum(axis=1, keepdims=True)
        for day, p in enumerate(visit_day_probabilities(), start=1)
    )
    assert season_weights(np.array([220.0]), taxonomy).max() <= OUT_OF_SEASON  # e.g. day 220: nothing flowers
    np.testing.assert_allclose(oracle_probabilities(world, ["A", "B", "C"], lat, lon), by_day, rtol=1e-9)


def _collection():
    """Five photos of the 2 x 2 world with their splits: two scored test photos (east, dated and not), one test
    photo without coordinates, one without a species, one train photo."""
    manifest = pd.DataFrame(
        {
            "image_id": ["p0", "p1", "p2", "p3", "p4"],
            "species": ["B", "A", "A", None, "B"],
            "lat": [0.0, 0.0, np.nan, 0.0, 0.0],
            "lon": [1.0, 1.0, np.nan, 0.0, 1.0],
            "has_coords": [True, True, False, True, True],
            "observed_on": pd.to_datetime(["2021-10-07", None, "2021-04-10", "2021-04-10", "2021-04-10"]),
        }
    )
    splits = pd.DataFrame({"image_id": manifest["image_id"], "split": ["test", "test", "test", "test", "train"]})
    return manifest, splits


def test_the_oracle_product_ranks_the_scored_test_photos_and_marks_the_true_ranges(truth):
    manifest, splits = _collection()
    product = oracle_product(truth, manifest, splits)
    assert product["classes"].tolist() == ["A", "B"] and product["rows"].tolist() == [0, 1]
    # Undated, east: most visits fall near A's season (day 100), so A first; on day 280 (2021-10-07) only B flowers.
    assert product["location_ranked"].tolist() == [[0, 1], [0, 1]] and product["location_usable"].all()
    assert product["location_date_ranked"].tolist() == [[1, 0], [-1, -1]]  # the second photo has no date
    assert product["location_date_usable"].tolist() == [True, False]
    # A's range: both columns (0.5 >= 0.1 x 1.0); B's: the east column only.
    assert product["present"].tolist() == [[True, True, True, True], [False, True, False, True]]
    assert product["cell_lon"].tolist() == [0.0, 1.0, 0.0, 1.0]


def test_the_prior_is_scored_against_the_oracle_product_and_refuses_another_replicates(truth, tmp_path):
    manifest, splits = _collection()
    np.savez(tmp_path / "oracle.npz", **oracle_product(truth, manifest, splits))
    in_range = lambda lat, lon: np.stack([np.ones_like(lon), lon], axis=1)  # noqa: E731  (A everywhere, B east)
    scored = limits(tmp_path / "oracle.npz", ["A", "B"], np.array([0, 1]), np.array([1, 0]), {"top1": 0.5}, in_range)
    assert scored["prior_only_test"][1] == {"model": "limit: oracle P(y | x)", "top1": 0.5, "top5": 1.0, "n": 2}
    assert scored["prior_only_test"][2] == {"model": "limit: oracle P(y | x, date)", "top1": 1.0, "top5": 1.0, "n": 1}
    assert scored["range_auc"] == {"A": None, "B": 1.0}  # A is present everywhere: no absence cell
    with pytest.raises(ValueError, match="oracle.npz: its test photos are not this replicate's"):
        limits(tmp_path / "oracle.npz", ["A", "B"], np.array([0]), np.array([1]), {}, in_range)
    with pytest.raises(ValueError, match="oracle.npz: its classes are not the manifest's species"):
        limits(tmp_path / "oracle.npz", ["B", "A"], np.array([0, 1]), np.array([1, 0]), {}, in_range)


def test_the_oracle_names_classes_the_world_lacks(truth):
    with pytest.raises(ValueError, match="no species.*'C'"):
        oracle_probabilities(truth, ["A", "C"], [0.0], [0.0])


def _write(tmp_path, rows, suffix=".csv"):
    table = pd.DataFrame(rows, columns=["species", "decimalLatitude", "decimalLongitude", "eventDate"])
    path = tmp_path / f"occurrences{suffix}"
    table.to_csv(path, index=False) if suffix == ".csv" else table.to_parquet(path)
    return path


GOOD = [
    ["Quercus lobata", "38.1", "-122.2", "2021-05-03"],
    ["Quercus lobata", "38.2", "-122.1", "2021-12-31T10:00:00Z"],
    ["", "38.0", "-122.0", "2021-05-03"],
    ["Quercus agrifolia", "", "", "2020-01-01/2020-01-31"],
    ["Quercus agrifolia", "34.0", "-117.0", "2020"],
]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_occurrences_keep_usable_records_and_count_the_rest(tmp_path, suffix):
    records, counts = read_occurrences(_write(tmp_path, GOOD, suffix))
    assert counts == {"read": 5, "kept": 3, "no_species": 1, "no_coordinates": 1}
    assert records["species"].tolist() == ["Quercus lobata", "Quercus lobata", "Quercus agrifolia"]
    np.testing.assert_allclose(records["day_of_year"], [123, 365, np.nan])
    np.testing.assert_allclose(records["lon"], [-122.2, -122.1, -117.0])


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (["Quercus lobata", "38.1", "-122.2", "3 May 2021"], r"row 2, column eventDate: '3 May 2021'"),
        (["Quercus lobata", "98.1", "-122.2", "2021-05-03"], r"row 2, column decimalLatitude: '98.1'"),
        (["Quercus lobata", "38.1", "east", "2021-05-03"], r"row 2, column decimalLongitude: 'east'"),
    ],
)
def test_occurrence_errors_name_the_row_and_column(tmp_path, row, message):
    with pytest.raises(ValueError, match=message):
        read_occurrences(_write(tmp_path, [GOOD[0], row]))


def test_occurrences_without_a_darwin_core_column_are_refused(tmp_path):
    path = tmp_path / "occurrences.csv"
    pd.DataFrame({"species": ["A"], "decimalLatitude": [1.0], "decimalLongitude": [2.0]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"occurrences.csv: missing Darwin Core column\(s\) \['eventDate'\]"):
        read_occurrences(path)
