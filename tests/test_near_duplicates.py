"""Near-duplicate photos: the hash finds a resized, re-encoded copy and tells different photos apart; the split
keeps a group together like an observation; the manifest can drop all but one."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sources_fixtures import photo_bytes

from geocontrast.data import manifest as manifest_module
from geocontrast.data import near_duplicates
from geocontrast.data.manifest import validate_manifest
from geocontrast.data.splits import make_splits

MAX_DISTANCE = 2  # the schema's default


def resized_copy(data: bytes, scale: float, quality: int) -> bytes:
    """What a re-upload does to a photo: resized, then JPEG-encoded again at another quality."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    size = (round(image.width * scale), round(image.height * scale))
    buffer = io.BytesIO()
    image.resize(size, Image.Resampling.LANCZOS).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture
def photo_folder(tmp_path):
    """40 different photos (320 × 240 px) and, as photo 40, a half-size copy of photo 7 re-encoded at quality 60."""
    for seed in range(40):
        (tmp_path / f"{seed}.jpg").write_bytes(photo_bytes(seed, size=(320, 240), quality=90))
    (tmp_path / "40.jpg").write_bytes(resized_copy((tmp_path / "7.jpg").read_bytes(), 0.5, 60))
    return tmp_path


def test_a_resized_re_encoded_copy_is_found_and_different_photos_are_not(photo_folder):
    hashes, flat, failed = near_duplicates.photo_hashes([photo_folder / f"{i}.jpg" for i in range(41)])
    assert not flat.any() and not failed.any()
    group = near_duplicates.near_duplicate_groups(hashes, MAX_DISTANCE)
    assert np.flatnonzero(group >= 0).tolist() == [7, 40] and group[40] == 7  # a group is named by its first row
    i, j = np.triu_indices(40, 1)
    assert near_duplicates.hamming(hashes[i], hashes[j]).min() > 4 * MAX_DISTANCE  # 18 bits apart or more


def test_groups_join_transitively_and_featureless_photos_join_none():
    hashes = np.array([0b0, 0b11, 0b1111, 0b111 << 40, 0, 0], dtype=np.uint64)
    usable = np.array([True, True, True, True, False, False])  # the two zero-filled rows have no usable hash
    assert near_duplicate_groups_of(hashes, usable) == [0, 0, 0, -1, -1, -1]
    flat = np.zeros((2, 32, 32, 3), np.uint8)
    assert near_duplicates.featureless(flat).all()


def near_duplicate_groups_of(hashes, usable):
    return near_duplicates.near_duplicate_groups(hashes, MAX_DISTANCE, usable=usable).tolist()


def test_the_band_search_finds_every_pair_the_exhaustive_search_finds():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, 300, dtype=np.uint64)
    flips = np.left_shift(np.uint64(1), rng.integers(0, 64, (300, 3)).astype(np.uint64))
    copies = hashes ^ flips[:, 0] ^ np.where(rng.random(300) < 0.5, flips[:, 1], np.uint64(0))
    both = np.concatenate([hashes, copies])
    group = near_duplicates.near_duplicate_groups(both, MAX_DISTANCE)
    i, j = np.triu_indices(both.size, 1)
    close = near_duplicates.hamming(both[i], both[j]) <= MAX_DISTANCE
    assert (group[i[close]] == group[j[close]]).all() and (group[i[close]] >= 0).all()


def test_a_copy_lands_in_the_same_split_as_its_original(photo_folder, make_manifest):
    n = 41
    species = [f"Quercus sp{i % 4}" for i in range(n)]
    raw = make_manifest(n, path=[f"{i}.jpg" for i in range(n)], species=species, genus=["Quercus"] * n)
    manifest, table, summary = manifest_module.find_near_duplicates(
        validate_manifest(raw, photo_folder), photo_folder, {"max_distance": MAX_DISTANCE, "drop": False}
    )
    assert summary == {"max_distance": 2, "n_groups": 1, "n_photos": 2, "n_featureless": 0, "n_undecodable": 0}
    group = table["near_duplicate_group"].to_numpy()
    for seed in range(20):  # the copy would go elsewhere under most seeds if it were split on its own
        splits = make_splits(manifest, seed=seed, near_duplicate_group=group)
        assert splits.at[7, "split"] == splits.at[40, "split"]
    apart = [make_splits(manifest, seed=seed)["split"] for seed in range(20)]
    assert any(split[7] != split[40] for split in apart)


def test_without_near_duplicates_the_splits_are_those_of_before(make_manifest):
    manifest = validate_manifest(make_manifest(30, species=[f"Quercus sp{i % 3}" for i in range(30)]))
    for mode in ("random", "date"):
        before = make_splits(manifest, mode=mode, seed=3)
        after = make_splits(manifest, mode=mode, seed=3, near_duplicate_group=np.full(30, -1))
        pd.testing.assert_frame_equal(before, after)


def test_drop_keeps_the_first_photo_of_each_group(photo_folder, make_manifest):
    raw = make_manifest(41, path=[f"{i}.jpg" for i in range(41)])
    manifest, table, summary = manifest_module.find_near_duplicates(
        validate_manifest(raw, photo_folder), photo_folder, {"max_distance": MAX_DISTANCE, "drop": True}
    )
    assert len(manifest) == 40 and "img40" not in set(manifest["image_id"]) and summary["n_dropped"] == 1
    assert (table["near_duplicate_group"] == -1).all() and table["image_id"].tolist() == manifest["image_id"].tolist()


def test_manifest_and_splits_clis_write_the_groups_and_their_counts(photo_folder, make_manifest, tmp_path):
    from geocontrast.data import splits as splits_module

    n = 41
    raw = make_manifest(n, path=[f"{i}.jpg" for i in range(n)], species=[f"Quercus sp{i % 4}" for i in range(n)])
    source, out = tmp_path / "photos.parquet", tmp_path / "out"
    raw.to_parquet(source)
    settings = json.dumps({"max_distance": MAX_DISTANCE, "drop": False})
    argv = ["--source", str(source), "--image-root", str(photo_folder), "--out", str(out / "manifest.parquet")]
    argv += ["--summary", str(out / "summary.json"), "--near-duplicates", str(out / "nd.parquet")]
    assert manifest_module.main([*argv, "--near-duplicates-json", settings, "--workers", "2"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["near_duplicates"]["n_groups"] == 1 and summary["near_duplicates"]["n_photos"] == 2
    argv = ["--manifest", str(out / "manifest.parquet"), "--out", str(out / "s.parquet")]
    argv += ["--summary", str(out / "s.json"), "--near-duplicates", str(out / "nd.parquet")]
    assert splits_module.main(argv) == 0
    assert json.loads((out / "s.json").read_text())["near_duplicates"] == {
        "n_groups": 1,
        "n_photos": 2,
        "n_groups_across_splits": 0,
    }
    assert near_duplicates.describe(summary["near_duplicates"]) == "1 near-duplicate groups, 2 photos"


def test_the_results_summary_says_how_many_near_duplicates_the_collection_had():
    from geocontrast.results.table import collection_text

    summary = {"n_images": 121, "n_without_coords": 1, "near_duplicates": {"n_groups": 1, "n_photos": 2}}
    assert (
        collection_text({None: summary})
        == "\nCollection: 121 photos, 120 with coordinates; 1 near-duplicate groups, 2 photos\n"
    )
    dropped = {**summary, "near_duplicates": {"n_groups": 1, "n_photos": 2, "n_dropped": 1}}
    assert collection_text({None: dropped}).endswith("2 photos (1 dropped)\n")


def test_the_results_summary_gives_each_replicates_world_its_own_line(tmp_path):
    from geocontrast.results.table import collection_text, read_collections

    paths = []
    for replicate, n_images in ((0, 300), (1, 310)):
        path = tmp_path / "replicates" / str(replicate) / "manifest_summary.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"n_images": n_images, "n_without_coords": 0}))
        paths.append(path)
    assert collection_text(read_collections(paths)) == (
        "\nCollection of replicate 0 (its own world): 300 photos, 300 with coordinates"
        "\nCollection of replicate 1 (its own world): 310 photos, 310 with coordinates\n"
    )
