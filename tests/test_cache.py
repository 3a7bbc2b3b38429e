"""Image cache contract: (N, res, res, 3) uint8, rows in manifest order, shorter side resized then centre-cropped."""

import json

import numpy as np
import pytest
from PIL import Image, ImageOps

from geocontrast.data.cache import CorruptImageError, build_image_cache, load_image_cache, main
from geocontrast.data.manifest import validate_manifest, write_manifest


def _random_pixels(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_rows_follow_the_given_order_and_equal_a_direct_fit_decode(write_image, tmp_path):
    paths = [write_image(tmp_path / f"{i}.png", _random_pixels(i, 12 + 3 * i, 20)) for i in range(3)][::-1]
    build_image_cache(paths, 8, tmp_path / "cache.npy", progress=False)
    cache = load_image_cache(tmp_path / "cache.npy")
    assert cache.shape == (3, 8, 8, 3) and cache.dtype == np.uint8
    for row, path in enumerate(paths):
        expected = np.asarray(ImageOps.fit(Image.open(path).convert("RGB"), (8, 8)))
        np.testing.assert_array_equal(cache[row], expected)


# Red | green | blue bands across 120 px: the centred 40 px square [40, 80) lies inside green [32, 88) with
# a margin wider than the bicubic filter's reach when shrinking 40 px to 10.
RED_GREEN_BLUE = np.zeros((40, 120, 3), dtype=np.uint8)
RED_GREEN_BLUE[:, :32, 0] = RED_GREEN_BLUE[:, 32:88, 1] = RED_GREEN_BLUE[:, 88:, 2] = 255


def test_wide_image_is_centre_cropped(write_image, tmp_path):
    build_image_cache([write_image(tmp_path / "wide.png", RED_GREEN_BLUE)], 10, tmp_path / "cache.npy", progress=False)
    assert np.all(np.load(tmp_path / "cache.npy")[0] == (0, 255, 0))


def test_tall_image_is_centre_cropped(write_image, tmp_path):
    tall = RED_GREEN_BLUE.transpose(1, 0, 2).copy()
    build_image_cache([write_image(tmp_path / "tall.png", tall)], 10, tmp_path / "cache.npy", progress=False)
    assert np.all(np.load(tmp_path / "cache.npy")[0] == (0, 255, 0))


def test_large_jpeg_decoded_at_reduced_scale_stays_close_to_a_full_decode(write_image, tmp_path):
    smooth = np.linspace(0, 255, 256, dtype=np.uint8)
    pixels = np.stack(np.broadcast_arrays(smooth[:, None], smooth[None, :], smooth[::-1, None]), axis=-1)
    path = write_image(tmp_path / "large.jpg", pixels, quality=95)
    build_image_cache([path], 32, tmp_path / "cache.npy", progress=False)
    full = np.asarray(ImageOps.fit(Image.open(path).convert("RGB"), (32, 32)), dtype=np.int16)
    assert np.abs(np.load(tmp_path / "cache.npy")[0].astype(np.int16) - full).mean() < 3


def test_exif_orientation_is_applied(write_image, tmp_path):
    top_red = np.zeros((20, 20, 3), dtype=np.uint8)
    top_red[:10, :, 0] = 255  # the stored image: red top half, black bottom half
    exif = Image.Exif()
    exif[0x0112] = 3  # orientation: rotate 180°, so the displayed image is red at the bottom
    path = write_image(tmp_path / "rotated.png", top_red, exif=exif)
    build_image_cache([path], 20, tmp_path / "cache.npy", progress=False)
    cached = np.load(tmp_path / "cache.npy")[0]
    assert cached[:8, :, 0].max() == 0 and cached[12:, :, 0].min() == 255


def test_two_workers_fill_every_row_of_several_chunks_with_its_own_image(write_image, tmp_path):
    paths = [write_image(tmp_path / f"{i}.png", _random_pixels(i, 4, 4)) for i in range(150)]
    build_image_cache(paths, 4, tmp_path / "cache.npy", workers=2, progress=False)
    expected = np.stack([np.asarray(Image.open(path).convert("RGB")) for path in paths])
    np.testing.assert_array_equal(np.load(tmp_path / "cache.npy"), expected)


def test_corrupt_file_raises_naming_its_path_and_the_skip_option(write_image, tmp_path):
    good = write_image(tmp_path / "good.png", (8, 8))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(CorruptImageError, match=r"1 of 2 images could not be decoded:\n  row 1: .*broken.jpg") as error:
        build_image_cache([good, broken], 4, tmp_path / "cache.npy", progress=False)
    assert "--skip-corrupt" in str(error.value)


def test_truncated_jpeg_counts_as_corrupt(write_image, tmp_path):
    path = write_image(tmp_path / "whole.jpg", _random_pixels(0, 64, 64))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptImageError, match="truncated.jpg"):
        build_image_cache([truncated], 8, tmp_path / "cache.npy", progress=False)


def test_missing_file_counts_as_corrupt(tmp_path):
    with pytest.raises(CorruptImageError, match="absent.png"):
        build_image_cache([tmp_path / "absent.png"], 4, tmp_path / "cache.npy", progress=False)


def test_skip_corrupt_zero_fills_and_reports_the_rows_in_order(write_image, tmp_path):
    white = write_image(tmp_path / "white.png", (8, 8), (255, 255, 255))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG garbage")
    paths = [white, broken, white, broken]
    report = build_image_cache(paths, 4, tmp_path / "cache.npy", skip_corrupt=True, progress=False)
    cache = np.load(tmp_path / "cache.npy")
    assert cache[[1, 3]].max() == 0 and cache[[0, 2]].min() == 255
    assert report["n_images"] == 4 and report["n_corrupt"] == 2
    assert [(f["row"], f["path"]) for f in report["corrupt"]] == [(1, str(broken)), (3, str(broken))]


def test_failed_build_leaves_no_file_behind(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"garbage")
    with pytest.raises(CorruptImageError):
        build_image_cache([tmp_path / "broken.png"], 4, tmp_path / "cache.npy", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.png"]


def test_failed_rebuild_keeps_the_previous_cache(write_image, tmp_path):
    good = write_image(tmp_path / "good.png", (8, 8), (9, 9, 9))
    build_image_cache([good], 4, tmp_path / "cache.npy", progress=False)
    (tmp_path / "broken.png").write_bytes(b"garbage")
    with pytest.raises(CorruptImageError):
        build_image_cache([good, tmp_path / "broken.png"], 4, tmp_path / "cache.npy", progress=False)
    assert np.load(tmp_path / "cache.npy").shape == (1, 4, 4, 3)


def test_load_rejects_an_array_that_is_not_an_image_cache_naming_the_file(tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros((2, 4, 5, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"wrong.npy: expected an image cache of shape \(N, res, res, 3\) uint8"):
        load_image_cache(tmp_path / "wrong.npy")


def test_load_rejects_float_pixels(tmp_path):
    np.save(tmp_path / "float.npy", np.zeros((2, 4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="float.npy"):
        load_image_cache(tmp_path / "float.npy")


def test_cli_report_names_image_id_of_corrupt_rows(make_manifest, write_image, tmp_path):
    images = tmp_path / "images"
    write_image(images / "img0.png", (8, 8))
    write_image(images / "img2.png", (8, 8))
    (images / "img1.png").write_bytes(b"garbage")
    write_manifest(validate_manifest(make_manifest(), image_root=images), tmp_path / "manifest.parquet")
    argv = [
        "--manifest",
        str(tmp_path / "manifest.parquet"),
        "--image-root",
        str(images),
        "--resolution",
        "4",
        "--out",
        str(tmp_path / "cache" / "4px.npy"),
        "--report",
        str(tmp_path / "cache" / "4px.json"),
        "--skip-corrupt",
    ]
    assert main(argv) == 0
    report = json.loads((tmp_path / "cache" / "4px.json").read_text())
    assert [(f["row"], f["image_id"]) for f in report["corrupt"]] == [(1, "img1")]
    assert load_image_cache(tmp_path / "cache" / "4px.npy").shape == (3, 4, 4, 3)


def test_cli_exits_1_on_corrupt_images_without_skip(make_manifest, write_image, tmp_path, capsys):
    (tmp_path / "img0.png").write_bytes(b"garbage")
    write_manifest(validate_manifest(make_manifest(1), image_root=tmp_path), tmp_path / "manifest.parquet")
    argv = [
        "--manifest",
        str(tmp_path / "manifest.parquet"),
        "--image-root",
        str(tmp_path),
        "--resolution",
        "4",
        "--out",
        str(tmp_path / "4px.npy"),
        "--report",
        str(tmp_path / "4px.json"),
    ]
    assert main(argv) == 1
    assert "img0.png" in capsys.readouterr().err
    assert not (tmp_path / "4px.npy").exists() and not (tmp_path / "4px.json").exists()
