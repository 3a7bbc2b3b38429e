"""An iNaturalist export and a Darwin Core Archive of one served collection, each through the tiny workflow to
results.csv (the collections' files and photos written with the helpers of test_sources_collections)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sources_fixtures import LocalServer, photo_bytes
from test_sources_collections import EXPORT_COLUMNS, export_row, media_line, write_archive


def served_collection(server: LocalServer) -> pd.DataFrame:
    """120 photos of six species spread over California (tests/shapes.py), served as JPEGs by the local server, and
    as a 121st observation a half-size, re-encoded copy of photo 0: its url, photo and observation ids."""
    from shapes import collection, photo

    table = collection("partial_taxonomy")
    table = pd.concat([table, table.iloc[[0]]], ignore_index=True)
    rng = np.random.default_rng(1)
    names = sorted(set(table["species"]), key=list(table["species"]).index)
    urls = []
    for i, species in enumerate(table["species"]):
        if i == 0:
            data = photo_bytes(0, size=(320, 240), quality=90)
        elif i == len(table) - 1:
            data = resized_copy(server.files["/photos/9000/medium.jpg"], 0.5, 60)
        else:
            buffer = io.BytesIO()
            Image.fromarray(photo(rng, names.index(species))).save(buffer, format="JPEG", quality=90)
            data = buffer.getvalue()
        server.files[f"/photos/{9000 + i}/medium.jpg"] = data
        urls.append(f"{server.url}/photos/{9000 + i}/medium.jpg")
    return table.assign(url=urls, obs_id=[str(1 + i) for i in range(len(table))])


def resized_copy(data: bytes, scale: float, quality: int) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    buffer = io.BytesIO()
    image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS).save(
        buffer, format="JPEG", quality=quality
    )
    return buffer.getvalue()


def write_export_of(table: pd.DataFrame, path: Path) -> Path:
    rows = [
        export_row(
            int(row.obs_id),
            row.url,
            latitude=f"{row.lat:.5f}",
            longitude=f"{row.lon:.5f}",
            observed_on=str(row.observed_on)[:10],
            user_id=row.observer_id,
            license="CC-BY",
            scientific_name=row.species,
            taxon_species_name=row.species,
            taxon_genus_name=row.genus,
            taxon_family_name=row.family,
            taxon_order_name="",
            taxon_class_name="",
            taxon_phylum_name="",
            taxon_kingdom_name="",
        )
        for row in table.itertuples()
    ]
    with zipfile.ZipFile(path, "w") as archive:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        archive.writestr("observations-1.csv", text.getvalue())
    return path


def write_archive_of(table: pd.DataFrame, path: Path) -> Path:
    core = [
        "\t".join(
            [row.obs_id, f"{row.lat:.5f}", f"{row.lon:.5f}", "25", str(row.observed_on)[:10], row.observer_id, ""]
            + [row.family, row.genus, row.species.split()[1], ""]
        )
        for row in table.itertuples()
    ]
    media = [media_line(row.obs_id, row.url, licence="CC_BY_4_0") for row in table.itertuples()]
    return write_archive(path, core, media)


@pytest.mark.slow
@pytest.mark.extended
@pytest.mark.parametrize("source", ["inat_export", "dwca"])
def test_an_export_and_an_archive_run_through_the_tiny_workflow_to_results(server, tmp_path, source):
    import subprocess

    import yaml
    from conftest import TINY_CONFIG
    from test_workflow import snakemake_command

    table = served_collection(server)
    write = write_export_of if source == "inat_export" else write_archive_of
    collection_file = write(table, tmp_path / f"{source}.zip")
    config = yaml.safe_load(TINY_CONFIG.read_text())
    section = {"path": str(collection_file), "cache_dir": str(tmp_path / "downloads")}
    config["dataset"] = {"name": source, "source": source, source: section}
    config["pretrain"].update(strategies=["context_pos_neg"], seeds=[0])
    config["evaluate"]["protocols"] = ["linear", "knn"]
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "work"
    command, env = snakemake_command(workdir, f"results/{source}/results.csv", configfile=config_path)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]

    results_dir = workdir / "results" / source
    results = pd.read_csv(results_dir / "results.csv")
    assert set(results["strategy"]) == {"context_pos_neg", "random_init", "most_common"}
    assert results["top1"].notna().all()
    summary = json.loads((results_dir / "manifest_summary.json").read_text())
    print(f"{source} manifest summary: {json.dumps(summary)}")
    assert summary["n_images"] == 121 and summary["n_without_coords"] == 0 and summary["n_species"] == 6
    assert {k: summary["near_duplicates"][k] for k in ("n_groups", "n_photos")} == {"n_groups": 1, "n_photos": 2}
    splits = pd.read_parquet(results_dir / "replicates" / "0" / "splits.parquet").set_index("image_id")["split"]
    original, copy = ("9000", "9120") if source == "inat_export" else ("1-1", "121-1")
    assert splits[original] == splits[copy]
    assert "1 near-duplicate groups, 2 photos" in (results_dir / "results_summary.txt").read_text()
