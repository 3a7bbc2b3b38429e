import pytest
import torch
from torch import nn

from geocontrast.models import ENCODERS, ClassifierHead, ProjectionHead, ResizeConvDecoder, build_encoder


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an encoder tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


@pytest.mark.parametrize("name", ["cnn5", "resnet18", "resnet50"])
def test_encoder_maps_images_to_feature_dim(name):
    torch.manual_seed(0)
    encoder = build_encoder(name).eval()
    assert isinstance(encoder.feature_dim, int)
    with torch.no_grad():
        features = encoder(torch.randn(2, 3, 32, 32))
    assert features.shape == (2, encoder.feature_dim)


def test_encoder_registry_names():
    assert set(ENCODERS) == {"cnn5", "resnet18", "resnet50"}


def test_cnn5_has_five_convolutions_and_256_features():
    encoder = build_encoder("cnn5")
    assert sum(isinstance(m, nn.Conv2d) for m in encoder.modules()) == 5
    assert encoder.feature_dim == 256


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
