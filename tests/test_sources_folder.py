"""A folder of geotagged photos as a collection: species from folder names, coordinates and times from EXIF (the sign
from the hemisphere references), a sidecar table that wins over EXIF and names its bad cells."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from sources_fixtures import defaults, photo_bytes

from geocontrast.data import folder
from geocontrast.data.manifest import validate_manifest


def dms(value: float) -> tuple:
    """Degrees, minutes, seconds of |value| as EXIF rationals."""
    value = abs(value)
    degrees, minutes = int(value), int(value * 60) % 60
    return (degrees, minutes, round((value * 3600) % 60, 4))


def write_geotagged(path: Path, seed: int, lat=None, lon=None, taken=None, error_m=None) -> Path:
    """A JPEG with the EXIF a phone writes: GPS with hemisphere references, and the time it was taken."""
    image = Image.open(io.BytesIO(photo_bytes(seed)))
    exif = Image.Exif()
    if lat is not None:
        gps = {1: "N" if lat >= 0 else "S", 2: dms(lat), 3: "E" if lon >= 0 else "W", 4: dms(lon)}
        if error_m is not None:
            gps[31] = error_m
        exif[folder.GPS_IFD] = gps
    if taken is not None:
        exif[folder.EXIF_IFD] = {folder.DATE_TIME_ORIGINAL: taken}
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, exif=exif)
    return path


def folder_config(path: Path, **overrides) -> dict:
    return {**defaults("folder"), "path": str(path), **overrides}


@pytest.mark.parametrize(
    "lat, lon", [(37.7749, -122.4194), (-33.8688, 151.2093), (51.5, -0.1276), (-22.9068, -43.1729)]
)
def test_exif_coordinates_take_their_sign_from_the_hemisphere_references(tmp_path, lat, lon):
    path = write_geotagged(tmp_path / "p.jpg", 1, lat, lon, taken="2023:05:01 14:03:22", error_m=4.5)
    found = folder.photo_exif(path)
    assert found["lat"] == pytest.approx(lat, abs=1e-5) and found["lon"] == pytest.approx(lon, abs=1e-5)
    assert found["observed_on"] == "2023-05-01" and found["coord_uncertainty_m"] == 4.5


def test_folder_species_from_folder_names_and_photos_without_gps_kept(tmp_path, caplog):
    photos = tmp_path / "photos"
    write_geotagged(photos / "Quercus_agrifolia" / "a.jpg", 1, 37.1, -122.0, taken="2023:05:01 14:03:22")
    write_geotagged(photos / "Quercus_agrifolia" / "b.jpg", 2)  # no EXIF at all
    write_geotagged(photos / "Eschscholzia californica" / "c.jpg", 3, -33.9, 151.2)
    write_geotagged(photos / "loose.jpg", 4, taken="2022:01:02 08:00:00")
    (photos / ".hidden.jpg").write_bytes(photo_bytes(5))
    (photos / "notes.txt").write_text("field notes")
    image_root = tmp_path / "images"
    with caplog.at_level(logging.INFO):
        table = folder.folder_photos(folder_config(photos), image_root, progress=False)
    manifest = validate_manifest(table, image_root)
    assert manifest["path"].tolist() == [
        "Eschscholzia californica/c.jpg",
        "Quercus_agrifolia/a.jpg",
        "Quercus_agrifolia/b.jpg",
        "loose.jpg",
    ]
    assert manifest["species"].tolist()[:3] == ["Eschscholzia californica", "Quercus agrifolia", "Quercus agrifolia"]
    assert pd.isna(manifest.loc[3, "species"]) and manifest.loc[1, "genus"] == "Quercus"
    assert manifest["has_coords"].tolist() == [True, True, False, False]
    assert manifest.loc[0, "lat"] == pytest.approx(-33.9, abs=1e-5)
    assert "4 photos: 2 with GPS coordinates, 2 with a date, 3 with a species" in caplog.text
    assert (image_root / "loose.jpg").read_bytes() == (photos / "loose.jpg").read_bytes()  # never re-encoded


def test_folder_sidecar_wins_over_exif_and_names_its_bad_cells(tmp_path):
    photos = tmp_path / "photos"
    write_geotagged(photos / "a.jpg", 1, 37.1, -122.0)
    write_geotagged(photos / "b.jpg", 2)
    sidecar = tmp_path / "sidecar.csv"
    sidecar.write_text("path,species,lat,lon,observer_id\na.jpg,Quercus lobata,,,me\nb.jpg,,36.5,-121.5,\n")
    table = folder.folder_photos(folder_config(photos, sidecar=str(sidecar), license="cc-by"), tmp_path / "i", False)
    assert table.loc[0, "species"] == "Quercus lobata" and pd.isna(table.loc[1, "species"])
    assert table.loc[0, "lat"] == pytest.approx(37.1) and table.loc[1, "lat"] == 36.5
    assert table["observer_id"].tolist()[0] == "me" and table["license"].tolist() == ["cc-by", "cc-by"]

    sidecar.write_text("path,lat,lon\na.jpg,91,-122\nmissing.jpg,,\n")
    with pytest.raises(folder.FolderSourceError) as error:
        folder.folder_photos(folder_config(photos, sidecar=str(sidecar)), tmp_path / "j", False)
    assert "row 2, column 'lat': 91 is outside [-90, 90]" in str(error.value)
    assert "row 3, column 'path': 'missing.jpg' is no photo below" in str(error.value)
