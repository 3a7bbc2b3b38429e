"""Smooth environmental fields over the region, the habitat they imply, and species suitability rasters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .region import KM_PER_DEGREE, Region


@dataclass(frozen=True)
class Landscape:
    """Environmental fields on a regular lon/lat grid (cell centres), each scaled to [0, 1]; `land` marks the region."""

    lon: np.ndarray  # (W,) cell-centre longitudes
    lat: np.ndarray  # (H,) cell-centre latitudes
    elevation: np.ndarray  # (H, W) elevation-like: rugged, grey, rocky when high
    moisture: np.ndarray  # (H, W) moisture-like: wetter to the north and the coast
    land: np.ndarray  # (H, W) bool

    def cell_of(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid (row, col) of each point, clipped to the grid."""
        col = np.clip(np.rint((lon - self.lon[0]) / (self.lon[1] - self.lon[0])), 0, len(self.lon) - 1)
        row = np.clip(np.rint((lat - self.lat[0]) / (self.lat[1] - self.lat[0])), 0, len(self.lat) - 1)
        return row.astype(int), col.astype(int)

    def sample(self, field: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Nearest-cell values of a (..., H, W) field at points (lon, lat)."""
        row, col = self.cell_of(lon, lat)
        return field[..., row, col]


def _smooth_noise(shape: tuple[int, int], sigma_cells: float, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import gaussian_filter  # only the world's generation needs it, not its CLI's --help

    field = gaussian_filter(rng.normal(size=shape), sigma_cells, mode="reflect")
    return (field - field.min()) / (np.ptp(field) + 1e-12)


def make_landscape(region: Region, grid_cells: int, rng: np.random.Generator) -> Landscape:
    """Seeded fields on a grid_cells-wide grid. Moisture has a north and a coastal (west) gradient."""
    lon_min, lat_min, lon_max, lat_max = region.bbox
    width = grid_cells
    height = max(8, int(round(grid_cells * (lat_max - lat_min) / (lon_max - lon_min))))
    lon = np.linspace(lon_min, lon_max, width)
    lat = np.linspace(lat_min, lat_max, height)
    lon_grid, lat_grid = np.meshgrid(lon, lat)
    land = region.contains(lon_grid, lat_grid)

    elevation = 0.7 * _smooth_noise((height, width), grid_cells / 10, rng) + 0.3 * _smooth_noise(
        (height, width), grid_cells / 30, rng
    )
    north = (lat_grid - lat_min) / (lat_max - lat_min)
    west = (lon_max - lon_grid) / (lon_max - lon_min)
    moisture = 0.45 * north + 0.3 * west + 0.35 * _smooth_noise((height, width), grid_cells / 12, rng)
    rescale = lambda f: (f - f.min()) / (np.ptp(f) + 1e-12)  # noqa: E731
    return Landscape(lon, lat, rescale(elevation), rescale(moisture), land)


# Ground colours of dry grassland, moist meadow and bare rock (RGB 0..1).
DRY_GROUND = np.array([0.76, 0.66, 0.45])
WET_GROUND = np.array([0.30, 0.42, 0.22])
ROCK = np.array([0.55, 0.54, 0.52])


def habitat_fields(elevation: np.ndarray, moisture: np.ndarray) -> dict[str, np.ndarray]:
    """Photo backgrounds implied by the environment: ground colour (N, 3), roughness and vegetation (N,)."""
    elevation = np.asarray(elevation, dtype=float)[:, None]
    moisture = np.asarray(moisture, dtype=float)[:, None]
    ground = DRY_GROUND + (WET_GROUND - DRY_GROUND) * moisture
    ground = ground + (ROCK - ground) * 0.7 * elevation**2
    return {
        "ground_rgb": ground,
        "roughness": 0.25 + 0.6 * elevation[:, 0],
        "vegetation": 0.1 + 0.8 * moisture[:, 0],
    }


def suitability(landscape: Landscape, niches: dict[str, np.ndarray]) -> np.ndarray:
    """(S, H, W) suitability in [0, 1] per species: a Gaussian niche in (elevation, moisture) times a
    Gaussian geographic range around each species' range centre; zero off land.

    niches holds per-species arrays: elevation_opt, moisture_opt, niche_width, range_lon, range_lat, range_km.
    """
    elev = landscape.elevation[None]
    moist = landscape.moisture[None]
    column = lambda key: np.asarray(niches[key], dtype=float)[:, None, None]  # noqa: E731
    width = column("niche_width")
    niche = np.exp(-((elev - column("elevation_opt")) ** 2 + (moist - column("moisture_opt")) ** 2) / (2 * width**2))
    lon_grid, lat_grid = np.meshgrid(landscape.lon, landscape.lat)
    east_km = (lon_grid[None] - column("range_lon")) * KM_PER_DEGREE * np.cos(np.radians(lat_grid[None]))
    north_km = (lat_grid[None] - column("range_lat")) * KM_PER_DEGREE
    geographic = np.exp(-(east_km**2 + north_km**2) / (2 * column("range_km") ** 2))
    return (niche * geographic * landscape.land[None]).astype(np.float32)
