"""Manifest contract: validation errors name what is wrong; valid rows come back normalised."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from geocontrast.data.manifest import (
    MANIFEST_COLUMNS,
    ManifestError,
    main,
    read_manifest,
    summarise_manifest,
    validate_manifest,
    write_manifest,
)


def test_valid_manifest_is_normalised_to_contract_dtypes(make_manifest):
    manifest = validate_manifest(make_manifest(2), image_root=None)
    assert list(manifest.columns) == [*MANIFEST_COLUMNS, "has_coords"]
    assert manifest["lat"].dtype == np.float64 and manifest["coord_uncertainty_m"].dtype == np.float64
    assert manifest["observed_on"].dtype == "datetime64[ns]"
    assert pd.api.types.is_string_dtype(manifest["species"]) and manifest["species"].dtype != object
    assert manifest["has_coords"].dtype == bool


def test_missing_columns_are_all_named(make_manifest):
    with pytest.raises(ManifestError, match="missing columns: lat, genus"):
        validate_manifest(make_manifest().drop(columns=["lat", "genus"]), image_root=None)


def test_missing_image_id_names_the_row(make_manifest):
    with pytest.raises(ManifestError, match=r"missing image_id in 1 row: row 1 "):
        validate_manifest(make_manifest(image_id=["a", None, "c"]), image_root=None)


def test_duplicate_image_ids_are_named_with_their_rows(make_manifest):
    with pytest.raises(ManifestError, match=r"duplicate image_id: 'a' at rows \[0, 2\]"):
        validate_manifest(make_manifest(image_id=["a", "b", "a"]), image_root=None)


def test_missing_path_names_the_row_and_image_id(make_manifest):
    with pytest.raises(ManifestError, match=r"missing path in 1 row: row 2 \(image_id 'img2'\)"):
        validate_manifest(make_manifest(path=["a.png", "b.png", None]), image_root=None)


def test_latitude_out_of_range_names_row_image_id_and_value(make_manifest):
    with pytest.raises(ManifestError, match=r"lat outside \[-90, 90\] in 1 row: row 1 \(image_id 'img1', lat 91.5\)"):
        validate_manifest(make_manifest(lat=[0.0, 91.5, 0.0]), image_root=None)


def test_longitude_out_of_range_names_row_image_id_and_value(make_manifest):
    with pytest.raises(ManifestError, match=r"lon outside \[-180, 180\] in 1 row: row 0 \(image_id 'img0', lon -180.5"):
        validate_manifest(make_manifest(lon=[-180.5, 0.0, 0.0]), image_root=None)


def test_many_bad_rows_list_the_first_ten_and_count_the_rest(make_manifest):
    with pytest.raises(ManifestError) as error:
        validate_manifest(make_manifest(12, lat=[100.0] * 12), image_root=None)
    assert "12 rows: row 0 " in str(error.value) and "row 9 " in str(error.value)
    assert "row 10 " not in str(error.value) and "... and 2 more" in str(error.value)


def test_non_numeric_coordinate_names_the_row_and_value(make_manifest):
    with pytest.raises(ManifestError, match=r"non-numeric lon in 1 row: row 1 \(image_id 'img1', lon '12W'\)"):
        validate_manifest(make_manifest(lon=["1.0", "12W", "2.0"]), image_root=None)


def test_latitude_without_longitude_names_the_row(make_manifest):
    with pytest.raises(ManifestError, match=r"lat and lon must be both present or both missing; 1 row: row 2 "):
        validate_manifest(make_manifest(lon=[1.0, 2.0, None]), image_root=None)


def test_unparseable_date_names_the_row_and_value(make_manifest):
    expected = r"unparseable observed_on in 1 row: row 0 \(image_id 'img0', observed_on 'spring'\)"
    with pytest.raises(ManifestError, match=expected):
        validate_manifest(make_manifest(observed_on=["spring", "2021-05-01", None]), image_root=None)


def test_species_mapped_to_two_genera_is_rejected_naming_both_and_the_rows(make_manifest):
    expected = r"species 'Quercus agrifolia' has 2 genus values \['Quercus', 'Querqus'\] at rows \[0, 1, 2\]"
    with pytest.raises(ManifestError, match=expected):
        validate_manifest(make_manifest(genus=["Quercus", "Querqus", "Quercus"]), image_root=None)


def test_species_with_a_missing_ancestor_in_one_row_is_rejected(make_manifest):
    with pytest.raises(ManifestError, match=r"species 'Quercus agrifolia' has 2 family values"):
        validate_manifest(make_manifest(family=["Fagaceae", None, "Fagaceae"]), image_root=None)


def test_missing_image_file_is_named(make_manifest, write_image, tmp_path):
    write_image(tmp_path / "img0.png", (4, 4))
    write_image(tmp_path / "img2.png", (4, 4))
    expected = r"unreadable image files under .* row 1 \(image_id 'img1', path 'img1.png'\)"
    with pytest.raises(ManifestError, match=expected):
        validate_manifest(make_manifest(), image_root=tmp_path)


def test_directory_is_not_a_readable_image(make_manifest, tmp_path):
    (tmp_path / "img0.png").mkdir()
    with pytest.raises(ManifestError, match=r"path 'img0.png'"):
        validate_manifest(make_manifest(1), image_root=tmp_path)


def test_unreadable_image_file_is_named(make_manifest, write_image, tmp_path, monkeypatch):
    write_image(tmp_path / "img0.png", (4, 4))
    # chmod cannot make a file unreadable for root (CI runs as root), so deny read access at the os.access check.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(ManifestError, match=r"path 'img0.png'"):
        validate_manifest(make_manifest(1), image_root=tmp_path)


def test_existing_image_files_pass(make_manifest, write_image, tmp_path):
    for i in range(3):
        write_image(tmp_path / f"img{i}.png", (4, 4))
    assert len(validate_manifest(make_manifest(), image_root=tmp_path)) == 3


def test_rows_without_coordinates_are_kept_and_flagged(make_manifest):
    manifest = validate_manifest(make_manifest(lat=[1.0, None, 3.0], lon=[1.0, None, 3.0]), image_root=None)
    assert manifest["image_id"].tolist() == ["img0", "img1", "img2"]
    assert manifest["has_coords"].tolist() == [True, False, True]


def test_input_row_order_and_index_are_not_carried_over(make_manifest):
    table = make_manifest(image_id=["c", "a", "b"]).set_axis([7, 3, 5])
    manifest = validate_manifest(table, image_root=None)
    assert manifest["image_id"].tolist() == ["c", "a", "b"]
    assert manifest.index.tolist() == [0, 1, 2]


def test_utc_offset_does_not_shift_the_local_observation_date(make_manifest):
    dates = ["2021-05-01T23:30:00-07:00", "2021-05-02T00:30:00+09:00", None]
    manifest = validate_manifest(make_manifest(observed_on=dates), image_root=None)
    assert manifest["observed_on"].tolist()[:2] == [pd.Timestamp("2021-05-01"), pd.Timestamp("2021-05-02")]
    assert pd.isna(manifest["observed_on"].iloc[2])


def test_integral_float_ids_become_plain_strings(make_manifest):
    manifest = validate_manifest(make_manifest(taxon_id=[47850.0, np.nan, 3.0]), image_root=None)
    assert manifest["taxon_id"].tolist()[::2] == ["47850", "3"]
    assert pd.isna(manifest["taxon_id"].iloc[1])


def test_blank_strings_become_missing(make_manifest):
    manifest = validate_manifest(make_manifest(species=["  ", "Quercus lobata", "Quercus lobata"]), image_root=None)
    assert manifest["species"].isna().tolist() == [True, False, False]


def test_parquet_round_trip_keeps_values_and_dtypes(make_manifest, tmp_path):
    manifest = validate_manifest(
        make_manifest(
            lat=[1.0, None, 3.0],
            lon=[1.0, None, 3.0],
            observed_on=["2021-05-01", None, "1890-12-31"],
            species=["Quercus agrifolia", None, "Quercus agrifolia"],
        ),
        image_root=None,
    )
    write_manifest(manifest, tmp_path / "manifest.parquet")
    pd.testing.assert_frame_equal(read_manifest(tmp_path / "manifest.parquet"), manifest)


def test_observed_on_is_stored_as_a_date(make_manifest, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_manifest(validate_manifest(make_manifest(), image_root=None), tmp_path / "manifest.parquet")
    assert pq.read_schema(tmp_path / "manifest.parquet").field("observed_on").type == pa.date32()


def test_summary_counts_images_labels_coordinates_and_taxa(make_manifest):
    manifest = validate_manifest(
        make_manifest(
            4,
            observation_id=["o1", "o1", "o2", None],
            observer_id=["u1", "u1", "u2", "u2"],
            lat=[1.0, 1.0, None, 2.0],
            lon=[1.0, 1.0, None, 2.0],
            coord_uncertainty_m=[5.0, 5.0, None, 25_000.0],
            species=["Quercus agrifolia", "Quercus agrifolia", "Quercus lobata", None],
        ),
        image_root=None,
    )
    summary = summarise_manifest(manifest)
    assert {k: summary[k] for k in ("n_images", "n_observations", "n_observers", "n_species", "n_labelled")} == {
        "n_images": 4,
        "n_observations": 3,
        "n_observers": 2,
        "n_species": 2,
        "n_labelled": 3,
    }
    assert summary["n_without_coords"] == 1 and summary["n_obscured"] == 1
    assert summary["images_per_species"] == {"min": 1, "median": 1.5, "max": 2}
    assert summary["taxa_per_rank"]["species"] == 2 and summary["taxa_per_rank"]["genus"] == 1
    json.dumps(summary)


def test_cli_writes_manifest_and_summary(make_manifest, write_image, tmp_path):
    for i in range(3):
        write_image(tmp_path / "images" / f"img{i}.png", (4, 4))
    make_manifest().to_csv(tmp_path / "raw.csv", index=False)
    argv = [
        "--source",
        str(tmp_path / "raw.csv"),
        "--image-root",
        str(tmp_path / "images"),
        "--out",
        str(tmp_path / "out" / "manifest.parquet"),
        "--summary",
        str(tmp_path / "out" / "summary.json"),
    ]
    assert main(argv) == 0
    assert read_manifest(tmp_path / "out" / "manifest.parquet")["image_id"].tolist() == ["img0", "img1", "img2"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["n_images"] == 3


def test_cli_rejects_invalid_source_naming_it_and_writes_nothing(make_manifest, tmp_path, capsys):
    make_manifest(lat=[0.0, 95.0, 0.0]).to_csv(tmp_path / "raw.csv", index=False)
    argv = [
        "--source",
        str(tmp_path / "raw.csv"),
        "--image-root",
        str(tmp_path),
        "--out",
        str(tmp_path / "manifest.parquet"),
        "--summary",
        str(tmp_path / "summary.json"),
    ]
    assert main(argv) == 1
    assert capsys.readouterr().err.startswith(f"{tmp_path / 'raw.csv'}: ")
    assert not (tmp_path / "manifest.parquet").exists() and not (tmp_path / "summary.json").exists()
