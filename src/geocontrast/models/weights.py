"""Initial encoder weights from a local file or torchvision's local weight cache, never downloaded.

``pretrain.init_weights`` names either a file (a state_dict, or a checkpoint holding one under ``encoder`` as our
``encoder.pt`` does, or under ``state_dict``) or a torchvision weights name such as
``ResNet18_Weights.IMAGENET1K_V1``, looked up only as the file torchvision would have downloaded into
``torch.hub.get_dir()/checkpoints`` ($TORCH_HOME/hub/checkpoints). A missing file is an error that names it.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

WEIGHTS_NAME = re.compile(r"^[A-Za-z0-9_]+_Weights\.[A-Za-z0-9_]+$")
"""A torchvision weights name (``<Model>_Weights.<VERSION>``); anything else is a path."""


def is_weights_name(source: str) -> bool:
    """Whether ``source`` reads as a torchvision weights name rather than a path."""
    return bool(WEIGHTS_NAME.match(str(source)))


def weights_file(source: str) -> Path:
    """The local file ``source`` refers to: the path itself, or a torchvision weights name's file in the hub cache.
    Raises FileNotFoundError naming the file (and, for a weights name, where to fetch it) when it is absent."""
    if not is_weights_name(source):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"pretrain.init_weights: no weights file {path.resolve()}")
        return path
    import torchvision

    try:
        weights = torchvision.models.get_weight(source)
    except (KeyError, ValueError, AttributeError) as error:
        raise ValueError(f"pretrain.init_weights: {source!r} is not a torchvision weights name ({error})") from None
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrain.init_weights: {source} is not in the local torch hub cache: missing {path} (nothing is "
            f"downloaded at run time; fetch {weights.url} there, or set TORCH_HOME to a folder whose "
            "hub/checkpoints holds it)"
        )
    return path


def load_initial_weights(encoder: nn.Module, source: str) -> nn.Module:
    """Load the weights ``source`` names (see the module docstring) into ``encoder``, in place, and return it.

    A classifier (``fc.*``, torchvision's ImageNet head) is left out: the encoders end at their features. Any
    other missing, unexpected or differently shaped tensor is refused, naming it (ImageNet ResNets have a 7x7
    stem, which the encoders keep only at resolutions of 96 px and more).
    """
    path = weights_file(source)
    saved = torch.load(path, map_location="cpu", weights_only=True)
    state = next((saved[key] for key in ("encoder", "state_dict") if isinstance(saved.get(key), dict)), saved)
    state = {name: tensor for name, tensor in state.items() if not name.startswith("fc.")}
    own = encoder.state_dict()
    mismatched = [
        f"{name} {tuple(tensor.shape)} vs {tuple(own[name].shape)}"
        for name, tensor in state.items()
        if name in own and tensor.shape != own[name].shape
    ]
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if mismatched or missing or unexpected:
        stem = any(name.startswith("conv1.") for name in mismatched)
        raise ValueError(
            f"pretrain.init_weights {source}: the weights do not fit the encoder: "
            f"shapes {mismatched or 'fit'}; missing {missing[:5] or 'none'}; unexpected {unexpected[:5] or 'none'}"
            + (" (their 7x7 stem needs pretrain.resolution >= 96)" if stem else "")
        )
    encoder.load_state_dict(state)
    return encoder
