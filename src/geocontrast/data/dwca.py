"""A Darwin Core Archive (a GBIF download, a zip or the folder it unpacks to) as a photo source.

``meta.xml`` says which file holds the occurrence core and which the multimedia extension (GBIF's
``gbif:Multimedia`` or Audubon Core's), how their fields are delimited and quoted, how many header lines they have,
and which column holds which Darwin Core term (a field with no index but a ``default`` gives every row that value).
Each multimedia row is joined to its occurrence on the core id. From the occurrence: ``decimalLatitude``,
``decimalLongitude``, ``coordinateUncertaintyInMeters``, ``eventDate`` (its first day when an interval),
``recordedBy``, the taxonomy (``kingdom`` … ``genus``, the species from GBIF's ``species`` or from ``genus`` and
``specificEpithet``, ``speciesKey`` as taxon id) and ``license``/``rightsHolder`` for images without their own. From
the image: its URL (``identifier``, or ``accessURI``), ``license`` and ``rightsHolder`` (or ``creator``). Images of
another type (sound, video) or without a URL are left out and counted, as are those under another licence than
``photo_licenses``; at most ``max_photos_per_observation`` per occurrence are kept. The photos are fetched as the
iNaturalist sources fetch theirs (rate, daily budget, cache in ``cache_dir/photos/``, size cap, image check).

The archive is read in place, never unpacked. A file that ``meta.xml`` names outside the archive (an absolute
path, ``..``) is refused, and a photo's file name is made from its occurrence id (only letters, digits, ``._-``)
and the URL's image suffix, so nothing lands outside the image folder. Every bad cell (a core id missing or
repeated, a coordinate that is not a number or out of range, one of the pair alone, an unreadable date or
uncertainty, an image whose core id is not in the core, a URL that is not http(s)) is named with its file, row
and column, all at once.

One row per image: ``image_id`` ``<core id>-<n>`` (its place among the occurrence's images), ``observation_id``
the core id, ``observer_id`` ``recordedBy``, ``license`` the image's (a code such as ``cc-by-nc``) and
``attribution`` its rights holder. Extra columns: ``photo_url``, ``rights_holder``.

CLI (the workflow's ``dwca`` rule)::

    python -m geocontrast.data.dwca --config-json '{"path": "0012345-240101.zip", ...}' \\
        --source results/x/source/photos.parquet --image-root results/x/images --cache-dir downloads/dwca
"""

from __future__ import annotations

import csv
import io
import logging
import re
import time
import xml.etree.ElementTree as ElementTree
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import requests

from geocontrast.cli import exit_without_teardown
from geocontrast.data.download import SourceError, image_suffix, run_source_cli, safe_file_name
from geocontrast.data.inat_client import fetch_listed_photos
from geocontrast.data.manifest import TAXONOMIC_RANKS
from geocontrast.data.table_checks import TableProblems, coordinate_pair, date_column, number_column, repeated

log = logging.getLogger(__name__)

OCCURRENCE = "http://rs.tdwg.org/dwc/terms/Occurrence"
MULTIMEDIA = ("http://rs.gbif.org/terms/1.0/Multimedia", "http://rs.tdwg.org/ac/terms/Multimedia")
IMAGE_TYPES = ("stillimage", "image", "http://purl.org/dc/dcmitype/stillimage")
# Licences as archives write them: a Creative Commons URL, GBIF's enumeration or a short name.
_LICENCE = re.compile(r"(?:licenses/|publicdomain/|^cc[ _-]?)(zero|by(?:[ _-](?:nc|sa|nd))*)", re.I)


class ArchiveError(SourceError):
    """The archive cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class DataFile:
    """One data file of an archive as meta.xml describes it."""

    location: str
    row_type: str
    delimiter: str
    quote: str
    header_lines: int
    encoding: str
    id_index: int
    fields: dict[str, int | None]  # term name (without namespace) -> column index; None: the default for every row
    defaults: dict[str, str]


def dwca_photos(
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
    """Read the archive named by ``config["path"]``, fetch its kept images under ``image_root``, return the table.

    Args:
        config: the ``dataset.dwca`` section (config/README.md): ``path``, ``photo_licenses``,
            ``max_photos_per_observation``, ``photo_requests_per_minute``, ``max_media_gb_per_day``,
            ``max_photo_mb``.
        image_root: the image folder; the returned ``path`` column is relative to it.
        cache_dir: photos and the day's media usage, reused by later runs.
        session, clock, sleep, now, progress: as :func:`geocontrast.data.inat_export.inat_export_photos`.
    """
    archive = Archive(config["path"])
    core, extension = archive.data_files()
    occurrences = archive.read(core)
    images = archive.read(extension)
    rows = image_rows(occurrences, images, core, extension, archive, config)
    if rows.empty:
        raise ArchiveError(f"{archive.name}: no image is left to fetch (see the counts in the log)")
    return fetch_listed_photos(
        rows,
        config,
        image_root,
        Path(cache_dir) / "photos",
        session=session,
        clock=clock,
        sleep=sleep,
        now=now,
        progress=progress,
        section="dataset.dwca",
    )


class Archive:
    """A Darwin Core Archive, a zip or a folder, read in place."""

    def __init__(self, path: str | None):
        if not path:
            raise ArchiveError("dataset.dwca.path is not set: name the archive (.zip) or the folder it unpacks to")
        self.path = Path(path)
        self.name = str(self.path)
        if self.path.is_dir():
            self._zip = None
        elif zipfile.is_zipfile(self.path):
            self._zip = zipfile.ZipFile(self.path)
        else:
            raise ArchiveError(f"{self.path}: neither a zip file nor a folder")

    def bytes_of(self, location: str) -> bytes:
        """A file of the archive; a location outside it (absolute, ``..``) is refused."""
        member = PurePosixPath(location.replace("\\", "/"))
        if member.is_absolute() or ".." in member.parts or not member.parts:
            raise ArchiveError(f"{self.name}: meta.xml names {location!r}, outside the archive: refused")
        try:
            if self._zip is not None:
                return self._zip.read(str(member))
            return (self.path / member).read_bytes()
        except (KeyError, FileNotFoundError):
            raise ArchiveError(f"{self.name}: no file {location!r} in the archive") from None

    def data_files(self) -> tuple[DataFile, DataFile]:
        """The occurrence core and the multimedia extension of meta.xml."""
        try:
            root = ElementTree.fromstring(self.bytes_of("meta.xml"))
        except ElementTree.ParseError as error:
            raise ArchiveError(f"{self.name}: meta.xml is not valid XML ({error})") from None
        files = [_data_file(element) for element in root if _local(element.tag) in ("core", "extension")]
        core = [f for f in files if f.row_type == OCCURRENCE]
        media = [f for f in files if f.row_type in MULTIMEDIA]
        if not core:
            raise ArchiveError(f"{self.name}: meta.xml lists no occurrence core ({OCCURRENCE})")
        if not media:
            raise ArchiveError(
                f"{self.name}: meta.xml lists no multimedia extension ({' or '.join(MULTIMEDIA)}): no images to fetch"
            )
        return core[0], media[0]

    def read(self, data: DataFile) -> pd.DataFrame:
        """A data file as text cells, one column per term (``id`` the core id or the extension's core id)."""
        text = self.bytes_of(data.location).decode(data.encoding)
        if data.quote:
            reader = csv.reader(io.StringIO(text), delimiter=data.delimiter, quotechar=data.quote)
        else:
            reader = csv.reader(io.StringIO(text), delimiter=data.delimiter, quoting=csv.QUOTE_NONE)
        lines = [line for line in reader][data.header_lines :]
        lines = [line for line in lines if any(cell.strip() for cell in line)]
        width = max([data.id_index, *[i for i in data.fields.values() if i is not None]]) + 1
        padded = [[cell.strip() for cell in line] + [""] * (width - len(line)) for line in lines]
        columns = {"id": [line[data.id_index] for line in padded]}
        for term, index in data.fields.items():
            constant = [data.defaults.get(term, "")] * len(padded)
            columns[term] = [line[index] for line in padded] if index is not None else constant
        return pd.DataFrame(columns, dtype=str)


def image_rows(
    occurrences: pd.DataFrame, images: pd.DataFrame, core: DataFile, extension: DataFile, archive: Archive, config
) -> pd.DataFrame:
    """The images to fetch as manifest rows (plus extra columns), after checking every cell and filtering."""
    core_problems = TableProblems(f"{archive.name}:{core.location}", core.header_lines)
    for position in np.flatnonzero((occurrences["id"] == "").to_numpy()):
        core_problems.add(position, "id", "blank (the core id joins the images to their occurrence)")
    repeated(occurrences, "id", core_problems)
    term = _terms(occurrences)
    lat, lon = coordinate_pair(
        occurrences.assign(decimalLatitude=term("decimalLatitude"), decimalLongitude=term("decimalLongitude")),
        "decimalLatitude",
        "decimalLongitude",
        core_problems,
    )
    uncertainty = number_column(
        occurrences.assign(coordinateUncertaintyInMeters=term("coordinateUncertaintyInMeters")),
        "coordinateUncertaintyInMeters",
        core_problems,
        0,
    )
    observed_on = date_column(occurrences.assign(eventDate=term("eventDate")), "eventDate", core_problems)

    media_problems = TableProblems(f"{archive.name}:{extension.location}", extension.header_lines)
    position_of = {occurrence: i for i, occurrence in enumerate(occurrences["id"])}
    for position in np.flatnonzero(~images["id"].isin(position_of).to_numpy()):
        media_problems.add(position, "coreid", f"{images['id'].iat[position]!r} is no occurrence of the core")
    media = _terms(images)
    url = media("identifier").mask(lambda s: s == "", media("accessURI"))
    for position in np.flatnonzero(((url != "") & ~url.str.match(r"https?://")).to_numpy()):
        media_problems.add(position, "identifier", f"{url.iat[position]!r} is not an http(s) URL")
    core_problems.raise_if_any(ArchiveError)
    media_problems.raise_if_any(ArchiveError)

    occurrence = images["id"].map(position_of).to_numpy()

    def of_core(values) -> pd.Series:
        """An occurrence's value on each of its images."""
        return pd.Series(np.asarray(values)[occurrence], index=images.index)

    licence = media("license").mask(lambda s: s == "", of_core(term("license"))).map(licence_code)
    holder = media("rightsHolder").mask(lambda s: s == "", media("creator"))
    holder = holder.mask(lambda s: s == "", of_core(term("rightsHolder")))
    kind, form = media("type").str.lower(), media("format").str.lower()
    is_image = kind.isin(IMAGE_TYPES) | ((kind == "") & ((form == "") | form.str.startswith("image/")))
    has_url = url != ""
    licensed = licence.isin(config["photo_licenses"])
    rank = (is_image & has_url & licensed).groupby(images["id"]).cumsum()  # the image's place in its occurrence
    keep = is_image & has_url & licensed & (rank <= config["max_photos_per_observation"])
    log.info(
        "%s: %d occurrences, %d multimedia rows; left out: %d not images, %d without a URL, %d under another "
        "licence (%s accepted), %d beyond max_photos_per_observation",
        archive.name,
        len(occurrences),
        len(images),
        int((~is_image).sum()),
        int((is_image & ~has_url).sum()),
        int((is_image & has_url & ~licensed).sum()),
        ", ".join(config["photo_licenses"]),
        int((is_image & has_url & licensed & ~keep).sum()),
    )

    species = _species(term)
    rows = pd.DataFrame(
        {
            "image_id": images["id"] + "-" + rank.astype(str),
            "path": [
                f"{safe_file_name(core_id)}-{n}{image_suffix(u)}" for core_id, n, u in zip(images["id"], rank, url)
            ],
            "lat": of_core(lat),
            "lon": of_core(lon),
            "coord_uncertainty_m": of_core(uncertainty),
            "observed_on": of_core(observed_on),
            "observer_id": of_core(term("recordedBy").replace("", None)),
            "observation_id": images["id"],
            "taxon_id": of_core(term("speciesKey").replace("", None).where(species.notna())),
            "species": of_core(species),
            **{rank_name: of_core(term(rank_name).replace("", None)) for rank_name in TAXONOMIC_RANKS[1:]},
            "license": licence,
            "attribution": holder.replace("", None),
            "source": "dwca",
            "photo_url": url,
            "rights_holder": holder.replace("", None),
        }
    )
    rows = rows[keep.to_numpy()].reset_index(drop=True)
    log.info("%s: %d images to fetch", archive.name, len(rows))
    return rows


def licence_code(text) -> str | None:
    """``cc-by-nc`` for ``http://creativecommons.org/licenses/by-nc/4.0/``, ``CC_BY_NC_4_0`` or ``CC BY-NC 4.0``;
    ``cc0`` for CC0 (``publicdomain/zero``, ``CC0_1_0``); None for anything else (all rights reserved, blank)."""
    if not isinstance(text, str) or not text:
        return None
    if re.search(r"cc0|publicdomain/zero|public domain", text, re.I):
        return "cc0"
    match = _LICENCE.search(text)
    if not match or match.group(1).lower() == "zero":
        return None
    return "cc-" + re.sub(r"[ _-]+", "-", match.group(1).lower())


def _species(term) -> pd.Series:
    """GBIF's ``species`` where given, else ``genus specificEpithet``; missing when neither."""
    species = term("species")
    genus, epithet = term("genus"), term("specificEpithet")
    binomial = (genus + " " + epithet).where((genus != "") & (epithet != ""))
    return species.replace("", None).fillna(binomial)


def _terms(table: pd.DataFrame) -> Callable[[str], pd.Series]:
    """term(name): the column of a Darwin Core term as text ("" where absent)."""

    def term(name: str) -> pd.Series:
        return table[name] if name in table.columns else pd.Series("", index=table.index, dtype=object)

    return term


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _unescape(text: str) -> str:
    return text.replace("\\t", "\t").replace("\\n", "\n").replace("\\r", "\r").replace('\\"', '"')


def _data_file(element) -> DataFile:
    """A ``core`` or ``extension`` element of meta.xml."""
    location = next((e.text or "").strip() for e in element.iter() if _local(e.tag) == "location")
    id_element = next(e for e in element if _local(e.tag) in ("id", "coreid"))
    fields, defaults = {}, {}
    for field in (e for e in element if _local(e.tag) == "field"):
        name = field.get("term", "").rstrip("/").rsplit("/", 1)[-1]
        index = field.get("index")
        fields[name] = int(index) if index is not None else None
        if index is None:
            defaults[name] = field.get("default", "")
    return DataFile(
        location=location,
        row_type=element.get("rowType", ""),
        delimiter=_unescape(element.get("fieldsTerminatedBy", ",")),
        quote=_unescape(element.get("fieldsEnclosedBy", "")),
        header_lines=int(element.get("ignoreHeaderLines", "0")),
        encoding=element.get("encoding", "UTF-8"),
        id_index=int(id_element.get("index", "0")),
        fields=fields,
        defaults=defaults,
    )


def main(argv: list[str] | None = None) -> int:
    return run_source_cli(dwca_photos, argv, prog="python -m geocontrast.data.dwca", description=__doc__.split("\n")[0])


if __name__ == "__main__":
    exit_without_teardown(main())
