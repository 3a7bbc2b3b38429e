"""Shared fixtures: a tiny manifest builder and an image writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

_DEFAULT_TAXONOMY = {
    "species": "Quercus agrifolia",
    "genus": "Quercus",
    "family": "Fagaceae",
    "order": "Fagales",
    "class": "Magnoliopsida",
    "phylum": "Tracheophyta",
    "kingdom": "Plantae",
}


@pytest.fixture
def make_manifest():
    """make_manifest(n, **columns) -> a raw manifest of n valid rows; each keyword replaces one column."""

    def make(n: int = 3, **columns) -> pd.DataFrame:
        table = {
            "image_id": [f"img{i}" for i in range(n)],
            "path": [f"img{i}.png" for i in range(n)],
            "lat": [37.0 + 0.01 * i for i in range(n)],
            "lon": [-122.0] * n,
            "coord_uncertainty_m": [10.0] * n,
            "observed_on": ["2021-05-01"] * n,
            "observer_id": ["u1"] * n,
            "observation_id": [f"obs{i}" for i in range(n)],
            "taxon_id": ["47850"] * n,
            **{rank: [name] * n for rank, name in _DEFAULT_TAXONOMY.items()},
            "license": ["cc-by"] * n,
            "attribution": ["(c) someone"] * n,
            "source": ["test"] * n,
        }
        table.update(columns)
        return pd.DataFrame(table)

    return make


@pytest.fixture
def write_image():
    """write_image(path, pixels) writes an (h, w, 3) uint8 array, or write_image(path, (w, h), colour) a flat image."""

    def write(path: Path, pixels, colour=(0, 0, 0), **save_options) -> Path:
        if not isinstance(pixels, np.ndarray):
            pixels = np.full((pixels[1], pixels[0], 3), colour, dtype=np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, **save_options)
        return path

    return write


REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / ".test" / "config" / "config.yaml"


def load_config(path: Path = TINY_CONFIG) -> dict:
    """A config file with the schema's defaults filled in, as the workflow sees it."""
    import yaml
    from snakemake.utils import validate

    config = yaml.safe_load(path.read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.json"))
    return config


@pytest.fixture(scope="session")
def tiny_world_run(tmp_path_factory):
    """The workflow run once to the end on the tiny world (.test/config/config.yaml): (workdir, the finished
    process). The slow end-to-end tests read it instead of each running the workflow again; under pytest-xdist
    each worker that needs it runs it once."""
    from test_workflow import snakemake

    workdir = tmp_path_factory.mktemp("tiny_world")
    result = snakemake(workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, result


@pytest.fixture
def tiny_world_params() -> dict:
    """The `world` section of the tests' tiny config (300 photos at 32 px)."""
    return load_config()["world"]
