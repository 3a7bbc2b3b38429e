import re

import pytest
import torch
from torch import nn

from geocontrast.models import (
    ENCODERS,
    ClassifierHead,
    ProjectionHead,
    ResizeConvDecoder,
    build_encoder,
    load_initial_weights,
)


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an encoder tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


@pytest.mark.parametrize("name", ["cnn5", "cnn5_half", "resnet18", "resnet50"])
def test_encoder_maps_images_to_feature_dim(name):
    torch.manual_seed(0)
    encoder = build_encoder(name).eval()
    assert isinstance(encoder.feature_dim, int)
    with torch.no_grad():
        features = encoder(torch.randn(2, 3, 32, 32))
    assert features.shape == (2, encoder.feature_dim)


def test_encoder_registry_names():
    assert set(ENCODERS) == {"cnn5", "cnn5_half", "resnet18", "resnet50"}


def test_cnn5_has_five_convolutions_and_256_features():
    encoder = build_encoder("cnn5")
    assert sum(isinstance(m, nn.Conv2d) for m in encoder.modules()) == 5
    assert encoder.feature_dim == 256


def test_cnn5_half_is_cnn5_at_half_the_channels_with_about_a_quarter_of_the_weights():
    full, half = build_encoder("cnn5"), build_encoder("cnn5_half")
    widths = [m.out_channels for m in half.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [m.out_channels // 2 for m in full.modules() if isinstance(m, nn.Conv2d)]
    assert half.feature_dim == 128
    weights = [sum(p.numel() for p in encoder.parameters()) for encoder in (full, half)]
    assert 0.24 < weights[1] / weights[0] < 0.26


def test_resnet_small_input_uses_3x3_stride1_stem_without_maxpool():
    small = build_encoder("resnet18", small_input=True)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert isinstance(small.maxpool, nn.Identity)
    large = build_encoder("resnet18", small_input=False)
    assert large.conv1.kernel_size == (7, 7) and isinstance(large.maxpool, nn.MaxPool2d)


def test_unknown_encoder_error_lists_known_names():
    with pytest.raises(ValueError, match="cnn5.*resnet18.*resnet50"):
        build_encoder("vit")


def test_projection_head_shape():
    head = ProjectionHead(16, hidden_dim=8, out_dim=4)
    assert head(torch.randn(3, 16)).shape == (3, 4)


def test_linear_classifier_is_one_linear_layer():
    head = ClassifierHead(16, n_classes=5)
    assert [type(m) for m in head.modules() if not isinstance(m, (nn.Sequential, ClassifierHead))] == [nn.Linear]
    assert head(torch.randn(3, 16)).shape == (3, 5)


def test_hidden_classifier_has_batchnorm_and_dropout_before_each_linear():
    head = ClassifierHead(16, n_classes=5, hidden_dim=8, dropout=0.3)
    layers = list(head.layers)
    linear_positions = [i for i, m in enumerate(layers) if isinstance(m, nn.Linear)]
    assert len(linear_positions) == 2
    for i in linear_positions:
        assert isinstance(layers[i - 2], nn.BatchNorm1d) and isinstance(layers[i - 1], nn.Dropout)
    assert head(torch.randn(3, 16)).shape == (3, 5)


def test_classifier_refuses_bad_dropout():
    with pytest.raises(ValueError, match="dropout"):
        ClassifierHead(16, n_classes=5, hidden_dim=8, dropout=1.5)


@pytest.mark.parametrize("resolution", [8, 32, 48, 224])
def test_decoder_maps_a_latent_to_an_image_of_the_resolution(resolution):
    decoder = ResizeConvDecoder(latent_dim=16, resolution=resolution, channels=32)
    assert decoder(torch.randn(2, 16)).shape == (2, 3, resolution, resolution)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in decoder.modules())  # resize-convolutions


@pytest.mark.parametrize("resolution", [33, 6])
def test_decoder_refuses_a_resolution_upsampling_cannot_reach(resolution):
    with pytest.raises(ValueError, match="cannot be reached"):
        ResizeConvDecoder(resolution=resolution)


def same_weights(first: nn.Module, second: nn.Module) -> bool:
    return all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


@pytest.mark.parametrize("wrap", [lambda state: state, lambda state: {"encoder": state, "encoder_name": "cnn5"}])
def test_initial_weights_load_from_a_state_dict_file(tmp_path, wrap):
    torch.manual_seed(1)
    trained = build_encoder("cnn5")
    torch.save(wrap(trained.state_dict()), tmp_path / "weights.pt")
    torch.manual_seed(2)
    encoder = build_encoder("cnn5")
    assert not same_weights(encoder, trained)
    load_initial_weights(encoder, str(tmp_path / "weights.pt"))
    assert same_weights(encoder, trained)


def test_a_torchvision_weights_name_is_read_from_the_local_hub_cache_only(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(3)
    imagenet = torchvision.models.resnet18(weights=None)  # stands in for the real file: same names and shapes
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(imagenet.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    encoder = load_initial_weights(build_encoder("resnet18", small_input=False), "ResNet18_Weights.IMAGENET1K_V1")
    assert torch.equal(encoder.conv1.weight, imagenet.conv1.weight)  # every tensor but the classifier, fc
    assert torch.equal(encoder.layer4[1].bn2.running_mean, imagenet.layer4[1].bn2.running_mean)
    with pytest.raises(ValueError, match=r"conv1.weight.*resolution >= 96"):
        load_initial_weights(build_encoder("resnet18", small_input=True), "ResNet18_Weights.IMAGENET1K_V1")


def test_a_missing_weights_file_is_a_named_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    missing = tmp_path / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_initial_weights(build_encoder("resnet50"), "ResNet50_Weights.IMAGENET1K_V1")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nowhere.pt"))):
        load_initial_weights(build_encoder("cnn5"), str(tmp_path / "nowhere.pt"))
    with pytest.raises(ValueError, match="not a torchvision weights name"):
        load_initial_weights(build_encoder("cnn5"), "ResNet18_Weights.NOPE")


def test_weights_of_another_encoder_are_refused_naming_the_tensors(tmp_path):
    torch.save(build_encoder("cnn5").state_dict(), tmp_path / "cnn5.pt")
    with pytest.raises(ValueError, match=r"missing \['bn1"):
        load_initial_weights(build_encoder("resnet18"), str(tmp_path / "cnn5.pt"))
