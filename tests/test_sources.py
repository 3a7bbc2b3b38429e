"""Real-data sources: every download goes to a local HTTP server serving small files in the real formats."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
from conftest import load_config
from PIL import Image

from geocontrast.data import csv_source, inat2021, inat_api
from geocontrast.data.download import ChecksumError, download, get_json, retry_after_seconds
from geocontrast.data.manifest import MANIFEST_COLUMNS, validate_manifest

# --- a local server -------------------------------------------------------------------------------------------


def corrupted(data: bytes) -> bytes:
    """``data`` with its middle byte inverted: what the server's ``corrupt`` option serves."""
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


class LocalServer(ThreadingHTTPServer):
    """Serves ``files`` (with Range), JSON ``routes`` (path prefix -> answer(path, query)) and scripted failures.

    ``failures[path]``: answers given before the file, each a status or ``(status, headers)``; ``truncate_once``:
    paths whose next answer promises the whole rest of the file, sends half of it and closes the connection;
    ``corrupt[path]``: how many of the next whole-file answers (no Range) have one byte altered. ``requests`` records
    (path, query, Range) of every request, ``sent[path]`` the body bytes written in each file answer.
    """

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.routes: dict = {}
        self.failures: dict[str, list[int | tuple[int, dict[str, str]]]] = defaultdict(list)
        self.truncate_once: set[str] = set()
        self.corrupt: dict[str, int] = defaultdict(int)
        self.requests: list[tuple[str, dict, str | None]] = []
        self.sent: dict[str, list[int]] = defaultdict(list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def requested(self, prefix: str) -> list[tuple[str, dict, str | None]]:
        return [r for r in self.requests if r[0].startswith(prefix)]


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        server: LocalServer = self.server
        url = urlsplit(self.path)
        byte_range = self.headers.get("Range")
        server.requests.append((url.path, parse_qs(url.query), byte_range))
        if server.failures[url.path]:
            failure = server.failures[url.path].pop(0)
            status, headers = failure if isinstance(failure, tuple) else (failure, {})
            self._send(status, b"", headers)
            return
        for prefix, answer in server.routes.items():
            if url.path.startswith(prefix):
                self._send(200, json.dumps(answer(url.path, parse_qs(url.query))).encode())
                return
        body = server.files.get(url.path)
        if body is None:
            self.send_error(404)
            return
        start = int(re.fullmatch(r"bytes=(\d+)-", byte_range).group(1)) if byte_range else 0
        headers = {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"} if byte_range else {}
        if not byte_range and server.corrupt[url.path]:
            server.corrupt[url.path] -= 1
            body = corrupted(body)
        cut = None
        if url.path in server.truncate_once:
            server.truncate_once.discard(url.path)
            cut = (len(body) - start) // 2
        # Recorded before writing: the client may have read the whole answer before this handler returns.
        server.sent[url.path].append(len(body[start:][:cut]))
        self._send(206 if byte_range else 200, body[start:], headers, cut)

    def _send(self, status: int, body: bytes, headers: dict | None = None, cut: int | None = None):
        """Answer ``status`` promising all of ``body`` but writing only ``body[:cut]``."""
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body[:cut])
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    local = LocalServer()
    thread = threading.Thread(target=local.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield local
    local.shutdown()
    local.server_close()


def jpeg_bytes(colour=(40, 120, 60), size=(12, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def defaults(source: str) -> dict:
    """The schema's defaults of one dataset source section."""
    return load_config()["dataset"][source]


# --- download -------------------------------------------------------------------------------------------------

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB: an interrupted transfer keeps several chunks


def test_md5_mismatch_deletes_the_copy_and_downloads_the_file_again_from_scratch(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    server.corrupt["/data.bin"] = 1
    dest = download(f"{server.url}/data.bin", tmp_path / "data.bin", md5=md5(PAYLOAD), progress=False)
    assert md5(dest.read_bytes()) == md5(PAYLOAD)
    assert [byte_range for _, _, byte_range in server.requested("/data.bin")] == [None, None]  # two whole-file GETs
    assert not (tmp_path / "data.bin.partial").exists()


def test_md5_mismatch_twice_raises_naming_file_and_both_sums_and_leaves_no_partial(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    server.corrupt["/data.bin"] = 1_000
    dest = tmp_path / "data.bin"
    message = rf"data.bin: md5 {md5(corrupted(PAYLOAD))} differs from the published {md5(PAYLOAD)}"
    with pytest.raises(ChecksumError, match=message):
        download(f"{server.url}/data.bin", dest, md5=md5(PAYLOAD), progress=False)
    assert [byte_range for _, _, byte_range in server.requested("/data.bin")] == [None, None]
    assert not dest.exists() and not (tmp_path / "data.bin.partial").exists()


def test_interrupted_download_resumes_from_the_partial_with_a_range_request(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    server.truncate_once.add("/data.bin")
    partial = tmp_path / "data.bin.partial"
    partial_sizes = []  # the partial file's size when download() waits before retrying
    dest = download(
        f"{server.url}/data.bin",
        tmp_path / "data.bin",
        md5=md5(PAYLOAD),
        backoff_s=0,
        progress=False,
        sleep=lambda _: partial_sizes.append(partial.stat().st_size),
    )
    assert dest.read_bytes() == PAYLOAD
    [kept] = partial_sizes
    assert 0 < kept <= server.sent["/data.bin"][0] == len(PAYLOAD) // 2  # the interruption kept what arrived
    assert [byte_range for _, _, byte_range in server.requested("/data.bin")] == [None, f"bytes={kept}-"]
    assert server.sent["/data.bin"][1] == len(PAYLOAD) - kept  # only the remaining bytes came the second time


def test_download_retries_after_503_with_exponential_backoff(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    server.failures["/data.bin"] = [503, 503]
    waits = []
    dest = download(
        f"{server.url}/data.bin",
        tmp_path / "data.bin",
        md5=md5(PAYLOAD),
        backoff_s=1.5,
        sleep=waits.append,
        progress=False,
    )
    assert dest.read_bytes() == PAYLOAD and len(server.requested("/data.bin")) == 3
    assert waits == [1.5, 3.0]


def test_download_429_waits_the_retry_after_the_server_asks_for(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    server.failures["/data.bin"] = [(429, {"Retry-After": "2"})]
    waits = []
    dest = download(
        f"{server.url}/data.bin",
        tmp_path / "data.bin",
        md5=md5(PAYLOAD),
        backoff_s=0.5,
        sleep=waits.append,
        progress=False,
    )
    assert dest.read_bytes() == PAYLOAD and len(server.requested("/data.bin")) == 2
    assert waits == [2.0]  # the server's Retry-After, not the 0.5 s backoff


def test_json_request_429_waits_the_retry_after_the_server_asks_for(server):
    server.routes = {"/v1/observations": lambda path, query: {"results": [{"id": 1}]}}
    server.failures["/v1/observations"] = [(429, {"Retry-After": "2"})]
    waits = []
    answer = get_json(f"{server.url}/v1/observations", {"taxon_id": 47125}, backoff_s=0.5, sleep=waits.append)
    assert answer == {"results": [{"id": 1}]} and len(server.requested("/v1/observations")) == 2
    assert waits == [2.0]


def test_retry_after_as_an_http_date_waits_until_that_time(server):
    server.routes = {"/v1/observations": lambda path, query: {"results": []}}
    in_3_s = format_datetime(datetime.fromtimestamp(time.time() + 3.0, UTC), usegmt=True)  # whole seconds
    server.failures["/v1/observations"] = [(503, {"Retry-After": in_3_s})]
    waits = []
    get_json(f"{server.url}/v1/observations", backoff_s=0.5, sleep=waits.append)
    assert len(waits) == 1 and 1.0 < waits[0] <= 3.0  # the date, not the 0.5 s backoff


@pytest.mark.parametrize(
    "header, expected",
    [
        ("120", 120.0),
        ("Wed, 02 Dec 2026 00:02:00 GMT", 120.0),
        ("Tue, 01 Dec 2026 23:00:00 GMT", 0.0),  # already past: no wait
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_seconds_reads_seconds_and_http_dates(header, expected):
    midnight = datetime(2026, 12, 2, tzinfo=UTC).timestamp()
    assert retry_after_seconds(header, now=midnight) == expected


# --- inat2021 -------------------------------------------------------------------------------------------------

OAK_DIR = "00000_Plantae_Tracheophyta_Magnoliopsida_Fagales_Fagaceae_Quercus_agrifolia"
LIZARD_DIR = "00001_Animalia_Chordata_Reptilia_Squamata_Phrynosomatidae_Sceloporus_occidentalis"


def inat2021_dataset() -> dict:
    """A train_mini.json in the competition's format: 5 oak photos (1 in California with a sane uncertainty, 1 there
    with a negative one, 1 in Oregon with a huge one, 1 with null coordinates, 1 with lat and lon swapped) and 1
    lizard in California."""

    def image(image_id, folder, lat, lon, uncertainty):
        return {
            "id": image_id,
            "width": 12,
            "height": 8,
            "file_name": f"train_mini/{folder}/{image_id:04d}-uuid.jpg",
            "license": 1,
            "rights_holder": f"observer {image_id}",
            "date": "2019-06-01 10:00:00+00:00",
            "latitude": lat,
            "longitude": lon,
            "location_uncertainty": uncertainty,
        }

    return {
        "info": {"year": 2021, "version": "1", "description": "test", "contributor": "", "url": "", "date_created": ""},
        "images": [
            image(1, OAK_DIR, 37.8, -122.3, 10),
            image(2, OAK_DIR, 34.1, -118.3, -80),
            image(3, OAK_DIR, 44.0, -123.0, 106807033),
            image(4, OAK_DIR, None, None, None),
            image(5, LIZARD_DIR, 34.0, -118.2, 25),
            image(6, OAK_DIR, -122.3, 37.8, 10),
        ],
        "categories": [
            {
                "id": 0,
                "name": "Quercus agrifolia",
                "common_name": "Coast Live Oak",
                "supercategory": "Plants",
                "kingdom": "Plantae",
                "phylum": "Tracheophyta",
                "class": "Magnoliopsida",
                "order": "Fagales",
                "family": "Fagaceae",
                "genus": "Quercus",
                "specific_epithet": "agrifolia",
                "image_dir_name": OAK_DIR,
            },
            {
                "id": 1,
                "name": "Sceloporus occidentalis",
                "common_name": "Western Fence Lizard",
                "supercategory": "Reptiles",
                "kingdom": "Animalia",
                "phylum": "Chordata",
                "class": "Reptilia",
                "order": "Squamata",
                "family": "Phrynosomatidae",
                "genus": "Sceloporus",
                "specific_epithet": "occidentalis",
                "image_dir_name": LIZARD_DIR,
            },
        ],
        "annotations": [{"id": i, "image_id": i, "category_id": 1 if i == 5 else 0} for i in range(1, 7)],
        "licenses": [
            {
                "id": 1,
                "name": "Attribution-NonCommercial License",
                "url": "http://creativecommons.org/licenses/by-nc/4.0/",
            }
        ],
    }


@pytest.fixture
def inat2021_files(server, tmp_path) -> dict[str, bytes]:
    """train_mini.json.tar.gz and train_mini.tar.gz served under {server.url}/2021/; returns their bytes."""
    dataset = inat2021_dataset()
    annotations = tar_gz(tmp_path / "train_mini.json.tar.gz", {"train_mini.json": json.dumps(dataset).encode()})
    images = tar_gz(
        tmp_path / "train_mini.tar.gz",
        {image["file_name"]: jpeg_bytes((image["id"] * 40, 90, 60)) for image in dataset["images"]},
    )
    files = {path.name: path.read_bytes() for path in (annotations, images)}
    for name, data in files.items():
        server.files[f"/2021/{name}"] = data
    return files


def test_inat2021_taxon_and_bbox_are_applied_to_the_json():
    photos = inat2021.photo_table(inat2021_dataset())
    assert inat2021.select_photos(photos, "Plantae", [-124.5, 32.5, -114.0, 42.0])["image_id"].tolist() == ["1", "2"]
    assert inat2021.select_photos(photos, "quercus agrifolia", None)["image_id"].tolist() == ["1", "2", "3", "4", "6"]
    assert inat2021.select_photos(photos, "Reptiles", None)["image_id"].tolist() == ["5"]


def test_inat2021_impossible_location_uncertainty_and_coordinates_become_nan(caplog):
    with caplog.at_level("WARNING"):
        photos = inat2021.photo_table(inat2021_dataset())
    assert photos["coord_uncertainty_m"].isna().tolist() == [False, True, True, True, False, False]
    assert photos["lat"].isna().tolist() == photos["lon"].isna().tolist() == [False, False, False, True, False, True]
    assert "latitude/longitude: 1 impossible pairs" in caplog.text  # image 6; image 4's nulls are plainly missing


def test_inat2021_bbox_drops_and_counts_photos_without_usable_coordinates(caplog):
    photos = inat2021.photo_table(inat2021_dataset())
    with caplog.at_level("INFO"):
        inside = inat2021.select_photos(photos, "Quercus agrifolia", [-180.0, -90.0, 180.0, 90.0])
    assert inside["image_id"].tolist() == ["1", "2", "3"]
    assert "(2 without coordinates dropped)" in caplog.text


def test_inat2021_without_bbox_keeps_photos_without_coordinates_flagged_in_the_manifest(
    server, inat2021_files, tmp_path
):
    config = {**defaults("inat2021"), "base_url": f"{server.url}/2021", "taxon": "Quercus agrifolia", "bbox": None}
    checksums = {name: md5(data) for name, data in inat2021_files.items()}
    image_root = tmp_path / "images"
    table = inat2021.inat2021_photos(config, image_root, tmp_path / "cache", checksums=checksums, progress=False)
    manifest = validate_manifest(table, image_root)
    assert manifest["image_id"].tolist() == ["1", "2", "3", "4", "6"]
    assert manifest["has_coords"].tolist() == [True, True, True, False, False]
    assert manifest.loc[~manifest["has_coords"], ["lat", "lon"]].isna().all(axis=None)
    assert manifest["coord_uncertainty_m"].isna().tolist() == [False, True, True, True, False]


def test_inat2021_extracts_only_the_selected_photos_into_a_valid_table(server, inat2021_files, tmp_path):
    config = {**defaults("inat2021"), "base_url": f"{server.url}/2021"}
    checksums = {name: md5(data) for name, data in inat2021_files.items()}
    image_root = tmp_path / "images"
    table = inat2021.inat2021_photos(config, image_root, tmp_path / "cache", checksums=checksums, progress=False)

    extracted = sorted(p.relative_to(image_root).as_posix() for p in image_root.rglob("*") if p.is_file())
    assert extracted == sorted(table["path"]) == [f"train_mini/{OAK_DIR}/000{i}-uuid.jpg" for i in (1, 2)]
    manifest = validate_manifest(table, image_root)
    assert manifest["species"].tolist() == ["Quercus agrifolia"] * 2
    assert manifest["observation_id"].tolist() == manifest["image_id"].tolist() == ["1", "2"]
    assert manifest["license"].tolist() == ["cc-by-nc"] * 2
    assert manifest["attribution"][0] == "(c) observer 1, Attribution-NonCommercial License"


def test_inat2021_file_without_published_md5_is_downloaded_unchecked_and_logged(
    server, inat2021_files, tmp_path, caplog
):
    config = {**defaults("inat2021"), "base_url": f"{server.url}/2021"}
    with caplog.at_level("WARNING"):
        inat2021.inat2021_photos(config, tmp_path / "images", tmp_path / "cache", checksums={}, progress=False)
    assert "train_mini.tar.gz: no published md5, the download is not checked" in caplog.text


@pytest.mark.parametrize("name", ["../evil.jpg", "/abs.jpg"])
def test_archive_member_outside_the_image_folder_is_refused(tmp_path, name):
    archive = tar_gz(tmp_path / "images.tar.gz", {name: jpeg_bytes(), "train_mini/a.jpg": jpeg_bytes()})
    with pytest.raises(inat2021.UnsafeArchiveError, match=re.escape(repr(name))):
        inat2021.extract_members(archive, ["train_mini/a.jpg"], tmp_path / "root" / "images", progress=False)
    assert not (tmp_path / "root" / "evil.jpg").exists()


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
    client = inat_api.InatClient(f"{api.url}/v1", tmp_path, inat_api.RateLimiter())
    ids = [o["id"] for o in inat_api.iter_observations(client, {}, per_page=4)]
    assert ids == [1, 2, 3, 4, 5, 6]
    assert [q["id_above"] for _, q, _ in api.requested("/v1/observations")] == [["0"], ["4"]]


def test_api_keeps_at_most_max_per_species_observations_with_a_licensed_photo(api, tmp_path):
    client = inat_api.InatClient(f"{api.url}/v1", tmp_path, inat_api.RateLimiter())
    selected = inat_api.select_observations(client, api_config(api, max_per_species=2))
    assert [o["id"] for o in selected] == [1, 2, 4, 6]


def test_rate_limiter_schedules_the_61st_request_after_60_seconds():
    now = [0.0]
    limiter = inat_api.RateLimiter(60, 60.0, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
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
    with pytest.raises(inat_api.DailyLimitReached) as stop:
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
    with pytest.raises(inat_api.DailyLimitReached):
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
    config = api_config(api, max_media_gb_per_day=(first_two - 0.5) / inat_api.GB)  # passed by the second photo
    with pytest.raises(inat_api.DailyLimitReached) as stop:
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
