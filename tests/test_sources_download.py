"""Downloads from a local HTTP server (retries, Retry-After, resume, md5 checks) and the iNat2021 archive source."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest
from sources_fixtures import corrupted, defaults, jpeg_bytes

from geocontrast.data import inat2021
from geocontrast.data.download import ChecksumError, download, get_json, retry_after_seconds
from geocontrast.data.manifest import validate_manifest


def tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


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
