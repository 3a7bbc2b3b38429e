"""geocontrast: geographic context as contrastive training signal for species images."""

from importlib.metadata import version

# One version for the package and the workflow: pyproject.toml's (workflow/rules/deployment.smk reads the same).
__version__ = version("geocontrast")
