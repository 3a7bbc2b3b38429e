"""Tests for the procedural flower-photo renderer (geocontrast.data.render, geocontrast.data.plant_drawing)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from geocontrast.data.plant_drawing import LEAF_SHAPES, PETAL_SHAPES, FlowerTraits
from geocontrast.data.render import Habitat, render_photo, save_jpeg

TRAITS = FlowerTraits(
    petal_count=5,
    petal_shape="ellipse",
    petal_length=0.8,
    petal_width=0.5,
    petal_rgb=(0.9, 0.2, 0.6),
    centre_rgb=(0.95, 0.8, 0.1),
    centre_size=0.2,
    leaf_shape="ovate",
    leaf_rgb=(0.2, 0.45, 0.15),
    leaf_count=3,
)
HABITAT = Habitat(ground_rgb=(0.45, 0.38, 0.25), roughness=0.5, vegetation=0.5)
PLAIN = Habitat(ground_rgb=(0.45, 0.38, 0.25), roughness=0.0, vegetation=0.0)
# A flower that covers as little of the image as the trait ranges allow.
MINIMAL = dataclasses.replace(
    TRAITS,
    petal_count=3,
    petal_length=0.5,
    petal_width=0.15,
    centre_size=0.1,
    petal_rgb=(0.5, 0.5, 0.5),
    centre_rgb=(0.5, 0.5, 0.5),
    leaf_count=0,
)


def _render(traits=TRAITS, habitat=HABITAT, size=64, seed=0, nuisance=1.0) -> np.ndarray:
    return render_photo(traits, habitat, size, np.random.default_rng(seed), nuisance=nuisance)


def _near(image: np.ndarray, rgb, tol: float = 60.0) -> np.ndarray:
    """Boolean mask of pixels within `tol` (0..255 Euclidean) of colour `rgb` (0..1)."""
    return np.linalg.norm(image.astype(float) - 255.0 * np.asarray(rgb), axis=-1) < tol


@pytest.mark.parametrize("size", [32, 64])
def test_output_is_uint8_square_rgb_of_requested_size(size):
    image = _render(size=size)
    assert image.shape == (size, size, 3)
    assert image.dtype == np.uint8
    assert image.flags.writeable


@pytest.mark.parametrize("petal_shape", PETAL_SHAPES)
@pytest.mark.parametrize("leaf_shape", LEAF_SHAPES)
def test_every_shape_renders_at_strong_nuisance(petal_shape, leaf_shape):
    traits = dataclasses.replace(TRAITS, petal_shape=petal_shape, leaf_shape=leaf_shape, leaf_count=6)
    for seed in range(3):
        image = _render(traits, size=32, seed=seed, nuisance=2.0)
        assert image.shape == (32, 32, 3)


def test_same_seed_gives_identical_image():
    np.testing.assert_array_equal(_render(seed=7), _render(seed=7))


def test_different_seeds_give_different_images():
    assert not np.array_equal(_render(seed=1), _render(seed=2))


def test_zero_nuisance_on_plain_ground_is_the_same_canonical_photo_for_every_seed():
    canonical = _render(habitat=PLAIN, seed=0, nuisance=0.0)
    for seed in range(1, 8):
        np.testing.assert_array_equal(_render(habitat=PLAIN, seed=seed, nuisance=0.0), canonical)
    assert not np.array_equal(
        _render(habitat=PLAIN, seed=1, nuisance=1.0), _render(habitat=PLAIN, seed=2, nuisance=1.0)
    )


def _petal_runs_on_circle(traits: FlowerTraits, size: int = 128) -> int:
    """Number of separate petal-coloured arcs on a circle through the middle of the petals.

    At nuisance 0 the flower is centred with radius 0.31 * size; petals span radii
    0.6 * centre_size .. 0.6 * centre_size + petal_length (in flower radii).
    """
    image = _render(traits, PLAIN, size=size, nuisance=0.0)
    flower_radius = 0.31 * size
    r = flower_radius * (0.6 * traits.centre_size + 0.5 * traits.petal_length)
    # Sample radially mid-petal: below the notch of "notched" petals, beyond the disc.
    assert r > flower_radius * traits.centre_size + 2
    theta = np.linspace(0.0, 2 * np.pi, 1440, endpoint=False)
    rows = np.round(size / 2 - 0.5 + r * np.sin(theta)).astype(int)
    cols = np.round(size / 2 - 0.5 + r * np.cos(theta)).astype(int)
    on_petal = _near(image[rows, cols], traits.petal_rgb)
    return int(np.sum(on_petal & ~np.roll(on_petal, 1)))


@pytest.mark.parametrize(
    ("count", "shape", "width"),
    [
        (3, "ellipse", 0.5),
        (4, "notched", 0.7),
        (5, "pointed", 0.4),
        (7, "notched", 0.8),
        (9, "strap", 0.5),
        (10, "pointed", 0.3),
        (12, "ellipse", 0.8),
    ],
)
def test_petal_count_is_visible_as_separate_petals_around_the_centre(count, shape, width):
    traits = dataclasses.replace(TRAITS, petal_count=count, petal_shape=shape, petal_width=width, leaf_count=0)
    assert _petal_runs_on_circle(traits) == count


def test_petal_shape_changes_the_flower_silhouette():
    masks = {
        shape: _near(_render(dataclasses.replace(TRAITS, petal_shape=shape), PLAIN, nuisance=0.0), TRAITS.petal_rgb)
        for shape in PETAL_SHAPES
    }
    for a in PETAL_SHAPES:
        for b in PETAL_SHAPES:
            if a < b:
                assert np.sum(masks[a] ^ masks[b]) > 30, (a, b)


def test_longer_petals_cover_more_of_the_photo():
    short = _render(dataclasses.replace(TRAITS, petal_length=0.55), PLAIN, nuisance=0.0)
    long = _render(dataclasses.replace(TRAITS, petal_length=0.95), PLAIN, nuisance=0.0)
    assert _near(long, TRAITS.petal_rgb).sum() > 1.4 * _near(short, TRAITS.petal_rgb).sum()


def test_leaf_count_adds_leaf_coloured_area():
    area = [
        _near(_render(dataclasses.replace(TRAITS, leaf_count=n), PLAIN, nuisance=0.0), TRAITS.leaf_rgb).sum()
        for n in (0, 2, 6)
    ]
    assert area[0] < area[1] < area[2]


def test_flower_region_colour_follows_petal_rgb():
    red = dataclasses.replace(TRAITS, petal_rgb=(0.9, 0.1, 0.1))
    blue = dataclasses.replace(TRAITS, petal_rgb=(0.1, 0.1, 0.9))
    # Canonical photo: an annulus around the centre that holds the petals.
    yy, xx = np.mgrid[:64, :64] - 31.5
    ring = (np.hypot(yy, xx) > 0.31 * 64 * 0.3) & (np.hypot(yy, xx) < 0.31 * 64 * 0.8)
    red_mean = _render(red, nuisance=0.0)[ring].mean(axis=0)
    blue_mean = _render(blue, nuisance=0.0)[ring].mean(axis=0)
    assert red_mean[0] - blue_mean[0] > 50 and blue_mean[2] - red_mean[2] > 50
    # With full nuisance the whole-image colour still leans toward the petals, on average.
    red_all = np.mean([_render(red, seed=s).mean(axis=(0, 1)) for s in range(8)], axis=0)
    blue_all = np.mean([_render(blue, seed=s).mean(axis=(0, 1)) for s in range(8)], axis=0)
    assert red_all[0] - red_all[2] > blue_all[0] - blue_all[2] + 10


@pytest.mark.parametrize("ground", [(0.2, 0.5, 0.15), (0.7, 0.6, 0.4), (0.4, 0.4, 0.45)])
def test_image_mean_tracks_ground_rgb_when_the_flower_is_minimal(ground):
    habitat = Habitat(ground_rgb=ground, roughness=0.5, vegetation=0.0)
    mean = np.mean([_render(MINIMAL, habitat, seed=s, nuisance=0.0).mean(axis=(0, 1)) for s in range(4)], axis=0)
    np.testing.assert_allclose(mean / 255.0, ground, atol=0.05)


def test_rougher_ground_has_more_background_contrast():
    def background_std(roughness: float) -> float:
        habitat = Habitat(ground_rgb=(0.45, 0.38, 0.25), roughness=roughness, vegetation=0.0)
        # The top band is pure ground: the canonical flower starts ~14 px below the top.
        return float(
            np.mean([_render(MINIMAL, habitat, seed=s, nuisance=0.0)[:10].std(axis=(0, 1)).mean() for s in range(4)])
        )

    stds = [background_std(r) for r in (0.0, 0.3, 1.0)]
    assert stds[0] < 1.0 < stds[1] < stds[2]


def test_vegetation_adds_clutter_to_the_background():
    def clutter(vegetation: float) -> float:
        habitat = Habitat(ground_rgb=(0.45, 0.38, 0.25), roughness=0.0, vegetation=vegetation)
        return float(
            np.mean(
                [
                    (~_near(_render(MINIMAL, habitat, seed=s, nuisance=0.0), habitat.ground_rgb, 15.0)).mean()
                    for s in range(4)
                ]
            )
        )

    fractions = [clutter(v) for v in (0.0, 0.3, 1.0)]
    assert fractions[0] < fractions[1] < fractions[2]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("petal_count", 2),
        ("petal_count", 13),
        ("petal_count", 5.0),
        ("petal_shape", "round"),
        ("petal_length", 1.5),
        ("petal_width", 0.1),
        ("petal_rgb", (1.2, 0.0, 0.0)),
        ("petal_rgb", (0.5, 0.5)),
        ("centre_rgb", "red"),
        ("centre_size", 0.5),
        ("leaf_shape", "needle"),
        ("leaf_rgb", (float("nan"), 0.5, 0.5)),
        ("leaf_count", 7),
        ("leaf_count", -1),
    ],
)
def test_bad_flower_trait_raises_value_error_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(TRAITS, **{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [("ground_rgb", (0.5, -0.1, 0.5)), ("roughness", 1.5), ("vegetation", -0.2), ("vegetation", None)],
)
def test_bad_habitat_field_raises_value_error_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(HABITAT, **{field: value})


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"size": 15}, "size"),
        ({"size": 32.0}, "size"),
        ({"nuisance": -0.5}, "nuisance"),
        ({"nuisance": float("inf")}, "nuisance"),
    ],
)
def test_bad_render_argument_raises_value_error_naming_it(kwargs, name):
    args = {"traits": TRAITS, "habitat": HABITAT, "size": 32, "rng": np.random.default_rng(0)} | kwargs
    with pytest.raises(ValueError, match=name):
        render_photo(**args)


def test_save_jpeg_round_trips_and_creates_folders(tmp_path):
    image = _render(size=64)
    path = tmp_path / "nested" / "dir" / "photo.jpg"
    save_jpeg(image, path)
    with Image.open(path) as decoded:
        assert decoded.format == "JPEG"
        back = np.asarray(decoded.convert("RGB"))
    assert back.shape == image.shape
    assert np.abs(back.astype(int) - image.astype(int)).mean() < 6.0


def test_save_jpeg_rejects_non_uint8_rgb(tmp_path):
    with pytest.raises(ValueError, match="image"):
        save_jpeg(np.zeros((8, 8, 3), dtype=np.float32), tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="image"):
        save_jpeg(np.zeros((8, 8), dtype=np.uint8), tmp_path / "x.jpg")


def test_save_jpeg_does_not_list_its_folder_for_orphaned_partial_files(tmp_path, monkeypatch):
    from geocontrast import atomic

    def listed(path):
        raise AssertionError(f"listed {path.parent} to write one photo")

    monkeypatch.setattr(atomic, "_remove_orphaned_partials", listed)
    save_jpeg(np.zeros((8, 8, 3), dtype=np.uint8), tmp_path / "a" / "x.jpg")
    assert (tmp_path / "a" / "x.jpg").exists() and sorted(p.name for p in (tmp_path / "a").iterdir()) == ["x.jpg"]
