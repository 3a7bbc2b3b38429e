"""Encoders, their initial weights, heads (projection, classifier, prototypes) and the autoencoder decoder."""

from geocontrast.models.decoder import ResizeConvDecoder
from geocontrast.models.encoders import ENCODERS, build_encoder
from geocontrast.models.heads import ClassifierHead, ProjectionHead, Prototypes
from geocontrast.models.weights import load_initial_weights

__all__ = [
    "ENCODERS",
    "build_encoder",
    "load_initial_weights",
    "ProjectionHead",
    "ClassifierHead",
    "Prototypes",
    "ResizeConvDecoder",
]
