"""Encoders, heads (projection, classifier, prototypes) and the autoencoder decoder shared by every strategy."""

from geocontrast.models.decoder import ResizeConvDecoder
from geocontrast.models.encoders import ENCODERS, build_encoder
from geocontrast.models.heads import ClassifierHead, ProjectionHead, Prototypes

__all__ = ["ENCODERS", "build_encoder", "ProjectionHead", "ClassifierHead", "Prototypes", "ResizeConvDecoder"]
