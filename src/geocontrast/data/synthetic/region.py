"""Where the synthetic world lives: a land polygon and the population centres observers come from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KM_PER_DEGREE = 111.32

# A coarse outline of California (lon, lat), clockwise from the Oregon border on the coast.
CALIFORNIA_OUTLINE = np.array(
    [
        (-124.21, 42.00),
        (-120.00, 42.00),
        (-120.00, 39.00),
        (-114.63, 35.00),
        (-114.63, 34.87),
        (-114.13, 34.27),
        (-114.43, 34.08),
        (-114.53, 33.03),
        (-114.72, 32.72),
        (-117.12, 32.53),
        (-117.28, 33.05),
        (-117.88, 33.60),
        (-118.28, 33.72),
        (-118.52, 34.03),
        (-119.22, 34.15),
        (-120.47, 34.45),
        (-120.64, 34.90),
        (-120.87, 35.37),
        (-121.90, 36.30),
        (-121.95, 36.60),
        (-121.80, 36.85),
        (-122.40, 37.20),
        (-122.52, 37.78),
        (-123.00, 38.00),
        (-123.70, 38.92),
        (-123.83, 39.80),
        (-124.40, 40.44),
        (-124.10, 41.00),
    ]
)

# Population centres (lon, lat, metro population in millions): iNaturalist observers live where people do.
CALIFORNIA_CITIES = np.array(
    [
        (-118.24, 34.05, 13.0),
        (-122.42, 37.77, 4.7),
        (-117.40, 33.95, 4.6),
        (-117.16, 32.72, 3.3),
        (-121.49, 38.58, 2.4),
        (-121.89, 37.34, 2.0),
        (-119.79, 36.74, 1.0),
        (-119.02, 35.37, 0.9),
        (-121.29, 37.96, 0.8),
        (-121.00, 37.64, 0.55),
        (-122.71, 38.44, 0.5),
        (-119.70, 34.42, 0.45),
        (-121.89, 36.60, 0.43),
        (-116.55, 33.83, 0.4),
        (-120.66, 35.28, 0.28),
        (-122.39, 40.59, 0.18),
        (-124.16, 40.80, 0.14),
    ]
)


@dataclass(frozen=True)
class Region:
    """A land polygon in lon/lat degrees with weighted population centres (hotspots)."""

    name: str
    outline: np.ndarray  # (V, 2) lon, lat
    hotspots: np.ndarray  # (H, 2) lon, lat
    hotspot_weights: np.ndarray  # (H,) sums to 1

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(lon_min, lat_min, lon_max, lat_max) of the outline."""
        lon_min, lat_min = self.outline.min(axis=0)
        lon_max, lat_max = self.outline.max(axis=0)
        return float(lon_min), float(lat_min), float(lon_max), float(lat_max)

    def contains(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Boolean mask of the points inside the land polygon."""
        from matplotlib.path import Path  # only the world's generation needs it, not its CLI's --help

        points = np.column_stack([np.ravel(lon), np.ravel(lat)])
        return Path(self.outline).contains_points(points).reshape(np.shape(lon))

    def sample_uniform(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n points (lon, lat) uniform in degrees over the land polygon, by rejection from the bbox."""
        lon_min, lat_min, lon_max, lat_max = self.bbox
        accepted = np.empty((0, 2))
        while len(accepted) < n:
            lon = rng.uniform(lon_min, lon_max, 2 * n + 16)
            lat = rng.uniform(lat_min, lat_max, 2 * n + 16)
            inside = self.contains(lon, lat)
            accepted = np.vstack([accepted, np.column_stack([lon[inside], lat[inside]])])
        return accepted[:n]

    def scatter_around(
        self, centres: np.ndarray, sigma_km: np.ndarray | float, rng: np.random.Generator, max_tries: int = 20
    ) -> np.ndarray:
        """Gaussian scatter (sigma in km) around each centre (lon, lat), redrawn until on land.

        Points still at sea after max_tries stay at their centre, which is on land.
        """
        centres = np.asarray(centres, dtype=float)
        sigma = np.broadcast_to(np.asarray(sigma_km, dtype=float), (len(centres),))
        points = centres.copy()
        pending = np.arange(len(centres))
        for _ in range(max_tries):
            if len(pending) == 0:
                break
            candidate = offset_km(centres[pending], rng.normal(size=(len(pending), 2)) * sigma[pending, None])
            inside = self.contains(candidate[:, 0], candidate[:, 1])
            points[pending[inside]] = candidate[inside]
            pending = pending[~inside]
        return points


def offset_km(points: np.ndarray, east_north_km: np.ndarray) -> np.ndarray:
    """Move (lon, lat) points by (east, north) kilometres, locally flat (fine below a few hundred km)."""
    lat = points[:, 1]
    dlat = east_north_km[:, 1] / KM_PER_DEGREE
    dlon = east_north_km[:, 0] / (KM_PER_DEGREE * np.cos(np.radians(lat)))
    return np.column_stack([points[:, 0] + dlon, np.clip(lat + dlat, -90.0, 90.0)])


def make_region(name: str, bbox: list[float] | None, rng: np.random.Generator) -> Region:
    """The built-in California region, or a rectangular region from bbox (lon_min, lat_min, lon_max, lat_max).

    A rectangular region has no real cities, so it gets seeded hotspots with long-tailed weights.
    """
    if name == "california":
        weights = CALIFORNIA_CITIES[:, 2] / CALIFORNIA_CITIES[:, 2].sum()
        return Region("california", CALIFORNIA_OUTLINE, CALIFORNIA_CITIES[:, :2], weights)
    if name != "bbox":
        raise ValueError(f"world.region: unknown region {name!r}; use 'california' or 'bbox'")
    if bbox is None or len(bbox) != 4:
        raise ValueError("world.bbox: region 'bbox' needs [lon_min, lat_min, lon_max, lat_max]")
    lon_min, lat_min, lon_max, lat_max = map(float, bbox)
    if not (-180 <= lon_min < lon_max <= 180 and -90 <= lat_min < lat_max <= 90):
        raise ValueError(f"world.bbox: {bbox} is not [lon_min, lat_min, lon_max, lat_max] within the globe")
    outline = np.array([(lon_min, lat_min), (lon_max, lat_min), (lon_max, lat_max), (lon_min, lat_max)])
    box = Region("bbox", outline, np.empty((0, 2)), np.empty(0))
    hotspots = box.sample_uniform(12, rng)
    weights = rng.pareto(1.2, len(hotspots)) + 0.05
    return Region("bbox", outline, hotspots, weights / weights.sum())
