import pytest
import torch
import torch.nn.functional as F

from geocontrast.runtime import normalise
from geocontrast.train.augment import AugmentRecipe, BatchAugment


def random_images(batch=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=g)


def test_output_shape_dtype_device_and_channels_last():
    out = BatchAugment(resolution=24)(random_images(), torch.Generator().manual_seed(0))
    assert out.shape == (4, 3, 24, 24) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.isfinite(out).all()


def test_deterministic_for_a_seeded_generator():
    augment, images = BatchAugment(resolution=32), random_images()
    first = augment(images, torch.Generator().manual_seed(7))
    second = augment(images, torch.Generator().manual_seed(7))
    assert torch.equal(first, second)


def test_identical_images_come_out_different():
    images = random_images(batch=1).expand(2, -1, -1, -1).contiguous()
    out = BatchAugment(resolution=32)(images, torch.Generator().manual_seed(0))
    assert not torch.allclose(out[0], out[1])


def test_strength_zero_is_resize_and_normalise():
    images = random_images(size=40)
    out = BatchAugment(resolution=32, strength=0.0)(images, torch.Generator().manual_seed(0))
    resized = (
        F.interpolate(images.permute(0, 3, 1, 2).float(), size=(32, 32), mode="bilinear", align_corners=False)
        .round()
        .clamp(0, 255)
    )
    expected = normalise(resized.to(torch.uint8).permute(0, 2, 3, 1))
    assert torch.allclose(out, expected, atol=0.5 / 255 / 0.224 + 1e-5)


def test_strength_zero_at_native_resolution_equals_normalise():
    images = random_images()
    assert torch.equal(BatchAugment(resolution=32, strength=0.0)(images), normalise(images))


def test_some_samples_are_horizontally_flipped():
    images = torch.zeros(64, 32, 32, 3, dtype=torch.uint8)
    images[:, :, :16, 0] = 255  # left half red
    images[:, :, 16:, 2] = 255  # right half blue
    out = BatchAugment(resolution=32, strength=1e-6, recipe=AugmentRecipe(min_scale=0.9))(
        images, torch.Generator().manual_seed(0)
    )
    red_minus_blue = out[:, 0] - out[:, 2]  # (B, H, W)
    left_minus_right = red_minus_blue[:, :, :8].mean(dim=(1, 2)) - red_minus_blue[:, :, -8:].mean(dim=(1, 2))
    assert (left_minus_right > 1).sum() > 0  # kept: red on the left
    assert (left_minus_right < -1).sum() > 0  # flipped: red on the right


def test_crops_change_the_scale():
    images = torch.zeros(64, 32, 32, 3, dtype=torch.uint8)
    images[:, 8:24, 8:24] = 255  # white square in the middle
    out = BatchAugment(resolution=32, strength=1e-6, recipe=AugmentRecipe(min_scale=0.2))(
        images, torch.Generator().manual_seed(0)
    )
    white_fraction = (out[:, 0] > 0).float().mean(dim=(1, 2))  # (B,)
    assert white_fraction.max() - white_fraction.min() > 0.2


def test_large_batch_is_processed_in_one_pass():
    out = BatchAugment(resolution=32)(random_images(batch=256), torch.Generator().manual_seed(0))
    assert out.shape == (256, 3, 32, 32)


def test_normalise_standardises_per_channel():
    images = torch.full((1, 2, 2, 3), 255, dtype=torch.uint8)
    out = normalise(images)
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert out.shape == (1, 3, 2, 2)
    assert torch.allclose(out[0, :, 0, 0], expected)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"resolution": 0}, "resolution"),
        ({"resolution": 32, "strength": -1.0}, "strength"),
    ],
)
def test_refuses_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        BatchAugment(**kwargs)


@pytest.mark.parametrize(
    ("settings", "word"),
    [({"min_scale": 0.0}, "min_scale"), ({"greyscale": 1.5}, "greyscale"), ({"hue": 10}, "hue_degrees")],
)
def test_recipe_refuses_bad_settings_naming_the_key(settings, word):
    with pytest.raises(ValueError, match=word):
        AugmentRecipe.from_config(settings)


def flat_colour_views(hue_degrees: float) -> torch.Tensor:
    """Views of one flat orange image under a recipe whose only colour change is the hue rotation."""
    images = torch.zeros(32, 16, 16, 3, dtype=torch.uint8)
    images[..., 0], images[..., 1], images[..., 2] = 220, 140, 40
    recipe = AugmentRecipe(jitter_probability=1.0, jitter=0.0, hue_degrees=hue_degrees, greyscale=0.0, blur=0.0)
    return BatchAugment(resolution=16, recipe=recipe)(images, torch.Generator().manual_seed(0)), images


def test_zero_hue_range_keeps_the_colours():
    views, images = flat_colour_views(0.0)
    assert torch.allclose(views, normalise(images), atol=1e-5)  # a flat image: crops and flips change nothing


def test_hue_range_rotates_the_colours_of_most_views():
    views, images = flat_colour_views(36.0)
    changed = (views - normalise(images)).abs().amax(dim=(1, 2, 3)) > 0.05  # (B,)
    assert changed.float().mean() > 0.8


def test_refuses_float_images():
    with pytest.raises(ValueError, match="uint8"):
        BatchAugment(resolution=32)(torch.zeros(1, 32, 32, 3))
