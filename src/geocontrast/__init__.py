"""geocontrast: geographic context as contrastive training signal for species images."""

__version__ = "0.1.0"
