"""Shared fixtures: a tiny manifest builder, an image writer and the worlds that several test files build on."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from report_world import LON, ROW_SPECIES, neighbour_table, taxonomy_columns

from geocontrast.data.manifest import validate_manifest
from geocontrast.geo.negatives import NegativeTable
from geocontrast.geo.neighbours import NeighbourTable

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


# --- the source tests' local HTTP server ----------------------------------------------------------------------


@pytest.fixture
def server():
    """A LocalServer (tests/sources_fixtures.py) on a free local port, serving while the test runs."""
    from sources_fixtures import LocalServer

    local = LocalServer()
    thread = threading.Thread(target=local.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield local
    local.shutdown()
    local.server_close()


# --- the strategy tests' tiny world ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_inputs(tmp_path_factory) -> dict[str, Path]:
    """The strategy tests' tiny world (tests/tiny_world.py), built once per session."""
    from tiny_world import build_tiny_inputs

    return build_tiny_inputs(tmp_path_factory.mktemp("tiny_world"))


@pytest.fixture(scope="session")
def tiny_data(tiny_inputs):
    """(manifest, training data) of the tiny world, with its neighbour and negative tables."""
    from geocontrast.data.manifest import read_manifest
    from geocontrast.geo.negatives import load_negative_table
    from geocontrast.geo.neighbours import load_neighbour_table
    from geocontrast.geo.training_data import training_data

    manifest = read_manifest(tiny_inputs["manifest"])
    return manifest, training_data(
        manifest,
        pd.read_parquet(tiny_inputs["splits"]),
        neighbours=load_neighbour_table(tiny_inputs["neighbours"]),
        negatives=load_negative_table(tiny_inputs["negatives"]),
    )


# --- the report-figure tests' world of 12 photos on the equator (tests/report_world.py) ---------------------------


@pytest.fixture
def manifest(make_manifest):
    """12 rows on the equator; rows 8 and 9 are one observation, row 7 is unidentified, row 10 has no coordinates."""
    n = LON.size
    observations = [f"obs{i}" for i in range(n)]
    observations[9] = "obs8"
    return validate_manifest(
        make_manifest(
            n,
            lat=np.where(np.isnan(LON), np.nan, 0.0),
            lon=LON,
            observation_id=observations,
            **taxonomy_columns(ROW_SPECIES),
        )
    )


@pytest.fixture
def neighbours() -> NeighbourTable:
    return neighbour_table({0: [1], 1: [0], 2: [3], 3: [2], 6: [7], 7: [6], 8: [], 9: []})


@pytest.fixture
def negatives() -> NegativeTable:
    candidates = np.array([[(i + 5) % 10] for i in range(LON.size)], dtype=np.int32)  # (N, 1)
    return NegativeTable(candidates, np.zeros(LON.size, bool), 50.0, {"rule": "far"})


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (LON.size, 16, 16, 3), dtype=np.uint8)
