"""Class-activation maps of fine-tuned classifiers (geocontrast.evaluate.cam)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from geocontrast.evaluate import cam
from geocontrast.evaluate.settings import CamSettings
from geocontrast.models.encoders import CNN5


def classifier(n_classes: int = 3, channels=(32, 64, 128, 256, 256)) -> nn.Sequential:
    torch.manual_seed(0)
    encoder = CNN5(channels)
    return nn.Sequential(encoder, nn.Linear(encoder.feature_dim, n_classes)).eval()


def test_a_class_map_averages_to_the_class_logit_less_the_bias():
    model = classifier()
    images = torch.randn(4, 3, 32, 32)
    maps = cam.class_activation_maps(model, images)
    assert maps.shape == (4, 3, 2, 2)  # cnn5 halves 32 px four times
    with torch.no_grad():
        logits = model(images)
    torch.testing.assert_close(maps.mean(dim=(2, 3)) + model[-1].bias, logits, atol=1e-5, rtol=1e-4)


def test_an_encoder_without_global_pooling_is_refused():
    model = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="global average pooling"):
        cam.class_activation_maps(model, torch.zeros(1, 3, 8, 8))


def object_photos(n: int, size: int, seed: int):
    """Grey noise photos with one red (class 0) or blue (class 1) square in a random corner: (images, classes,
    corners (0: top left, 1: top right, 2: bottom left, 3: bottom right))."""
    rng = np.random.default_rng(seed)
    images = rng.normal(0, 0.3, size=(n, 3, size, size)).astype(np.float32)
    classes, corners = rng.integers(0, 2, n), rng.integers(0, 4, n)
    side = size // 4
    for image, label, corner in zip(images, classes, corners):
        top, left = (corner // 2) * size // 2 + side // 2, (corner % 2) * size // 2 + side // 2
        image[:, top : top + side, left : left + side] = -1.0
        image[0 if label == 0 else 2, top : top + side, left : left + side] = 2.0
    return torch.from_numpy(images), torch.from_numpy(classes), corners


def test_the_map_of_a_trained_classifier_peaks_where_the_object_is():
    model = classifier(n_classes=2, channels=(8, 16, 16, 32, 32)).train()  # small: a few seconds on a CPU
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(30):
        images, classes, _ = object_photos(32, 32, seed=step)
        loss = nn.functional.cross_entropy(model(images), classes)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    images, classes, corners = object_photos(64, 32, seed=1000)
    maps = cam.class_activation_maps(model.eval(), images)[torch.arange(64), classes]  # (64, 2, 2), own class
    peak = maps.flatten(1).argmax(dim=1).numpy()  # the 2 x 2 cells in corner order
    assert (peak == corners).mean() > 0.8


def test_the_rank_average_is_the_mean_over_the_classes_of_the_photo_s_group():
    maps = np.arange(4, dtype=np.float32).reshape(1, 4, 1, 1).repeat(2, axis=0)  # class c's map is c everywhere
    genus = np.array([0, 0, 1, 1])
    averaged = cam.rank_average(maps, classes=np.array([1, 2]), ancestors=genus)
    assert averaged[:, 0, 0].tolist() == [0.5, 2.5]


def test_the_photos_are_of_distinct_classes_and_the_same_for_a_seed():
    codes = np.repeat(np.arange(5), 10)
    test_rows = np.arange(50)
    photos = cam.choose_photos(test_rows, codes, n=4, seed=3)
    assert len(photos) == 4 and len(set(codes[photos])) == 4
    assert (photos == cam.choose_photos(test_rows, codes, n=4, seed=3)).all()
    assert len(cam.choose_photos(test_rows, codes, n=9, seed=3)) == 5  # one per class at most


def test_the_average_rank_must_be_coarser_than_the_class_rank():
    assert CamSettings.from_mapping({}).average_rank == "genus"
    with pytest.raises(ValueError, match="coarser"):
        CamSettings.from_mapping({"class_rank": "genus", "average_rank": "genus"})
    with pytest.raises(ValueError, match="unknown"):
        CamSettings.from_mapping({"photos": 3})


def test_the_figure_has_a_photo_row_and_two_map_rows_per_strategy(tmp_path):
    from geocontrast.report import cam as cam_figure

    rng = np.random.default_rng(0)
    record = {
        "rows": np.array([0, 2, 4]),
        "classes": np.array(["a", "b", "c"]),
        "predicted": np.array(["a", "c", "c"]),
        "class_maps": rng.normal(size=(3, 2, 2)).astype(np.float32),
        "rank_maps": rng.normal(size=(3, 2, 2)).astype(np.float32),
        "class_rank": "species",
        "rank": "genus",
    }
    for strategy in ("augmented", "context_pos"):
        np.savez(tmp_path / f"{strategy}.npz", **record)
    np.save(tmp_path / "cache.npy", rng.integers(0, 255, size=(6, 16, 16, 3), dtype=np.uint8))
    argv = [
        *("--cams", str(tmp_path / "augmented.npz"), str(tmp_path / "context_pos.npz")),
        *("--strategies", "augmented", "context_pos", "--cache", str(tmp_path / "cache.npy")),
        *("--out", str(tmp_path / "cam.png")),
    ]
    assert cam_figure.main(argv) == 0
    assert (tmp_path / "cam.png").stat().st_size > 0 and (tmp_path / "cam.svg").exists()
    figure = cam_figure.cam_figure({"s": record}, np.zeros((3, 16, 16, 3), np.uint8))
    assert len(figure.axes) == 3 * (1 + 2)
    # Each prediction sits inside its own class-map panel (row 1), red where wrong; the genus-mean row has none.
    predictions = [[(t.get_text(), t.get_color()) for t in ax.texts] for ax in figure.axes[3:6]]
    assert predictions == [[("predicted a", "black")], [("predicted c", "red")], [("predicted c", "black")]]
    assert not any(ax.texts for ax in figure.axes[6:])


def test_upsampled_maps_share_their_row_s_scale_and_a_flat_map_stays_zero():
    maps = np.stack([np.array([[0.0, 1.0], [2.0, 3.0]]), np.full((2, 2), 5.0), np.array([[4, 4], [4, 4.3]])])
    from geocontrast.report.cam import upsampled

    large = upsampled(maps.astype(np.float32), 8)
    assert large.shape == (3, 8, 8)
    assert large[0].min() == 0 and large[0].max() == pytest.approx(1) and (large[1] == 0).all()
    assert large[2].max() == pytest.approx(0.1, abs=1e-5)  # a nearly flat map is not stretched to full range


def test_a_kept_classifier_loads_back_to_the_same_predictions(tmp_path):
    from geocontrast.evaluate.protocols import load_classifier, save_classifier
    from geocontrast.models import build_encoder

    torch.manual_seed(0)
    encoder = build_encoder("cnn5", small_input=True)
    model = nn.Sequential(encoder, nn.Linear(encoder.feature_dim, 3)).eval()
    selection = {"best_epoch": 6, "val_top1": 0.25}
    save_classifier(tmp_path / "finetune_l10.pt", model, "cnn5", ["a b", "c d", "e f"], selection)
    loaded, classes, kept_selection = load_classifier(tmp_path / "finetune_l10.pt", small_input=True)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), model(images))
    assert classes == ["a b", "c d", "e f"] and kept_selection == selection and not loaded.training
