"""Assemble the synthetic flora world and render its photos."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ...atomic import atomic_path
from ..render import Habitat, render_photo, save_jpeg
from .landscape import Landscape, habitat_fields, make_landscape, suitability
from .observations import simulate_observations
from .region import Region, make_region
from .taxonomy import RANK_COLUMNS, individual_traits, make_taxonomy

LICENSE = "CC-BY-4.0"


@dataclass(frozen=True)
class World:
    """Everything the generator knows: the truth (taxonomy, landscape, ranges) and one row per photo."""

    region: Region
    landscape: Landscape
    taxonomy: pd.DataFrame  # one row per species with traits and niche
    suitability: np.ndarray  # (S, H, W) float32, rows in taxonomy order
    observations: pd.DataFrame  # one row per observation, with true coordinates
    photos: pd.DataFrame  # one row per photo in manifest columns, plus observation_index


def generate_world(params: dict) -> World:
    """Build the world deterministically from params (the `world` config section; see config/README.md)."""
    rng = np.random.default_rng(params["seed"])
    region = make_region(params["region"], params.get("bbox"), rng)
    landscape = make_landscape(region, params["grid_cells"], rng)
    taxonomy = make_taxonomy(params["taxonomy"], region, params, rng)
    niches = {
        key: taxonomy[key].to_numpy()
        for key in ("elevation_opt", "moisture_opt", "niche_width", "range_lon", "range_lat", "range_km")
    }
    species_suitability = suitability(landscape, niches)
    observations = simulate_observations(region, landscape, taxonomy, species_suitability, params, rng)
    return World(region, landscape, taxonomy, species_suitability, observations, _photos(observations, taxonomy))


def _photos(observations: pd.DataFrame, taxonomy: pd.DataFrame) -> pd.DataFrame:
    """Expand observations into photos with the manifest columns (species null when unidentified)."""
    observation_index = np.repeat(np.arange(len(observations)), observations["n_photos"].to_numpy())
    obs = observations.iloc[observation_index].reset_index(drop=True)
    image_id = [f"i{i:08d}" for i in range(len(obs))]
    ranks = taxonomy.iloc[obs["species_index"].to_numpy()].reset_index(drop=True)
    photos = pd.DataFrame(
        {
            "image_id": image_id,
            "path": [f"{i[-2:]}/{i}.jpg" for i in image_id],
            "lat": obs["lat"],
            "lon": obs["lon"],
            "coord_uncertainty_m": obs["coord_uncertainty_m"],
            "observed_on": obs["observed_on"],
            "observer_id": obs["observer_id"],
            "observation_id": obs["observation_id"],
            "taxon_id": ranks["taxon_id"],
            **{rank: ranks[rank] for rank in RANK_COLUMNS},
            "license": LICENSE,
            "attribution": [f"(c) {u}, synthetic" for u in obs["observer_id"]],
            "source": "synthetic",
        }
    )
    unidentified = ~obs["identified"].to_numpy()
    photos.loc[unidentified, ["species", "taxon_id"]] = None
    photos["observation_index"] = observation_index
    return photos


def _render_chunk(jobs: list[tuple]) -> int:
    for path, traits, habitat, size, nuisance, seed in jobs:
        save_jpeg(render_photo(traits, habitat, size, np.random.default_rng(seed), nuisance), path)
    return len(jobs)


def render_photos(world: World, params: dict, image_root: Path, workers: int = 1, progress: bool = True) -> None:
    """Render every photo to image_root/path as JPEG. A plant's traits are drawn once per observation (its
    photos show the same individual); each photo gets its own nuisance. Seeded per photo, so the output does not
    depend on the number of workers."""
    obs = world.observations
    env = {
        name: world.landscape.sample(field, obs["true_lon"].to_numpy(), obs["true_lat"].to_numpy())
        for name, field in (("elevation", world.landscape.elevation), ("moisture", world.landscape.moisture))
    }
    habitat = habitat_fields(env["elevation"], env["moisture"])
    seed = params["seed"]
    plants = [
        individual_traits(world.taxonomy.iloc[s], np.random.default_rng([seed, 1, i]))
        for i, s in enumerate(obs["species_index"].to_numpy())
    ]
    habitats = [
        Habitat(tuple(habitat["ground_rgb"][i]), float(habitat["roughness"][i]), float(habitat["vegetation"][i]))
        for i in range(len(obs))
    ]
    jobs = [
        (Path(image_root) / path, plants[o], habitats[o], params["image_size"], params["nuisance"], [seed, 2, i])
        for i, (path, o) in enumerate(zip(world.photos["path"], world.photos["observation_index"]))
    ]
    chunks = [jobs[start : start + 256] for start in range(0, len(jobs), 256)]
    with tqdm(total=len(jobs), desc="render", unit="img", disable=not progress) as bar:
        if workers <= 1:
            for chunk in chunks:
                bar.update(_render_chunk(chunk))
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for done in pool.map(_render_chunk, chunks):
                    bar.update(done)


def write_truth(world: World, world_dir: Path) -> None:
    """The world's truth for later figures: fields, suitability rasters, taxonomy and true coordinates."""
    world_dir = Path(world_dir)
    world_dir.mkdir(parents=True, exist_ok=True)
    land = world.landscape
    with atomic_path(world_dir / "truth.npz") as partial:
        np.savez_compressed(
            partial,
            lon=land.lon,
            lat=land.lat,
            elevation=land.elevation,
            moisture=land.moisture,
            land=land.land,
            suitability=world.suitability,
            taxon_id=world.taxonomy["taxon_id"].to_numpy(dtype=str),
            species=world.taxonomy["species"].to_numpy(dtype=str),
            outline=world.region.outline,
        )
    for name, table in (("taxonomy", world.taxonomy), ("observations", world.observations)):
        with atomic_path(world_dir / f"{name}.parquet") as partial:
            table.to_parquet(partial, index=False)
