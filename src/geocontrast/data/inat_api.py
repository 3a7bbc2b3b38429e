"""Observations from the public iNaturalist API v1 as a photo source (api.inaturalist.org/v1/docs).

``GET /observations`` is paged with ``id_above`` in ascending id order (``order_by=id&order=asc``): plain
``page`` numbers stop at 10,000 results, ``id_above`` does not. Filters: ``taxon_id``, ``place_id`` and/or a
bounding box (``swlat``/``swlng``/``nelat``/``nelng``), ``quality_grade``, ``photo_license``; then a cap on
observations per species and in total. The taxonomy comes from ``GET /taxa/{ids}`` (30 ids a request), whose
``ancestors`` carry the ranks; observations only list ancestor ids.

Within iNaturalist's terms (about 60 requests a minute and 10,000 a day; a few GB of photos an hour and 24 GB a
day): requests go through a ``RateLimiter``, and a ``DailyUsage`` counts the API requests and photo bytes
of the current UTC day in ``cache_dir/usage.json``, so that a rerun or a resumed run the same day goes on counting.
Reaching ``max_requests_per_day`` or ``max_media_gb_per_day`` stops the run with ``DailyLimitReached``, whose
message says how far it got and how to resume (everything fetched is cached: rerun the next UTC day, or raise the
key). Every raw JSON answer is cached under ``cache_dir/responses/``; a rerun with the same config reads the answers
younger than ``cache_max_age_days`` and sends nothing for them, older ones are fetched again. Photos are downloaded
once into ``cache_dir/photos/<size>/`` in the configured size (the API's ``square`` URL with ``square`` replaced by
e.g. ``medium``) and hard-linked into the image folder. These, the HTTP side, are in
:mod:`geocontrast.data.inat_client`; this module builds the query, pages through the observations, looks up the
taxonomy, turns observations into manifest rows and is the CLI.

Mapping to the manifest (docs/architecture.md), one row per photo: ``image_id`` is the photo id, ``path``
``<photo id>.<ext>``, ``observation_id`` the observation id, ``observer_id`` the observer's user id (stable;
the login name can be changed),
``coord_uncertainty_m`` the public positional accuracy (at least 28 km when the location is obscured),
``taxon_id`` the species' taxon id (the observation's taxon above species rank), ``license`` and ``attribution``
the photo's own. Extra columns after the manifest columns: ``obscured``, ``geoprivacy`` (the observer's or the
taxon's), ``positional_accuracy_m`` (as the observer recorded it), ``photo_url`` (where the photo came from),
``observer_login`` (the login name when the photo was listed).

CLI (the workflow's ``inat_api`` rule)::

    python -m geocontrast.data.inat_api --config-json '{"taxon_id": 47126, ...}' \\
        --source results/x/source/photos.parquet --image-root results/x/images --cache-dir downloads/inat_api
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import requests

from geocontrast.cli import exit_without_teardown
from geocontrast.data.download import SourceError, new_session, run_source_cli
from geocontrast.data.inat_client import GB, DailyLimitReached, DailyUsage, InatClient, RateLimiter, download_photos
from geocontrast.data.manifest import TAXONOMIC_RANKS

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.inaturalist.org/v1"
MAX_PER_PAGE = 200
TAXA_PER_REQUEST = 30  # GET /taxa/{ids} answers at most 30 taxa
# iNaturalist obscures a location to a random point of a 0.2 degree cell: about its diagonal, as in the synthetic world.
OBSCURED_UNCERTAINTY_M = 28_000.0
_PHOTO_SIZE_IN_URL = re.compile(r"/square(\.\w+)")


def inat_api_photos(
    config: dict,
    image_root: Path,
    cache_dir: Path,
    *,
    session: requests.Session | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.time,
    progress: bool = True,
) -> pd.DataFrame:
    """Query observations, look up their taxonomy, download their photos under ``image_root``.

    Args:
        config: the ``dataset.inat_api`` section (see config/README.md): ``api_url``, ``taxon_id``, ``place_id``,
            ``bbox``, ``quality_grade``, ``photo_licenses``, ``max_per_species``, ``max_observations``,
            ``max_photos_per_observation``, ``photo_size``, ``requests_per_minute``,
            ``photo_requests_per_minute``, ``max_requests_per_day``, ``max_media_gb_per_day``,
            ``cache_max_age_days``.
        image_root: the image folder; the returned ``path`` column is relative to it.
        cache_dir: raw API answers, downloaded photos and the day's usage, reused by later runs.
        session, clock, sleep, now: injected by tests (HTTP session; the rate limiters' clock; the waits of the rate
            limiters and of retries; the wall clock, epoch seconds, of the daily caps and the cache's age).
        progress: a tqdm bar over photos on stderr.

    Raises :class:`DailyLimitReached` when a daily cap stops the run (what was fetched stays cached).
    """
    session = session or new_session()
    usage = DailyUsage(
        Path(cache_dir) / "usage.json", config["max_requests_per_day"], config["max_media_gb_per_day"] * GB, now
    )
    max_age_days = config["cache_max_age_days"]
    client = InatClient(
        config["api_url"],
        cache_dir,
        RateLimiter(config["requests_per_minute"], 60.0, clock, sleep),
        session,
        sleep,
        usage,
        None if max_age_days is None else max_age_days * 86_400.0,
        now,
    )
    observations = select_observations(client, config)
    taxa = {o["taxon"]["id"] for o in observations if o.get("taxon")}
    try:
        lineages = taxon_lineages(client, taxa)
    except DailyLimitReached as stop:
        raise stop.during(
            f"looking up the taxonomy of {len(taxa)} taxa, after all {len(observations)} observations were listed"
        ) from None
    rows = [row for o in observations for row in observation_rows(o, lineages, config)]
    if not rows:
        raise SourceError(f"no observation with a photo under licences {config['photo_licenses']} matches the query")
    table = pd.DataFrame(rows).drop_duplicates("image_id").reset_index(drop=True)  # a photo on two observations

    photo_limiter = RateLimiter(config["photo_requests_per_minute"], 60.0, clock, sleep)
    available = download_photos(
        table,
        Path(cache_dir) / "photos" / config["photo_size"],
        Path(image_root),
        photo_limiter,
        session,
        progress,
        sleep,
        usage,
    )
    return table[available].reset_index(drop=True)


def observation_query(config: dict) -> dict:
    """The /observations filters of ``config``, for ``params``."""
    query = {"photos": "true", "photo_license": ",".join(config["photo_licenses"])}
    for key in ("taxon_id", "place_id", "quality_grade"):
        if config[key] is not None:
            query[key] = config[key]
    if config["bbox"] is not None:
        lon_min, lat_min, lon_max, lat_max = config["bbox"]
        query.update(swlat=lat_min, swlng=lon_min, nelat=lat_max, nelng=lon_max)
    return query


def iter_observations(client: InatClient, query: dict, per_page: int = MAX_PER_PAGE) -> Iterator[dict]:
    """Every observation matching ``query`` in ascending id order, one page after another, until a short page."""
    id_above = 0
    while True:
        page = client.get(
            "observations", {**query, "order_by": "id", "order": "asc", "per_page": per_page, "id_above": id_above}
        )
        results = page["results"]
        yield from results
        if len(results) < per_page:
            return
        id_above = results[-1]["id"]


def select_observations(client: InatClient, config: dict) -> list[dict]:
    """Observations in id order, at most ``max_per_species`` per species and ``max_observations`` in all.

    The species of an observation is its taxon's ``min_species_taxon_id`` (the species above a subspecies; the taxon
    itself above species rank); observations without a usable photo do not count.
    """
    licences = set(config["photo_licenses"])
    per_species: Counter = Counter()
    selected: list[dict] = []
    try:
        for observation in _selectable(iter_observations(client, observation_query(config)), licences):
            taxon = observation.get("taxon") or {}
            species = taxon.get("min_species_taxon_id", taxon.get("id"))
            if per_species[species] >= config["max_per_species"]:
                continue
            per_species[species] += 1
            selected.append(observation)
            if len(selected) >= config["max_observations"]:
                break
    except DailyLimitReached as stop:
        raise stop.during(
            f"listing observations, with {len(selected)} of at most {config['max_observations']} selected"
        ) from None
    log.info("%d observations of %d taxa", len(selected), len(per_species))
    return selected


def _selectable(observations: Iterator[dict], licences: set[str]) -> Iterator[dict]:
    """The observations with at least one photo under one of ``licences``."""
    for observation in observations:
        if any(photo.get("license_code") in licences for photo in observation.get("photos", [])):
            yield observation


def taxon_lineages(client: InatClient, taxon_ids: set[int]) -> dict[int, dict[str, tuple[int, str]]]:
    """Per taxon id, ``{rank: (id, name)}`` over its ancestors and itself, from ``GET /taxa/{ids}``."""
    lineages = {}
    ordered = sorted(taxon_ids)  # a fixed order keeps the requests, and so the cache keys, the same on a rerun
    for start in range(0, len(ordered), TAXA_PER_REQUEST):
        ids = ",".join(str(i) for i in ordered[start : start + TAXA_PER_REQUEST])
        for taxon in client.get(f"taxa/{ids}")["results"]:
            lineages[taxon["id"]] = {t["rank"]: (t["id"], t["name"]) for t in [*taxon.get("ancestors", []), taxon]}
    return lineages


def observation_rows(observation: dict, lineages: dict, config: dict) -> list[dict]:
    """Manifest rows (plus the extra columns) for the usable photos of one observation."""
    taxon = observation.get("taxon") or {}
    lineage = lineages.get(taxon.get("id"), {})
    species = lineage.get("species")
    coordinates = (observation.get("geojson") or {}).get("coordinates") or [np.nan, np.nan]
    user = observation.get("user") or {}
    recorded = observation.get("positional_accuracy")
    public = observation.get("public_positional_accuracy")
    uncertainty = public if public is not None else recorded
    if observation.get("obscured"):
        uncertainty = max(uncertainty or 0.0, OBSCURED_UNCERTAINTY_M)
    shared = {
        "lat": float(coordinates[1]),
        "lon": float(coordinates[0]),
        "coord_uncertainty_m": np.nan if uncertainty is None else float(uncertainty),
        "observed_on": observation.get("observed_on"),
        "observer_id": str(user["id"]) if user.get("id") is not None else None,
        "observation_id": str(observation["id"]),
        "taxon_id": str(species[0] if species else taxon["id"]) if taxon else None,
        **{rank: lineage[rank][1] if rank in lineage else None for rank in TAXONOMIC_RANKS},
        "source": "inat_api",
        "obscured": bool(observation.get("obscured")),
        "geoprivacy": observation.get("geoprivacy") or observation.get("taxon_geoprivacy"),
        "positional_accuracy_m": np.nan if recorded is None else float(recorded),
        "observer_login": user.get("login"),
    }
    licences = set(config["photo_licenses"])
    photos = [p for p in observation.get("photos", []) if p.get("license_code") in licences]
    rows = []
    for photo in photos[: config["max_photos_per_observation"]]:
        url = photo_url(photo["url"], config["photo_size"])
        rows.append(
            {
                "image_id": str(photo["id"]),
                "path": f"{photo['id']}{PurePosixPath(urlsplit(url).path).suffix or '.jpg'}",
                **shared,
                "license": photo["license_code"],
                "attribution": photo.get("attribution"),
                "photo_url": url,
            }
        )
    return rows


def photo_url(url: str, size: str) -> str:
    """The URL of another size of a photo: the API lists ``.../square.jpg?...``; ``medium`` is 500 px long."""
    return _PHOTO_SIZE_IN_URL.sub(f"/{size}\\1", url, count=1)


def main(argv: list[str] | None = None) -> int:
    return run_source_cli(
        inat_api_photos, argv, prog="python -m geocontrast.data.inat_api", description=__doc__.split("\n")[0]
    )


if __name__ == "__main__":
    exit_without_teardown(main())
