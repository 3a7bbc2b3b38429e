"""Collections in the forms ecologists have: an iNaturalist export, a Darwin Core Archive (both served by the local
server) and the refusals every source shares (outside paths, non-images, oversize); a folder of photos is in
test_sources_folder.py, both through the workflow in test_sources_workflow.py."""

from __future__ import annotations

import csv
import io
import json
import logging
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sources_fixtures import LocalServer, defaults, photo_bytes

from geocontrast.data import download, dwca, inat_export
from geocontrast.data.manifest import validate_manifest

# --- an iNaturalist export ---------------------------------------------------------------------------------------

EXPORT_COLUMNS = [
    "id",
    "observed_on",
    "user_id",
    "user_login",
    "user_name",
    "quality_grade",
    "license",
    "image_url",
    "latitude",
    "longitude",
    "positional_accuracy",
    "public_positional_accuracy",
    "geoprivacy",
    "taxon_geoprivacy",
    "coordinates_obscured",
    "scientific_name",
    "taxon_id",
    "taxon_kingdom_name",
    "taxon_phylum_name",
    "taxon_class_name",
    "taxon_order_name",
    "taxon_family_name",
    "taxon_genus_name",
    "taxon_species_name",
]
OAK = ["Plantae", "Tracheophyta", "Magnoliopsida", "Fagales", "Fagaceae", "Quercus", "Quercus agrifolia"]
POPPY = ["Plantae", "Tracheophyta", "Magnoliopsida", "Ranunculales", "Papaveraceae", "Eschscholzia"]


def export_row(obs_id: int, url: str, **changes) -> dict:
    """A row as iNaturalist's export writes it (research grade, CC BY-NC, an oak at a public point)."""
    row = dict(
        zip(
            EXPORT_COLUMNS,
            [
                str(obs_id),
                "2021-05-0" + str(1 + obs_id % 9),
                str(500 + obs_id),
                f"user{obs_id}",
                "",
                "research",
                "CC-BY-NC",
                url,
                f"{37.5 + obs_id / 100:.4f}",
                "-122.3",
                "12",
                "12",
                "",
                "",
                "false",
                "Quercus agrifolia",
                "49011",
                *OAK,
            ],
        )
    )
    row.update(changes)
    return row


def write_table(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def serve_photo(server: LocalServer, photo_id: int, seed: int | None = None) -> str:
    """Serves a photo as iNaturalist's bucket does; returns its URL (the export's medium size)."""
    server.files[f"/photos/{photo_id}/medium.jpg"] = photo_bytes(photo_id if seed is None else seed)
    return f"{server.url}/photos/{photo_id}/medium.jpg"


def export_config(path: Path, **overrides) -> dict:
    return {**defaults("inat_export"), "path": str(path), **overrides}


def test_export_rows_become_a_valid_manifest_with_photos_fetched_from_the_server(server, tmp_path):
    rows = [export_row(i, serve_photo(server, 7000 + i)) for i in range(1, 4)]
    rows[1].update(coordinates_obscured="true", public_positional_accuracy="")  # an obscured oak
    rows[2].update(geoprivacy="private", latitude="", longitude="", scientific_name="Eschscholzia californica maritima")
    rows[2].update(zip(EXPORT_COLUMNS[17:], [*POPPY, "Eschscholzia californica"]))
    path = write_table(tmp_path / "observations-1.csv", rows)
    image_root = tmp_path / "images"
    table = inat_export.inat_export_photos(export_config(path), image_root, tmp_path / "cache", progress=False)
    manifest = validate_manifest(table, image_root)
    assert manifest["image_id"].tolist() == ["7001", "7002", "7003"]
    assert manifest["path"].tolist() == ["7001.jpg", "7002.jpg", "7003.jpg"]
    assert manifest["observation_id"].tolist() == ["1", "2", "3"]
    assert manifest["observer_id"].tolist() == ["501", "502", "503"]
    assert manifest.loc[1, "coord_uncertainty_m"] == 28_000.0 and table.loc[1, "obscured"]
    assert manifest.loc[0, "coord_uncertainty_m"] == 12.0
    assert manifest["has_coords"].tolist() == [True, True, False]  # the private one is kept without coordinates
    assert manifest.loc[2, ["species", "genus", "family"]].tolist() == [
        "Eschscholzia californica",
        "Eschscholzia",
        "Papaveraceae",
    ]
    assert manifest["taxon_id"].tolist()[:2] == ["49011"] * 2 and pd.isna(manifest.loc[2, "taxon_id"])  # subspecies
    assert manifest["license"].tolist() == ["cc-by-nc"] * 3
    assert manifest.loc[0, "attribution"] == "(c) user1, some rights reserved (CC BY-NC)"
    assert manifest["observed_on"].dt.strftime("%Y-%m-%d").tolist() == ["2021-05-02", "2021-05-03", "2021-05-04"]
    assert (image_root / "7001.jpg").read_bytes() == server.files["/photos/7001/medium.jpg"]


def test_zipped_export_is_read_without_extracting_and_rerun_downloads_nothing(server, tmp_path):
    rows = [export_row(i, serve_photo(server, 7000 + i)) for i in range(1, 3)]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=EXPORT_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    path = tmp_path / "observations-1.csv.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("observations-1.csv", text.getvalue())
    config = export_config(path)
    first = inat_export.inat_export_photos(config, tmp_path / "a", tmp_path / "cache", progress=False)
    n_requests = len(server.requests)
    second = inat_export.inat_export_photos(config, tmp_path / "b", tmp_path / "cache", progress=False)
    assert len(first) == 2 and len(server.requests) == n_requests
    pd.testing.assert_frame_equal(first, second)


def test_export_keeps_research_grade_and_accepted_licences_by_default(server, tmp_path, caplog):
    rows = [export_row(i, serve_photo(server, 7000 + i)) for i in range(1, 6)]
    rows[1]["quality_grade"] = "needs_id"
    rows[2]["license"] = ""  # all rights reserved
    rows[3]["image_url"] = ""  # a sound-only observation
    path = write_table(tmp_path / "observations.csv", rows)
    with caplog.at_level(logging.INFO):
        table = inat_export.inat_export_photos(export_config(path), tmp_path / "i", tmp_path / "c", progress=False)
    assert table["observation_id"].tolist() == ["1", "5"]
    assert "5 rows; left out: 1 not research grade, 1 without a photo, 1 under another licence" in caplog.text
    anyone = inat_export.inat_export_photos(
        export_config(path, quality_grade=None), tmp_path / "j", tmp_path / "c", progress=False
    )
    assert anyone["observation_id"].tolist() == ["1", "2", "5"]


def test_export_bad_cells_are_named_with_file_row_and_column(tmp_path):
    rows = [export_row(i, f"https://example.org/photos/{i}/medium.jpg") for i in range(1, 6)]
    rows[0]["latitude"] = "north"
    rows[1]["longitude"] = ""
    rows[2]["id"] = "1"
    rows[3].update(image_url="file:///etc/passwd", observed_on="May 5th")
    rows[4].update(latitude="-122.3", longitude="37.5")
    path = write_table(tmp_path / "observations.csv", rows)
    with pytest.raises(inat_export.ExportError) as error:
        inat_export.inat_export_photos(export_config(path), tmp_path / "i", tmp_path / "c", progress=False)
    message = str(error.value)
    assert message.startswith(f"{path}: 6 problem(s):")
    for said in (
        "row 2, column 'latitude': 'north' is not a number",
        "row 3, column 'longitude': blank while latitude is given; give both or neither",
        "row 4, column 'id': '1' is already in row 2",
        "row 5, column 'image_url': 'file:///etc/passwd' is not an http(s) URL",
        "row 5, column 'observed_on': 'May 5th' is not a date (YYYY-MM-DD)",
        "row 6, column 'latitude': -122.3 is outside [-90, 90]",
    ):
        assert said in message


def test_a_response_that_is_not_an_image_or_too_large_is_refused_and_named(server, tmp_path, caplog):
    rows = [export_row(i, serve_photo(server, 7000 + i)) for i in range(1, 4)]
    server.files["/photos/7002/medium.jpg"] = b"<html>Service unavailable</html>"
    server.files["/photos/7003/medium.jpg"] = photo_bytes(3, size=(1200, 1000), quality=100)
    path = write_table(tmp_path / "observations.csv", rows)
    config = export_config(path, max_photo_mb=len(server.files["/photos/7003/medium.jpg"]) / 1e6 - 0.001)
    with caplog.at_level(logging.WARNING):
        table = inat_export.inat_export_photos(config, tmp_path / "images", tmp_path / "cache", progress=False)
    assert table["image_id"].tolist() == ["7001"]
    assert f"refused 7002.jpg: {server.url}/photos/7002/medium.jpg: not an image" in caplog.text
    assert f"refused 7003.jpg: {server.url}/photos/7003/medium.jpg: " in caplog.text and "bytes" in caplog.text
    assert sorted(p.name for p in (tmp_path / "cache").rglob("*.jpg*")) == ["7001.jpg"]  # nothing refused kept


@pytest.mark.parametrize("name", ["../outside.jpg", "/etc/outside.jpg", "a/../../outside.jpg"])
def test_a_name_that_would_land_outside_the_image_folder_is_refused(tmp_path, name):
    with pytest.raises(download.SourceError, match="refused, it would land outside"):
        download.contained(tmp_path / "images", name)


def test_ids_and_url_suffixes_make_file_names_inside_the_folder():
    assert download.safe_file_name("123") == "123"
    unsafe = download.safe_file_name("../../etc/passwd")
    assert "/" not in unsafe and not unsafe.startswith(".") and unsafe != download.safe_file_name("../../etc/passwd_")
    assert download.image_suffix("https://x.org/p/1/medium.JPG?123") == ".jpg"
    assert download.image_suffix("https://x.org/p/../../evil.sh") == ".jpg"


# --- a Darwin Core Archive ---------------------------------------------------------------------------------------

META = """<?xml version="1.0" encoding="UTF-8"?>
<archive xmlns="http://rs.tdwg.org/dwc/text/" metadata="eml.xml">
  <core encoding="UTF-8" fieldsTerminatedBy="\\t" linesTerminatedBy="\\n" fieldsEnclosedBy="" ignoreHeaderLines="1"
        rowType="http://rs.tdwg.org/dwc/terms/Occurrence">
    <files><location>{core}</location></files>
    <id index="0" />
    <field index="1" term="http://rs.tdwg.org/dwc/terms/decimalLatitude"/>
    <field index="2" term="http://rs.tdwg.org/dwc/terms/decimalLongitude"/>
    <field index="3" term="http://rs.tdwg.org/dwc/terms/coordinateUncertaintyInMeters"/>
    <field index="4" term="http://rs.tdwg.org/dwc/terms/eventDate"/>
    <field index="5" term="http://rs.tdwg.org/dwc/terms/recordedBy"/>
    <field index="6" term="http://rs.tdwg.org/dwc/terms/kingdom"/>
    <field index="7" term="http://rs.tdwg.org/dwc/terms/family"/>
    <field index="8" term="http://rs.tdwg.org/dwc/terms/genus"/>
    <field index="9" term="http://rs.tdwg.org/dwc/terms/specificEpithet"/>
    <field index="10" term="http://rs.gbif.org/terms/1.0/speciesKey"/>
    <field term="http://purl.org/dc/terms/license" default="http://creativecommons.org/licenses/by/4.0/legalcode"/>
  </core>
  <extension encoding="UTF-8" fieldsTerminatedBy="," linesTerminatedBy="\\n" fieldsEnclosedBy="&quot;"
             ignoreHeaderLines="1" rowType="http://rs.gbif.org/terms/1.0/Multimedia">
    <files><location>multimedia.txt</location></files>
    <coreid index="0" />
    <field index="1" term="http://purl.org/dc/terms/type"/>
    <field index="2" term="http://purl.org/dc/terms/format"/>
    <field index="3" term="http://purl.org/dc/terms/identifier"/>
    <field index="4" term="http://purl.org/dc/terms/license"/>
    <field index="5" term="http://purl.org/dc/terms/rightsHolder"/>
  </extension>
</archive>
"""
CORE_HEADER = "gbifID\tlat\tlon\tunc\tdate\tby\tkingdom\tfamily\tgenus\tepithet\tspeciesKey"


def occurrence_line(core_id: str, lat="37.5", lon="-122.3", date="2021-05-01T10:00:00", genus="Quercus") -> str:
    epithet = "agrifolia" if genus == "Quercus" else "californica"
    family = "Fagaceae" if genus == "Quercus" else "Papaveraceae"
    return "\t".join([core_id, lat, lon, "30", date, f"observer {core_id}", "Plantae", family, genus, epithet, "77"])


def media_line(core_id: str, url: str, kind="StillImage", licence="CC_BY_NC_4_0", holder="someone") -> str:
    return ",".join([core_id, kind, "image/jpeg", url, licence, f'"{holder}, and co"'])


def write_archive(target: Path, core_lines: list[str], media_lines: list[str], zipped=True, core="occurrence.txt"):
    files = {
        "meta.xml": META.format(core=core),
        core: "\n".join([CORE_HEADER, *core_lines]) + "\n",
        "multimedia.txt": "\n".join(["gbifID,type,format,identifier,license,rightsHolder", *media_lines]) + "\n",
    }
    if zipped:
        with zipfile.ZipFile(target, "w") as archive:
            for name, text in files.items():
                archive.writestr(name, text)
    else:
        for name, text in files.items():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_text(text)
    return target


def dwca_config(path: Path, **overrides) -> dict:
    return {**defaults("dwca"), "path": str(path), **overrides}


@pytest.mark.parametrize("zipped", [True, False])
def test_archive_occurrences_and_images_are_joined_on_the_core_id(server, tmp_path, zipped):
    core = [occurrence_line("11"), occurrence_line("12", lat="", lon="", date="2021-06-01/2021-06-03", genus="Esch")]
    media = [
        media_line("12", serve_photo(server, 12)),
        media_line("11", serve_photo(server, 11), licence="http://creativecommons.org/licenses/by-nc/4.0/"),
        media_line("11", serve_photo(server, 111)),  # a second image of 11: beyond max_photos_per_observation
        media_line("12", f"{server.url}/sound.mp3", kind="Sound"),
    ]
    target = tmp_path / ("archive.zip" if zipped else "archive")
    write_archive(target, core, media, zipped=zipped)
    image_root = tmp_path / "images"
    table = dwca.dwca_photos(dwca_config(target), image_root, tmp_path / "cache", progress=False)
    manifest = validate_manifest(table, image_root)
    assert manifest["image_id"].tolist() == ["12-1", "11-1"] and manifest["path"].tolist() == ["12-1.jpg", "11-1.jpg"]
    assert manifest["observation_id"].tolist() == ["12", "11"]
    assert manifest["has_coords"].tolist() == [False, True] and manifest.loc[1, "coord_uncertainty_m"] == 30.0
    assert manifest["observed_on"].dt.strftime("%Y-%m-%d").tolist() == ["2021-06-01", "2021-05-01"]
    assert manifest["observer_id"].tolist() == ["observer 12", "observer 11"]
    assert manifest.loc[1, ["species", "genus", "family", "kingdom"]].tolist() == [
        "Quercus agrifolia",
        "Quercus",
        "Fagaceae",
        "Plantae",
    ]
    assert manifest["license"].tolist() == ["cc-by-nc", "cc-by-nc"] and manifest["taxon_id"].tolist() == ["77", "77"]
    assert manifest["attribution"].tolist() == ["someone, and co"] * 2 and table["rights_holder"].notna().all()
    assert (image_root / "11-1.jpg").read_bytes() == server.files["/photos/11/medium.jpg"]


def test_archive_bad_rows_are_named_with_file_row_and_column(tmp_path):
    core = [occurrence_line("11", lat="95"), occurrence_line("11"), occurrence_line("13", date="yesterday")]
    media = [media_line("11", "https://x.org/1.jpg"), media_line("99", "https://x.org/2.jpg")]
    media.append(media_line("13", "ftp://x.org/3.jpg"))
    target = write_archive(tmp_path / "archive.zip", core, media)
    with pytest.raises(dwca.ArchiveError) as error:
        dwca.dwca_photos(dwca_config(target), tmp_path / "images", tmp_path / "cache", progress=False)
    message = str(error.value)
    assert f"{target}:occurrence.txt: 3 problem(s):" in message
    assert "row 2, column 'decimalLatitude': 95 is outside [-90, 90]" in message
    assert "row 3, column 'id': '11' is already in row 2" in message
    assert "row 4, column 'eventDate': 'yesterday' is not a date (YYYY-MM-DD)" in message
    # The multimedia file's problems are listed once the core's are fixed.
    target = write_archive(tmp_path / "fixed.zip", [occurrence_line("11"), occurrence_line("13")], media)
    with pytest.raises(dwca.ArchiveError) as error:
        dwca.dwca_photos(dwca_config(target), tmp_path / "images", tmp_path / "cache", progress=False)
    assert f"{target}:multimedia.txt: 2 problem(s):" in str(error.value)
    assert "row 3, column 'coreid': '99' is no occurrence of the core" in str(error.value)
    assert "row 4, column 'identifier': 'ftp://x.org/3.jpg' is not an http(s) URL" in str(error.value)


def test_archive_file_outside_the_archive_is_refused(tmp_path):
    (tmp_path / "secret.txt").write_text("not yours")
    target = write_archive(tmp_path / "archive", [occurrence_line("1")], [], zipped=False, core="../secret.txt")
    with pytest.raises(dwca.ArchiveError, match=r"meta.xml names '../secret.txt', outside the archive: refused"):
        dwca.dwca_photos(dwca_config(target), tmp_path / "images", tmp_path / "cache", progress=False)


def test_archive_id_with_a_path_in_it_lands_inside_the_image_folder(server, tmp_path):
    core_id = "../../escape"
    target = write_archive(
        tmp_path / "a.zip", [occurrence_line(core_id)], [media_line(core_id, serve_photo(server, 5) + "/../x.jpg")]
    )
    server.files["/photos/5/x.jpg"] = server.files["/photos/5/medium.jpg"]
    table = dwca.dwca_photos(dwca_config(target), tmp_path / "images", tmp_path / "cache", progress=False)
    placed = [p for p in (tmp_path / "images").rglob("*") if p.is_file()]
    assert len(placed) == 1 and placed[0].parent == tmp_path / "images" and not (tmp_path / "escape-1.jpg").exists()
    assert table["path"].tolist() == [placed[0].name]


@pytest.mark.parametrize(
    "text, code",
    [
        ("http://creativecommons.org/licenses/by-nc/4.0/legalcode", "cc-by-nc"),
        ("CC_BY_4_0", "cc-by"),
        ("CC BY-SA 4.0", "cc-by-sa"),
        ("http://creativecommons.org/publicdomain/zero/1.0/", "cc0"),
        ("CC0_1_0", "cc0"),
        ("All rights reserved", None),
        ("", None),
    ],
)
def test_archive_licences_are_read_as_codes(text, code):
    assert dwca.licence_code(text) == code


def test_source_clis_write_the_photo_table(server, tmp_path):
    rows = [export_row(i, serve_photo(server, 7000 + i)) for i in range(1, 3)]
    path = write_table(tmp_path / "observations.csv", rows)
    source = tmp_path / "source" / "photos.parquet"
    argv = ["--source", str(source), "--image-root", str(tmp_path / "images"), "--cache-dir", str(tmp_path / "c")]
    assert inat_export.main(["--config-json", json.dumps(export_config(path)), *argv]) == 0
    assert len(pd.read_parquet(source)) == 2
    np.testing.assert_array_equal(pd.read_parquet(source)["image_id"], ["7001", "7002"])
