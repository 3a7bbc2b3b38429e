"""Assemble the synthetic flora world and render its photos."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ...atomic import atomic_path
from ..render import CameraStyle, Habitat, render_photo, save_jpeg
from .landscape import Landscape, habitat_fields, make_landscape, suitability
from .observations import simulate_observations
from .region import Region, make_region
from .taxonomy import RANK_COLUMNS, individual_traits, make_taxonomy

LICENSE = "CC-BY-4.0"
# Random streams of the rendering, each its own so that the world's other draws stay the same whatever is set:
# the plants' traits [seed, 1, observation] and the photos' nuisance [seed, 2, photo] (3 and 4: the occurrence
# records and the local aggregation, in truth.py and observations.py).
OBSERVER_STYLE_STREAM = 5  # [seed, 5, observer number]: each observer's camera
BACKGROUND_STREAM = 6  # [seed, 6]: which observations' backgrounds come from another place


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
    for path, traits, habitat, size, nuisance, seed, style in jobs:
        image = render_photo(traits, habitat, size, np.random.default_rng(seed), nuisance, style)
        save_jpeg(image, path, quality=90 if style is None else style.jpeg_quality)
    return len(jobs)


def camera_style(seed: int, observer: int, strength: float) -> CameraStyle | None:
    """The camera of observer number ``observer`` (:class:`~geocontrast.data.render.CameraStyle`), drawn from
    its own stream ``[seed, OBSERVER_STYLE_STREAM, observer]``; every draw is scaled by ``strength``, and
    strength 0 gives None (no style)."""
    if strength == 0:
        return None
    rng = np.random.default_rng([seed, OBSERVER_STYLE_STREAM, observer])
    cast = 1.0 + strength * rng.normal(0.0, 0.04, 3)  # colour cast
    warmth = strength * rng.normal(0.0, 0.06)  # white balance: warm (red up, blue down) or cool
    gains = np.clip(cast * np.array([1.0 + warmth, 1.0, 1.0 - warmth]), 0.5, 1.5)
    return CameraStyle(
        gains=tuple(float(g) for g in gains),
        sharpness=float(np.clip(strength * rng.normal(0.0, 0.5), -1.5, 1.5)),
        jpeg_quality=int(np.clip(round(90 - strength * rng.uniform(0.0, 40.0)), 10, 95)),
        zoom=float(np.exp(strength * rng.normal(0.0, 0.12))),
        offset=tuple(float(v) for v in np.clip(strength * rng.normal(0.0, 0.06, 2), -0.2, 0.2)),
    )


def background_places(world: World, params: dict) -> np.ndarray:
    """(n_observations,) the observation whose true place sets each observation's photo background: its own
    where coupled (a share ``background_coupling``), a uniformly drawn one elsewhere (its own random stream)."""
    n_obs = len(world.observations)
    own = np.arange(n_obs)
    coupling = params["background_coupling"]
    if coupling == 1:
        return own
    rng = np.random.default_rng([params["seed"], BACKGROUND_STREAM])
    donor = rng.integers(n_obs, size=n_obs)
    return np.where(rng.random(n_obs) < coupling, own, donor)


def render_photos(world: World, params: dict, image_root: Path, workers: int = 1, progress: bool = True) -> None:
    """Render every photo to image_root/path as JPEG. A plant's traits are drawn once per observation (its
    photos show the same individual); each photo gets its own nuisance, and its observer's camera
    (``observer_style``). The background follows the habitat of :func:`background_places`. Seeded per photo,
    so the output does not depend on the number of workers."""
    obs = world.observations
    place = background_places(world, params)
    env = {
        name: world.landscape.sample(field, obs["true_lon"].to_numpy()[place], obs["true_lat"].to_numpy()[place])
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
    styles = {
        observer: camera_style(seed, int(observer.lstrip("u")), params["observer_style"])
        for observer in obs["observer_id"].unique()
    }
    style_of_obs = [styles[observer] for observer in obs["observer_id"]]
    jobs = [
        (
            Path(image_root) / path,
            plants[o],
            habitats[o],
            params["image_size"],
            params["nuisance"],
            [seed, 2, i],
            style_of_obs[o],
        )
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
