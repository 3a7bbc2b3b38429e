"""A corpus of collection shapes, as a user's CSV would bring them: each shape is a function of the row index
giving coordinates (and, for partial taxonomies, the ranks kept), written with small photos as a CSV collection
and a workflow config that runs it through the tiny workflow (.test/config/config.yaml, source csv).

Shapes: ``no_coordinates``, ``few_coordinates`` (one photo in ten located, at two sites), ``one_site`` (every
photo at one point), ``one_cell`` (within 1 km: one neighbour-table cell, one spatial block, inside every radius),
``two_clusters`` (half around San Francisco, half around Sydney: 12,000 km apart) and ``partial_taxonomy``
(species, genus and family, as an iNaturalist export gives them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from conftest import TINY_CONFIG
from PIL import Image

N_PHOTOS = 120
N_OBSERVERS = 12
# Six species, three genera, two families, one order: every rank present, a genus and a family split to tell apart.
SPECIES = {
    "Quercus agrifolia": ("Quercus", "Fagaceae"),
    "Quercus lobata": ("Quercus", "Fagaceae"),
    "Lithocarpus densiflorus": ("Lithocarpus", "Fagaceae"),
    "Lithocarpus edulis": ("Lithocarpus", "Fagaceae"),
    "Betula pendula": ("Betula", "Betulaceae"),
    "Betula nana": ("Betula", "Betulaceae"),
}
COARSE = {"order": "Fagales", "class": "Magnoliopsida", "phylum": "Tracheophyta", "kingdom": "Plantae"}
SAN_FRANCISCO, SYDNEY = (37.77, -122.42), (-33.87, 151.21)
IMAGE_SIZE = 32

Coordinates = Callable[[np.random.Generator, np.ndarray], tuple[np.ndarray, np.ndarray]]


def spread(rng, species):
    """Each species around its own centre in California, 0.5° apart: a prior has something to learn."""
    lat = 35.0 + 0.5 * species + rng.normal(0, 0.3, species.size)
    lon = -121.0 + 0.3 * species + rng.normal(0, 0.3, species.size)
    return lat, lon


def no_coordinates(rng, species):
    return np.full(species.size, np.nan), np.full(species.size, np.nan)


def few_coordinates(rng, species):
    """One photo in ten located, at two sites 110 km apart (each photo has neighbours, and negatives far away)."""
    index = np.arange(species.size)
    lat = SAN_FRANCISCO[0] - (index % 20 == 10) + rng.normal(0, 0.005, species.size)
    lon = SAN_FRANCISCO[1] + rng.normal(0, 0.005, species.size)
    unlocated = index % 10 != 0
    return np.where(unlocated, np.nan, lat), np.where(unlocated, np.nan, lon)


def one_site(rng, species):
    return np.full(species.size, SAN_FRANCISCO[0]), np.full(species.size, SAN_FRANCISCO[1])


def one_cell(rng, species):
    lat, lon = SAN_FRANCISCO
    return lat + rng.uniform(0, 0.005, species.size), lon + rng.uniform(0, 0.005, species.size)


def two_clusters(rng, species):
    centre = np.where((np.arange(species.size) % 2 == 0)[:, None], SAN_FRANCISCO, SYDNEY)
    return centre[:, 0] + rng.normal(0, 0.05, species.size), centre[:, 1] + rng.normal(0, 0.05, species.size)


SHAPES: dict[str, tuple[Coordinates, tuple[str, ...]]] = {
    "no_coordinates": (no_coordinates, ("species", "genus", "family", *COARSE)),
    "few_coordinates": (few_coordinates, ("species", "genus", "family", *COARSE)),
    "one_site": (one_site, ("species", "genus", "family", *COARSE)),
    "one_cell": (one_cell, ("species", "genus", "family", *COARSE)),
    "two_clusters": (two_clusters, ("species", "genus", "family", *COARSE)),
    "partial_taxonomy": (spread, ("species", "genus", "family")),
}
"""Shape name -> (its coordinates, the taxonomic ranks its CSV has)."""


def collection(shape: str, seed: int = 0) -> pd.DataFrame:
    """The shape's CSV table (without the image files): path, lat, lon, the ranks it keeps, observer, date."""
    coordinates, ranks = SHAPES[shape]
    rng = np.random.default_rng(seed)
    names = list(SPECIES)
    species = np.arange(N_PHOTOS) % len(names)
    lat, lon = coordinates(rng, species)
    table = pd.DataFrame(
        {
            "path": [f"photos/p{i:03d}.png" for i in range(N_PHOTOS)],
            "lat": lat,
            "lon": lon,
            "observer_id": [f"u{i % N_OBSERVERS}" for i in range(N_PHOTOS)],
            "observed_on": pd.Timestamp("2021-03-01") + pd.to_timedelta(np.arange(N_PHOTOS) % 90, unit="D"),
            "species": [names[s] for s in species],
            "genus": [SPECIES[names[s]][0] for s in species],
            "family": [SPECIES[names[s]][1] for s in species],
            **{rank: name for rank, name in COARSE.items()},
        }
    )
    return table[["path", "lat", "lon", "observer_id", "observed_on", *ranks]]


def photo(rng: np.random.Generator, species: int) -> np.ndarray:
    """A 32 px photo: a colour per species under noise, so the species can be told apart."""
    colour = np.array([(species * 40) % 256, (species * 90 + 60) % 256, (255 - species * 35) % 256], dtype=np.float64)
    pixels = colour + rng.normal(0, 40, (IMAGE_SIZE, IMAGE_SIZE, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def write_collection(shape: str, folder: Path) -> Path:
    """The shape's photos and CSV under ``folder``; returns the CSV's path."""
    table = collection(shape)
    rng = np.random.default_rng(1)
    names = list(SPECIES)
    for path, species in zip(table["path"], table["species"]):
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo(rng, names.index(species))).save(folder / path)
    csv = folder / "photos.csv"
    table.to_csv(csv, index=False)
    return csv


def shape_config(shape: str, folder: Path, strategies: tuple[str, ...] = ("supervised", "context_pos_neg")) -> Path:
    """A workflow config: the tiny config with the shape's CSV as the source (results/<shape>/), ``strategies``,
    one seed and the frozen protocols (fine-tuning sees nothing a shape changes)."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["dataset"] = {"name": shape, "source": "csv", "csv": {"path": str(write_collection(shape, folder))}}
    config["pretrain"].update(strategies=list(strategies), seeds=[0])
    config["evaluate"]["protocols"] = ["linear", "knn"]
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def shape_manifest(shape: str) -> pd.DataFrame:
    """The shape's collection as a validated manifest (no image files), as the csv source would give it."""
    from geocontrast.data.manifest import MANIFEST_COLUMNS, validate_manifest

    table = collection(shape)
    table["image_id"] = table["observation_id"] = table["path"]
    table["observed_on"] = table["observed_on"].dt.strftime("%Y-%m-%d")
    return validate_manifest(table.reindex(columns=list(MANIFEST_COLUMNS)))
