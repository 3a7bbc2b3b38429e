"""The iNaturalist API source against a local server (paging, rate and daily limits, cache) and the CSV source."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sources_fixtures import LocalServer, defaults, jpeg_bytes

from geocontrast.data import csv_source, inat_api, inat_client
from geocontrast.data.manifest import MANIFEST_COLUMNS, validate_manifest

# --- inat_api -------------------------------------------------------------------------------------------------

# Lineages as GET /taxa/{id} answers them: ancestors carry ranks (sub-ranks included), the taxon itself comes last.
_PLANTS = [
    (47126, "kingdom", "Plantae"),
    (211194, "phylum", "Tracheophyta"),
    (47125, "subphylum", "Angiospermae"),
    (47124, "class", "Magnoliopsida"),
]
LINEAGES = {
    49011: [
        *_PLANTS,
        (47132, "order", "Fagales"),
        (47131, "family", "Fagaceae"),
        (47851, "genus", "Quercus"),
        (49011, "species", "Quercus agrifolia"),
    ],
    48225: [
        *_PLANTS,
        (211190, "order", "Ranunculales"),
        (48223, "family", "Papaveraceae"),
        (48224, "genus", "Eschscholzia"),
        (48225, "species", "Eschscholzia californica"),
    ],
}


def api_taxon(taxon_id: int) -> dict:
    _, rank, name = LINEAGES[taxon_id][-1]
    return {
        "id": taxon_id,
        "name": name,
        "rank": rank,
        "rank_level": 10,
        "is_active": True,
        "ancestor_ids": [a[0] for a in LINEAGES[taxon_id]],
        "min_species_taxon_id": taxon_id,
        "iconic_taxon_name": "Plantae",
    }


def api_observation(obs_id: int, taxon_id: int, photo_licence: str | None = "cc-by", obscured: bool = False) -> dict:
    """An observation as GET /observations lists it (the fields the source reads, and a few around them)."""
    lat, lon = 37.8 + obs_id / 100, -122.3
    photo = {
        "id": 1000 + obs_id,
        "license_code": photo_licence,
        "url": f"https://static.inaturalist.org/photos/{1000 + obs_id}/square.jpg?1598551272",
        "attribution": f"(c) user{obs_id}, some rights reserved (CC BY)",
        "original_dimensions": {"width": 12, "height": 8},
        "flags": [],
    }
    return {
        "id": obs_id,
        "uuid": f"uuid-{obs_id}",
        "quality_grade": "research",
        "observed_on": "2020-08-27",
        "observed_on_details": {"date": "2020-08-27", "year": 2020, "month": 8, "day": 27},
        "location": f"{lat},{lon}",
        "geojson": {"coordinates": [lon, lat], "type": "Point"},
        "positional_accuracy": 12,
        "public_positional_accuracy": 12,
        "obscured": obscured,
        "geoprivacy": "obscured" if obscured else None,
        "taxon_geoprivacy": "open",
        "license_code": "cc-by",
        "user": {"id": 500 + obs_id, "login": f"user{obs_id}"},
        "taxon": api_taxon(taxon_id),
        "photos": [photo],
        "observation_photos": [{"id": 9000 + obs_id, "position": 0, "photo": photo}],
    }


OBSERVATIONS = [
    api_observation(1, 49011),
    api_observation(2, 49011, obscured=True),
    api_observation(3, 49011),
    api_observation(4, 48225),
    api_observation(5, 48225, photo_licence=None),
    api_observation(6, 48225),
]


@pytest.fixture
def api(server) -> LocalServer:
    """The API's observations and taxa endpoints under {server.url}/v1, and the photos under /photos/."""
    observations = [
        json.loads(json.dumps(o).replace("https://static.inaturalist.org", server.url)) for o in OBSERVATIONS
    ]

    def list_observations(path, query):
        assert query["order_by"] == ["id"] and query["order"] == ["asc"]
        per_page, id_above = int(query["per_page"][0]), int(query["id_above"][0])
        above = [o for o in observations if o["id"] > id_above]
        return {"total_results": len(above), "page": 1, "per_page": per_page, "results": above[:per_page]}

    def show_taxa(path, query):
        taxa = []
        for taxon_id in map(int, path.rsplit("/", 1)[1].split(",")):
            ancestors = [
                {"id": i, "rank": rank, "name": name, "rank_level": 0, "is_active": True}
                for i, rank, name in LINEAGES[taxon_id][:-1]
            ]
            taxa.append({**api_taxon(taxon_id), "ancestors": ancestors})
        return {"total_results": len(taxa), "page": 1, "per_page": 30, "results": taxa}

    server.routes = {"/v1/observations": list_observations, "/v1/taxa/": show_taxa}
    for o in observations:
        server.files[f"/photos/{o['photos'][0]['id']}/medium.jpg"] = jpeg_bytes((o["id"] * 30, 100, 50))
    return server


def api_config(api: LocalServer, **overrides) -> dict:
    return {**defaults("inat_api"), "api_url": f"{api.url}/v1", **overrides}


def test_api_pages_with_id_above_and_stops_at_the_last_page(api, tmp_path):
    client = inat_client.InatClient(f"{api.url}/v1", tmp_path, inat_client.RateLimiter())
    ids = [o["id"] for o in inat_api.iter_observations(client, {}, per_page=4)]
    assert ids == [1, 2, 3, 4, 5, 6]
    assert [q["id_above"] for _, q, _ in api.requested("/v1/observations")] == [["0"], ["4"]]


def test_api_keeps_at_most_max_per_species_observations_with_a_licensed_photo(api, tmp_path):
    client = inat_client.InatClient(f"{api.url}/v1", tmp_path, inat_client.RateLimiter())
    selected = inat_api.select_observations(client, api_config(api, max_per_species=2))
    assert [o["id"] for o in selected] == [1, 2, 4, 6]


def test_rate_limiter_schedules_the_61st_request_after_60_seconds():
    now = [0.0]
    limiter = inat_client.RateLimiter(60, 60.0, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    times = [limiter.wait() for _ in range(61)]
    assert times[:60] == [0.0] * 60 and times[60] == 60.0


def test_api_photos_table_is_a_valid_manifest_with_medium_photos(api, tmp_path):
    image_root = tmp_path / "images"
    table = inat_api.inat_api_photos(api_config(api), image_root, tmp_path / "cache", progress=False)
    manifest = validate_manifest(table, image_root)
    assert manifest["image_id"].tolist() == ["1001", "1002", "1003", "1004", "1006"]
    assert {p for p, _, _ in api.requested("/photos/")} == {f"/photos/{i}/medium.jpg" for i in manifest["image_id"]}
    assert manifest.loc[1, "coord_uncertainty_m"] == inat_api.OBSCURED_UNCERTAINTY_M and table.loc[1, "obscured"]
    # The user id, which stays when the observer renames their login.
    assert manifest.loc[0, ["observation_id", "observer_id", "license"]].tolist() == ["1", "501", "cc-by"]
    assert table.loc[0, "observer_login"] == "user1"
    assert manifest.loc[3, ["species", "genus", "family", "order", "class", "phylum", "kingdom"]].tolist() == [
        "Eschscholzia californica",
        "Eschscholzia",
        "Papaveraceae",
        "Ranunculales",
        "Magnoliopsida",
        "Tracheophyta",
        "Plantae",
    ]


def test_api_photo_deleted_since_listing_is_skipped(api, tmp_path):
    del api.files["/photos/1003/medium.jpg"]
    table = inat_api.inat_api_photos(api_config(api), tmp_path / "images", tmp_path / "cache", progress=False)
    assert table["image_id"].tolist() == ["1001", "1002", "1004", "1006"]


def test_api_rerun_reads_the_cache_and_sends_no_request(api, tmp_path):
    first = inat_api.inat_api_photos(api_config(api), tmp_path / "first", tmp_path / "cache", progress=False)
    n_requests = len(api.requests)
    second = inat_api.inat_api_photos(api_config(api), tmp_path / "second", tmp_path / "cache", progress=False)
    assert len(api.requests) == n_requests
    pd.testing.assert_frame_equal(first, second)
    photo = second["path"][0]
    assert (tmp_path / "second" / photo).read_bytes() == (tmp_path / "first" / photo).read_bytes()


def api_requests(api: LocalServer) -> int:
    return len(api.requested("/v1/"))


def test_api_daily_request_cap_stops_saying_how_far_it_got_and_resumes_the_next_day(api, tmp_path):
    config = api_config(api, max_requests_per_day=1)  # the observations page, then the taxa request is one too many
    today = datetime(2026, 12, 1, 21, 30, tzinfo=UTC).timestamp()
    with pytest.raises(inat_client.DailyLimitReached) as stop:
        inat_api.inat_api_photos(config, tmp_path / "images", tmp_path / "cache", now=lambda: today, progress=False)
    message = str(stop.value)
    for said in (
        "1 API requests sent today (UTC day 2026-12-01",
        "looking up the taxonomy of 2 taxa, after all 5 observations were listed",
        "rerun after 00:00 UTC (in 2 h 30 min)",
        "raise dataset.inat_api.max_requests_per_day",
    ):
        assert said in message
    assert api_requests(api) == 1 and not api.requested("/photos/")

    # The count is kept in the cache folder: a rerun the same day sends nothing and stops again.
    with pytest.raises(inat_client.DailyLimitReached):
        inat_api.inat_api_photos(config, tmp_path / "images", tmp_path / "cache", now=lambda: today, progress=False)
    assert api_requests(api) == 1

    tomorrow = today + 3 * 3600
    table = inat_api.inat_api_photos(
        config, tmp_path / "images", tmp_path / "cache", now=lambda: tomorrow, progress=False
    )
    assert len(table) == 5 and api_requests(api) == 2  # the listing came from the cache, only the taxa were asked
    usage = json.loads((tmp_path / "cache" / "usage.json").read_text())
    assert usage["day"] == "2026-12-02" and usage["api_requests"] == 1


def test_api_media_budget_stops_the_photo_downloads_and_persists_the_bytes(api, tmp_path):
    first_two = sum(len(api.files[f"/photos/{i}/medium.jpg"]) for i in (1001, 1002))
    config = api_config(api, max_media_gb_per_day=(first_two - 0.5) / inat_client.GB)  # passed by the second photo
    with pytest.raises(inat_client.DailyLimitReached) as stop:
        inat_api.inat_api_photos(config, tmp_path / "images", tmp_path / "cache", progress=False)
    assert "downloading photos, with 2 of 5 in place" in str(stop.value)
    assert "raise dataset.inat_api.max_media_gb_per_day" in str(stop.value)
    assert len(api.requested("/photos/")) == 2
    assert json.loads((tmp_path / "cache" / "usage.json").read_text())["media_bytes"] == first_two


@pytest.mark.parametrize("days_later, asked_again", [(29, False), (31, True)])
def test_api_cached_answers_older_than_the_max_age_are_fetched_again(api, tmp_path, days_later, asked_again):
    config = api_config(api, cache_max_age_days=30)
    inat_api.inat_api_photos(config, tmp_path / "first", tmp_path / "cache", progress=False)
    n_requests = api_requests(api)
    later = time.time() + days_later * 86_400
    table = inat_api.inat_api_photos(config, tmp_path / "second", tmp_path / "cache", now=lambda: later, progress=False)
    assert api_requests(api) == (2 * n_requests if asked_again else n_requests) and len(table) == 5
    assert len(api.requested("/photos/")) == 5  # photos are never fetched again


# --- csv ------------------------------------------------------------------------------------------------------


def write_csv(folder: Path, text: str, images: tuple[str, ...] = ("a.jpg", "b.jpg")) -> Path:
    for name in images:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(jpeg_bytes())
    path = folder / "photos.csv"
    path.write_text(text)
    return path


def csv_config(path: Path, **overrides) -> dict:
    return {**defaults("csv"), "path": str(path), **overrides}


def test_csv_missing_required_columns_are_named(tmp_path):
    path = write_csv(tmp_path, "path,latitude,lon\na.jpg,37.1,-122.0\n")
    with pytest.raises(csv_source.CsvSourceError, match=r"missing required column\(s\) 'lat'"):
        csv_source.csv_photos(csv_config(path), tmp_path / "images", progress=False)


def test_csv_bad_coordinates_name_row_and_column(tmp_path):
    path = write_csv(tmp_path, "path,lat,lon\na.jpg,north,-122\nb.jpg,-122.4,37.8\na.jpg,37,200\nb.jpg,,-122\n")
    with pytest.raises(csv_source.CsvSourceError) as error:
        csv_source.csv_photos(csv_config(path), tmp_path / "images", progress=False)
    message = str(error.value)
    assert "row 2, column 'lat': 'north' is not a number" in message
    assert "row 3, column 'lat': -122.4 is outside [-90, 90]; lat and lon look swapped (lon is 37.8)" in message
    assert "row 4, column 'lon': 200 is outside [-180, 180]" in message
    assert "row 5, column 'lat': blank while lon is given" in message


def test_csv_missing_image_file_names_row_and_column(tmp_path):
    path = write_csv(tmp_path, "path,lat,lon\na.jpg,37.1,-122.0\nsub/missing.jpg,37.2,-122.0\n")
    with pytest.raises(csv_source.CsvSourceError, match=r"row 3, column 'path': no file at .*sub/missing.jpg"):
        csv_source.csv_photos(csv_config(path), tmp_path / "images", progress=False)


@pytest.mark.parametrize("mode", ["hardlink", "symlink", "copy"])
def test_csv_images_are_placed_unchanged_and_the_table_is_a_valid_manifest(tmp_path, mode):
    text = "path,lat,lon,species,genus\nplot1/a.jpg,37.1,-122.0,Quercus agrifolia,Quercus\nplot2/b.jpg,,,,\n"
    path = write_csv(tmp_path / "survey", text, images=("plot1/a.jpg", "plot2/b.jpg"))
    image_root = tmp_path / "images"
    table = csv_source.csv_photos(csv_config(path, mode=mode, license="cc-by"), image_root, progress=False)
    manifest = validate_manifest(table, image_root)
    assert manifest["path"].tolist() == manifest["image_id"].tolist() == ["plot1/a.jpg", "plot2/b.jpg"]
    assert manifest["has_coords"].tolist() == [True, False] and manifest["license"].tolist() == ["cc-by"] * 2
    placed = image_root / "plot1" / "a.jpg"
    assert placed.read_bytes() == (tmp_path / "survey" / "plot1" / "a.jpg").read_bytes()
    assert placed.is_symlink() == (mode == "symlink")


def test_source_cli_writes_the_photo_table_or_reports_the_error(tmp_path, capsys):
    path = write_csv(tmp_path, "path,lat,lon\na.jpg,37.1,-122.0\nb.jpg,37.2,-122.1\n")
    source, image_root = tmp_path / "source" / "photos.parquet", tmp_path / "images"
    argv = ["--config-json", json.dumps(csv_config(path)), "--source", str(source), "--image-root", str(image_root)]
    assert csv_source.main(argv) == 0
    assert list(pd.read_parquet(source).columns) == list(MANIFEST_COLUMNS)
    validate_manifest(pd.read_parquet(source), image_root)

    bad = write_csv(tmp_path / "bad", "path,lat,lon\na.jpg,95,-122.0\n")
    argv[1] = json.dumps(csv_config(bad))
    assert csv_source.main(argv) == 1
    assert "row 2, column 'lat': 95 is outside [-90, 90]" in capsys.readouterr().err
