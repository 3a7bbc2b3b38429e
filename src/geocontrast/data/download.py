"""What the real-data sources share: resumable downloads, JSON requests with retries, and the photo table's output.

:func:`download` fetches one file into ``dest``: it writes ``dest.partial``, resumes an interrupted transfer with an
HTTP Range request, retries connection errors and 5xx/429 answers with exponential backoff (or the longer wait a
``Retry-After`` header asks for, in seconds or as an HTTP date), checks the md5 when one is published (a mismatch
deletes the copy and downloads the file once more from scratch) and renames the file into place only after that, so
an existing ``dest`` is always complete.

Every source (:mod:`~geocontrast.data.inat2021`, :mod:`~geocontrast.data.inat_api`,
:mod:`~geocontrast.data.csv_source`) writes what the synthetic world writes: a photo table with
:data:`~geocontrast.data.manifest.MANIFEST_COLUMNS` (plus source-specific columns after them) and an image folder
whose relative paths are the ``path`` column. :func:`run_source_cli` is their common command line::

    python -m geocontrast.data.<source> --config-json '{...}' --source results/x/source/photos.parquet \\
        --image-root results/x/images [--cache-dir downloads/<source>]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC
from email.utils import parsedate_to_datetime
from pathlib import Path, PurePosixPath
from typing import TypeVar
from urllib.parse import urlsplit

import pandas as pd
import requests
from tqdm import tqdm

from geocontrast.atomic import atomic_path
from geocontrast.data.manifest import MANIFEST_COLUMNS, ManifestError, validate_manifest

log = logging.getLogger(__name__)

DEFAULT_RETRIES = 5
DEFAULT_BACKOFF_S = 2.0  # waits 2, 4, 8, 16, 32 s: about a minute in all before giving up
DEFAULT_TIMEOUT_S = 60.0
CHUNK_BYTES = 1 << 16  # what a broken connection can lose: the chunk being read is not written
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
CHECKSUM_ATTEMPTS = 2  # a copy whose md5 differs is deleted and fetched again from byte 0, once
USER_AGENT = "geocontrast/0.1 (research workflow)"
PLACE_MODES = ("hardlink", "symlink", "copy")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".tif", ".tiff", ".bmp")

T = TypeVar("T")


class SourceError(RuntimeError):
    """A data source cannot produce its photo table; the message says what and where."""


class DownloadError(SourceError):
    """A download failed for good; ``status`` is the HTTP status when the server answered."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class ChecksumError(DownloadError):
    """A file's md5 differed from the published one in each of :data:`CHECKSUM_ATTEMPTS` downloads (the partial file
    has been deleted)."""


class TooLargeError(DownloadError):
    """An answer longer than the ``max_bytes`` a download allows (the partial file has been deleted)."""


class _TransientStatus(Exception):
    """A server answer worth retrying (5xx, 429), with the wait the server asked for, if any."""

    def __init__(self, status: int, url: str, retry_after_s: float | None):
        super().__init__(f"HTTP {status} from {url}")
        self.retry_after_s = retry_after_s


TRANSIENT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,  # the connection closed in the middle of the body
    _TransientStatus,
)


def new_session() -> requests.Session:
    """A session that names this workflow (iNaturalist asks API clients to identify themselves)."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    return session


def with_retries(
    action: Callable[[], T],
    what: str,
    retries: int = DEFAULT_RETRIES,
    backoff_s: float = DEFAULT_BACKOFF_S,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``action``; on a transient error wait ``backoff_s * 2**attempt`` (or the server's longer Retry-After) and
    retry. ``sleep`` does the waiting (tests record the waits instead).

    Raises :class:`DownloadError` naming ``what`` after ``retries`` retries.
    """
    attempt = 0
    while True:
        try:
            return action()
        except TRANSIENT_ERRORS as error:
            if attempt >= retries:
                raise DownloadError(f"{what}: failed after {attempt + 1} attempts: {error}") from error
            delay = backoff_s * 2**attempt
            if isinstance(error, _TransientStatus) and error.retry_after_s is not None:
                delay = max(delay, error.retry_after_s)
            attempt += 1
            log.warning("%s: %s; retry %d/%d in %.0f s", what, error, attempt, retries, delay)
            sleep(delay)


def download(
    url: str,
    dest: Path,
    md5: str | None = None,
    *,
    retries: int = DEFAULT_RETRIES,
    backoff_s: float = DEFAULT_BACKOFF_S,
    session: requests.Session | None = None,
    progress: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    sleep: Callable[[float], None] = time.sleep,
    max_bytes: int | None = None,
) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.partial``) and return ``dest``.

    Args:
        url: the file's address.
        dest: where the complete file goes; if it exists it is returned untouched (it is only ever created complete).
        md5: the published checksum (hex). A mismatch deletes the partial file and downloads the whole file once
            more; if that copy differs too, it is deleted as well and :class:`ChecksumError` names the file and both
            sums. ``None``: not checked.
        retries: retries after connection errors, a connection closed mid-file, and 5xx/429 answers; each retry
            resumes from the bytes already on disk.
        backoff_s: the first retry's wait; each further retry waits twice as long.
        session: a :class:`requests.Session` (tests pass their own); default: a new one.
        progress: show a tqdm bar of bytes on stderr.
        timeout_s: connect and read timeout of each request.
        sleep: waits between retries (tests pass one that records the waits).
        max_bytes: refuse a file longer than this (:class:`TooLargeError`), by its announced length or, without
            one, once that many bytes have arrived; the partial file is deleted. None: any size.
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    session = session or new_session()
    expected = md5.lower() if md5 is not None else None
    for attempt in range(1, CHECKSUM_ATTEMPTS + 1):
        try:
            with_retries(
                lambda: _transfer(session, url, partial, progress, timeout_s, max_bytes),
                url,
                retries,
                backoff_s,
                sleep,
            )
        except TooLargeError:
            partial.unlink(missing_ok=True)
            raise
        if expected is None:
            break
        log.info("%s: checking md5", dest.name)
        actual = file_md5(partial)
        if actual == expected:
            break
        partial.unlink()  # whatever was resumed may be the corrupt part: the next copy starts from byte 0
        if attempt == CHECKSUM_ATTEMPTS:
            raise ChecksumError(
                f"{dest.name}: md5 {actual} differs from the published {expected} "
                f"(downloaded {attempt} times from {url}); the partial file was deleted"
            )
        log.warning(
            "%s: md5 %s differs from the published %s; deleted, downloading it again", dest.name, actual, expected
        )
    os.replace(partial, dest)
    return dest


def _transfer(
    session: requests.Session, url: str, partial: Path, progress: bool, timeout_s: float, max_bytes: int | None = None
) -> None:
    """One request: append the rest of the file to ``partial`` (or rewrite it if the server ignores Range)."""
    offset = partial.stat().st_size if partial.exists() else 0
    # identity: byte offsets must refer to the file itself, not to a compressed transfer encoding of it.
    headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={offset}-"} if offset else {})}
    with session.get(url, headers=headers, stream=True, timeout=timeout_s) as response:
        if response.status_code == 416 and offset:
            # Nothing left after offset: the partial is already whole (killed before the rename) unless it is
            # longer than the file, in which case it is not this file and is fetched again.
            if response.headers.get("Content-Range", "").endswith(f"/{offset}"):
                return
            partial.unlink()
            raise _TransientStatus(416, url, None)
        _raise_for_status(response, url)
        resumed = response.status_code == 206
        if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
            raise DownloadError(f"{url}: asked for bytes from {offset}, got {response.headers.get('Content-Range')!r}")
        start = offset if resumed else 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length else None
        if max_bytes is not None and total is not None and total > max_bytes:
            raise TooLargeError(f"{url}: {total} bytes, more than the {max_bytes} allowed")
        with (
            open(partial, "ab" if resumed else "wb") as out,
            tqdm(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=partial.name[:40],
                disable=not progress,
                file=sys.stderr,
            ) as bar,
        ):
            written = start
            for chunk in response.iter_content(CHUNK_BYTES):
                written += len(chunk)
                if max_bytes is not None and written > max_bytes:
                    raise TooLargeError(f"{url}: more than the {max_bytes} bytes allowed")
                out.write(chunk)
                bar.update(len(chunk))


def get_json(
    url: str,
    params: dict | None = None,
    *,
    session: requests.Session | None = None,
    retries: int = DEFAULT_RETRIES,
    backoff_s: float = DEFAULT_BACKOFF_S,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    sleep: Callable[[float], None] = time.sleep,
):
    """GET ``url`` with query ``params`` and return the decoded JSON, retried like :func:`download`."""
    session = session or new_session()

    def attempt():
        with session.get(url, params=params, timeout=timeout_s) as response:
            _raise_for_status(response, url)
            return response.json()

    return with_retries(attempt, url, retries, backoff_s, sleep)


def _raise_for_status(response: requests.Response, url: str) -> None:
    if response.status_code in RETRYABLE_STATUS:
        raise _TransientStatus(response.status_code, url, retry_after_seconds(response.headers.get("Retry-After")))
    if response.status_code >= 400:
        raise DownloadError(f"{url}: HTTP {response.status_code} {response.reason}", status=response.status_code)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """The wait a ``Retry-After`` header asks for: ``"120"`` (seconds) or an HTTP date such as
    ``"Wed, 02 Dec 2026 00:00:00 GMT"`` (seconds from ``now``, epoch seconds, default the current time; a date
    already past waits 0). None when the header is absent or unreadable.
    """
    value = (value or "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT, even when it fails to say so
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def file_md5(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "md5").hexdigest()


def contained(root: Path, relative: str) -> Path:
    """``root / relative``, refusing (:class:`SourceError`) a name that is absolute or climbs out with ``..``: an
    archive member or a name taken from a URL never lands outside ``root``."""
    path = PurePosixPath(str(relative).replace("\\", "/"))
    if not path.parts or path.is_absolute() or ".." in path.parts or str(path).startswith("~"):
        raise SourceError(f"{relative!r}: refused, it would land outside {root}")
    return Path(root) / path


def safe_file_name(text: str) -> str:
    """A file name made from ``text`` (an id from a table): letters, digits, ``.``, ``_`` and ``-`` only; another
    character becomes ``_`` and the name gains a short digest of ``text``, so two ids never share a name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", text).strip(".") or "_"
    if cleaned == text:
        return cleaned
    return f"{cleaned[:80]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def image_suffix(url: str, default: str = ".jpg") -> str:
    """The file suffix of a URL's path when it is an image suffix (``.jpg``, ``.png`` …), else ``default``."""
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    return suffix if suffix in IMAGE_SUFFIXES else default


def place_file(src: Path, dst: Path, mode: str = "hardlink") -> None:
    """Put ``src`` at ``dst`` without re-encoding it.

    ``hardlink`` shares the bytes (falling back to a copy across filesystems), ``symlink`` points at the absolute
    source path (nothing copied; breaks if the source moves), ``copy`` duplicates the file.
    """
    if mode not in PLACE_MODES:
        raise ValueError(f"mode must be one of {', '.join(PLACE_MODES)}, got {mode!r}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        dst.symlink_to(Path(src).absolute())
        return
    if mode == "hardlink":
        try:
            os.link(src, dst)
            return
        except OSError:  # another filesystem, or one without hard links
            pass
    with atomic_path(dst) as partial:
        shutil.copyfile(src, partial)


def write_photo_table(table: pd.DataFrame, source: Path, image_root: Path) -> None:
    """Check ``table`` against the manifest contract (every image readable), then write it atomically as parquet.

    The manifest columns come first; columns a source adds (e.g. ``obscured``) follow them.
    """
    validate_manifest(table, image_root)
    extra = [c for c in table.columns if c not in MANIFEST_COLUMNS]
    with atomic_path(source) as partial:
        table[[*MANIFEST_COLUMNS, *extra]].to_parquet(partial, index=False)


def run_source_cli(
    build: Callable[..., pd.DataFrame], argv: list[str] | None, *, prog: str, description: str, uses_cache: bool = True
) -> int:
    """The sources' command line: ``build(config, image_root[, cache_dir])`` then :func:`write_photo_table`."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-json", required=True, help="the source's section of `dataset` as JSON")
    parser.add_argument("--source", type=Path, required=True, help="output: photo table (manifest columns), .parquet")
    parser.add_argument("--image-root", type=Path, required=True, help="output: folder the path column is relative to")
    if uses_cache:
        parser.add_argument(
            "--cache-dir",
            type=Path,
            required=True,
            help="downloads and API responses kept between runs (a rerun reads them)",
        )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    cache = {"cache_dir": args.cache_dir} if uses_cache else {}
    try:
        table = build(json.loads(args.config_json), args.image_root, **cache)
        write_photo_table(table, args.source, args.image_root)
    except (SourceError, ManifestError) as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 1
    log.info("%d photos in %s, images under %s", len(table), args.source, args.image_root)
    return 0
