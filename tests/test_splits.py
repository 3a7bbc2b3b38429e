"""Splits contract: observation-level train/val/test in three modes, nested species-stratified label budgets."""

import json

import numpy as np
import pandas as pd
import pytest

from geocontrast.data.manifest import validate_manifest, write_manifest
from geocontrast.data.splits import labelled_column, main, make_splits, spatial_blocks


@pytest.fixture
def flora(make_manifest):
    """600 images of 300 two-photo observations over 6 species of unequal size, scattered over California."""
    rng = np.random.default_rng(7)
    n_observations = 300
    species = rng.choice([f"Species {s}" for s in "ABCDEF"], n_observations, p=[0.4, 0.2, 0.15, 0.1, 0.1, 0.05])
    lat = rng.uniform(33.0, 41.0, n_observations)
    lon = rng.uniform(-123.0, -115.0, n_observations)
    dates = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 3000, n_observations), "D")
    twice = np.repeat(np.arange(n_observations), 2)
    return validate_manifest(
        make_manifest(
            2 * n_observations,
            observation_id=[f"obs{o}" for o in twice],
            species=species[twice],
            genus=[s.split()[0] for s in species[twice]],
            lat=lat[twice],
            lon=lon[twice],
            observed_on=dates[twice].strftime("%Y-%m-%d"),
        ),
        image_root=None,
    )


def _straddling_groups(splits: pd.DataFrame, groups) -> list:
    per_group = splits.groupby(np.asarray(groups))["split"].nunique()
    return per_group[per_group > 1].index.tolist()


def test_output_has_image_id_split_and_one_column_per_label_budget_in_manifest_order(flora):
    splits = make_splits(flora)
    assert list(splits.columns) == ["image_id", "split", "labelled_1", "labelled_10", "labelled_100"]
    assert splits["image_id"].tolist() == flora["image_id"].tolist()
    assert set(splits["split"]) == {"train", "val", "test"}


def test_labelled_column_names_use_the_percentage():
    assert [labelled_column(f) for f in (0.01, 0.1, 1.0, 0.005, 0.07)] == [
        "labelled_1",
        "labelled_10",
        "labelled_100",
        "labelled_0.5",
        "labelled_7",
    ]


@pytest.mark.parametrize("mode", ["random", "spatial", "date"])
def test_same_seed_gives_the_same_splits(flora, mode):
    pd.testing.assert_frame_equal(make_splits(flora, mode, seed=3), make_splits(flora, mode, seed=3))


@pytest.mark.parametrize("mode", ["random", "spatial"])
def test_another_seed_gives_other_splits(flora, mode):
    assert not make_splits(flora, mode, seed=0)["split"].equals(make_splits(flora, mode, seed=1)["split"])


def test_another_seed_gives_other_label_budgets_of_the_same_train_images(flora):
    everything_train = {"fractions": (1.0, 0.0, 0.0)}
    assert not make_splits(flora, seed=0, **everything_train)["labelled_10"].equals(
        make_splits(flora, seed=1, **everything_train)["labelled_10"]
    )


@pytest.mark.parametrize("mode", ["random", "spatial", "date"])
def test_photos_of_one_observation_share_a_split(flora, mode):
    # Give the two photos of each observation different places and dates to tempt a row-level split.
    shifted = flora.assign(
        lat=flora["lat"] + np.tile([0.0, 0.6], len(flora) // 2),
        observed_on=flora["observed_on"] + pd.to_timedelta(np.tile([0, 400], len(flora) // 2), "D"),
    )
    assert _straddling_groups(make_splits(shifted, mode), shifted["observation_id"]) == []


def test_random_split_meets_fractions_within_one_observation_per_species(flora):
    splits = make_splits(flora, fractions=(0.6, 0.15, 0.25))
    observations = splits.assign(species=flora["species"]).loc[~flora["observation_id"].duplicated()]
    for species, group in observations.groupby("species"):
        counts = group["split"].value_counts()
        for split, fraction in zip(("train", "val", "test"), (0.6, 0.15, 0.25)):
            assert abs(counts.get(split, 0) - fraction * len(group)) < 1, (species, split)


@pytest.mark.parametrize(("n_observations", "expected"), [(1, ["train"]), (3, ["test", "train", "train"])])
def test_species_with_few_observations_fill_train_first_then_test(make_manifest, n_observations, expected):
    manifest = validate_manifest(make_manifest(n_observations), image_root=None)
    assert sorted(make_splits(manifest)["split"]) == expected


def test_label_budgets_are_nested(flora):
    splits = make_splits(flora, label_fractions=(0.1, 0.01, 0.5, 1.0))
    assert not (splits["labelled_1"] & ~splits["labelled_10"]).any()
    assert not (splits["labelled_10"] & ~splits["labelled_50"]).any()
    assert not (splits["labelled_50"] & ~splits["labelled_100"]).any()


def test_label_budgets_take_rounded_fraction_of_each_species_train_images_or_the_minimum(flora):
    splits = make_splits(flora, label_fractions=(0.01, 0.1, 0.3), min_labelled_per_species=2)
    train = splits.assign(species=flora["species"])[splits["split"] == "train"]
    for species, group in train.groupby("species"):
        n = len(group)
        assert group["labelled_1"].sum() == min(n, 2), species
        assert group["labelled_10"].sum() == min(n, max(2, int(np.floor(0.1 * n + 0.5)))), species
        assert group["labelled_30"].sum() == min(n, max(2, int(np.floor(0.3 * n + 0.5)))), species


def test_labelled_100_is_every_labelled_train_image(flora):
    manifest = flora.assign(species=flora["species"].where(np.arange(len(flora)) % 7 != 0))
    splits = make_splits(manifest)
    assert splits["labelled_100"].equals((splits["split"] == "train") & manifest["species"].notna())


@pytest.mark.parametrize("mode", ["random", "spatial", "date"])
def test_only_train_images_are_labelled(flora, mode):
    splits = make_splits(flora, mode)
    assert not (splits.filter(like="labelled_").any(axis=1) & (splits["split"] != "train")).any()


@pytest.mark.parametrize("mode", ["random", "spatial", "date"])
def test_unlabelled_images_go_to_train_and_are_never_labelled(flora, mode):
    unlabelled_observation = flora["observation_id"].isin([f"obs{o}" for o in range(0, 300, 5)])
    manifest = flora.assign(species=flora["species"].mask(unlabelled_observation))
    splits = make_splits(manifest, mode)
    assert (splits.loc[unlabelled_observation, "split"] == "train").all()
    assert not splits.loc[unlabelled_observation].filter(like="labelled_").any().any()


def test_unlabelled_photo_follows_its_labelled_observation(make_manifest):
    manifest = validate_manifest(
        make_manifest(2, observation_id=["o1", "o1"], species=[None, "Quercus agrifolia"]), image_root=None
    )
    splits = make_splits(manifest, fractions=(0.0, 0.0, 1.0))
    assert splits["split"].tolist() == ["test", "test"] and not splits["labelled_100"].any()


def test_images_without_observation_id_are_split_one_by_one(flora):
    splits = make_splits(flora.assign(observation_id=None))
    assert splits["split"].value_counts()["test"] == pytest.approx(0.2 * len(flora), abs=6)


def test_spatial_blocks_never_straddle_splits(flora):
    splits = make_splits(flora, "spatial", block_km=100)
    blocks = spatial_blocks(flora["lat"], flora["lon"], 100)
    assert len(set(blocks)) > 10
    assert _straddling_groups(splits, blocks) == []


def test_spatial_split_fills_roughly_the_fractions(flora):
    shares = make_splits(flora, "spatial", block_km=50)["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.7, abs=0.05) and shares["test"] == pytest.approx(0.2, abs=0.05)


def test_spatial_rows_without_coordinates_go_to_train(flora):
    no_coords = np.arange(len(flora)) < 40
    manifest = flora.assign(lat=flora["lat"].mask(no_coords), lon=flora["lon"].mask(no_coords))
    assert (make_splits(manifest, "spatial").loc[no_coords, "split"] == "train").all()


def test_spatial_blocks_group_nearby_points_and_separate_distant_ones():
    # Points 1 km apart share a 50 km block; points 111 km apart (one degree of longitude at the equator) do not.
    blocks = spatial_blocks(np.array([0.001, 0.001, 0.001]), np.array([0.001, 0.01, 1.001]), 50.0)
    assert blocks[0] == blocks[1] != blocks[2]


def test_spatial_block_of_a_point_without_coordinates_is_minus_one():
    assert spatial_blocks(np.array([np.nan, 10.0]), np.array([5.0, 5.0]), 50.0)[0] == -1


def test_date_split_puts_earlier_dates_in_train_than_val_and_val_than_test(flora):
    splits = make_splits(flora, "date")
    dates = {name: flora.loc[splits["split"] == name, "observed_on"] for name in ("train", "val", "test")}
    assert dates["train"].max() <= dates["val"].min() and dates["val"].max() <= dates["test"].min()
    assert (splits["split"] == "test").mean() == pytest.approx(0.2, abs=0.02)


def test_date_rows_without_date_go_to_train(flora):
    undated = np.arange(len(flora)) >= len(flora) - 40
    splits = make_splits(flora.assign(observed_on=flora["observed_on"].mask(undated)), "date")
    assert (splits.loc[undated, "split"] == "train").all()


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"mode": "geographic"}, "mode"),
        ({"fractions": (0.7, 0.2, 0.2)}, "fractions"),
        ({"fractions": (1.1, -0.1, 0.0)}, "fractions"),
        ({"fractions": (0.5, 0.5)}, "fractions"),
        ({"label_fractions": (0.0, 0.1)}, "label_fractions"),
        ({"label_fractions": (0.1, 1.5)}, "label_fractions"),
        ({"mode": "spatial", "block_km": 0}, "block_km"),
        ({"min_labelled_per_species": -1}, "min_labelled_per_species"),
    ],
)
def test_invalid_arguments_are_rejected_naming_the_argument(flora, arguments, named):
    with pytest.raises(ValueError, match=named):
        make_splits(flora, **arguments)


def test_manifest_without_the_columns_a_mode_needs_is_rejected_naming_them(flora):
    with pytest.raises(ValueError, match="observed_on"):
        make_splits(flora.drop(columns=["observed_on"]), "date")


def test_cli_writes_splits_and_summary(flora, tmp_path):
    write_manifest(flora, tmp_path / "manifest.parquet")
    argv = [
        "--manifest",
        str(tmp_path / "manifest.parquet"),
        "--out",
        str(tmp_path / "splits.parquet"),
        "--summary",
        str(tmp_path / "splits.json"),
        "--mode",
        "spatial",
        "--seed",
        "2",
        "--block-km",
        "80",
    ]
    assert main(argv) == 0
    splits = pd.read_parquet(tmp_path / "splits.parquet")
    pd.testing.assert_frame_equal(splits, make_splits(flora, "spatial", seed=2, block_km=80), check_dtype=False)
    summary = json.loads((tmp_path / "splits.json").read_text())
    assert sum(s["n_images"] for s in summary["splits"].values()) == len(flora)
    assert summary["splits"]["test"]["n_species"] == flora.loc[splits["split"] == "test", "species"].nunique()
    assert summary["label_budgets"]["labelled_100"]["n_images"] == int(splits["labelled_100"].sum())
    assert summary["mode"] == "spatial" and summary["seed"] == 2
