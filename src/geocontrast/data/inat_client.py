"""The HTTP side of the iNaturalist API source (:mod:`geocontrast.data.inat_api`), within iNaturalist's terms.

:class:`RateLimiter` spaces requests, :class:`DailyUsage` counts the API requests and photo bytes of the UTC day and
stops the run with :class:`DailyLimitReached` at a daily cap, :class:`InatClient` sends the API's GET requests
through both and caches the raw JSON answers, and :func:`download_photos` fetches the photos into a cache and
hard-links them into the image folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import requests
from PIL import Image
from tqdm import tqdm

from geocontrast.atomic import atomic_path, write_json
from geocontrast.data.download import (
    DownloadError,
    SourceError,
    TooLargeError,
    contained,
    download,
    get_json,
    new_session,
    place_file,
)

log = logging.getLogger(__name__)

# A photo deleted or hidden since its observation was listed: skipped (and counted) rather than failing the run.
GONE_STATUS = frozenset({403, 404, 410})
GB = 1e9


class RateLimiter:
    """At most ``max_requests`` in any ``period_s`` window: :meth:`wait` sleeps until the next request may go.

    ``clock`` and ``sleep`` are injectable so tests run on a fake clock::

        limiter = RateLimiter(60, 60.0)
        limiter.wait()  # returns at once for the first 60 calls of a minute
    """

    def __init__(
        self,
        max_requests: int = 60,
        period_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if max_requests < 1 or period_s <= 0:
            raise ValueError(f"need max_requests >= 1 and period_s > 0, got {max_requests} and {period_s}")
        self.period_s = period_s
        self.clock = clock
        self.sleep = sleep
        self._sent: deque[float] = deque(maxlen=max_requests)

    def wait(self) -> float:
        """Block until a request is allowed, record it and return its time on ``clock``."""
        now = self.clock()
        if len(self._sent) == self._sent.maxlen and now < self._sent[0] + self.period_s:
            self.sleep(self._sent[0] + self.period_s - now)
            now = self.clock()
        self._sent.append(now)
        return now


class DailyLimitReached(SourceError):
    """A daily cap of :class:`DailyUsage` is reached: the message says which, how far the run got (``progress``,
    added by the stage that stopped, see :meth:`during`) and how to resume."""

    def __init__(self, limit: str, resume: str, progress: str | None = None):
        self.limit, self.resume, self.progress = limit, resume, progress
        super().__init__(" ".join(part for part in (limit, progress and f"Stopped {progress}.", resume) if part))

    def during(self, progress: str) -> DailyLimitReached:
        """The same stop, saying what the run was doing and how far it had got."""
        return DailyLimitReached(self.limit, self.resume, progress)


class DailyUsage:
    """API requests and photo bytes of the current UTC day, persisted in ``path`` (JSON: ``day``,
    ``api_requests``, ``media_bytes``) after each one, so that a rerun or resumed run the same day continues the
    count; a new UTC day starts from zero. ``now`` (epoch seconds) is injectable for tests.

    :meth:`charge_request` and :meth:`check_media` raise :class:`DailyLimitReached` once a cap is reached; a photo
    is charged after its download, so the media budget may be passed by the last photo.
    """

    def __init__(
        self,
        path: Path,
        max_requests: int,
        max_media_bytes: float,
        now: Callable[[], float] = time.time,
        section: str = "dataset.inat_api",
    ):
        self.path = Path(path)
        self.section = section  # the config section whose keys the stop message names
        self.max_requests, self.max_media_bytes = max_requests, max_media_bytes
        self.now = now

    def today(self) -> dict:
        """This UTC day's counts: those saved in ``path`` if they are of today, else zeros."""
        day = datetime.fromtimestamp(self.now(), UTC).date().isoformat()
        saved = json.loads(self.path.read_text()) if self.path.exists() else {}
        return saved if saved.get("day") == day else {"day": day, "api_requests": 0, "media_bytes": 0}

    def charge_request(self) -> None:
        """Count one API request about to be sent, or raise if today's cap is reached."""
        usage = self.today()
        if usage["api_requests"] >= self.max_requests:
            self._stop(f"{usage['api_requests']} API requests sent today", "max_requests_per_day", usage)
        usage["api_requests"] += 1
        write_json(usage, self.path)

    def check_media(self) -> None:
        """Raise if today's photo bytes have reached the budget."""
        usage = self.today()
        if usage["media_bytes"] >= self.max_media_bytes:
            spent = f"{usage['media_bytes'] / GB:.2f} GB of photos downloaded today"
            self._stop(spent, "max_media_gb_per_day", usage)

    def charge_media(self, n_bytes: int) -> None:
        usage = self.today()
        usage["media_bytes"] += int(n_bytes)
        write_json(usage, self.path)

    def _stop(self, spent: str, key: str, usage: dict) -> None:
        now = datetime.fromtimestamp(self.now(), UTC)
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
        hours, seconds = divmod(int((midnight - now).total_seconds()), 3600)
        raise DailyLimitReached(
            f"iNaturalist daily limit reached: {spent} (UTC day {usage['day']}, counted in {self.path}; "
            f"{self.section}.{key} stops there).",
            f"Everything fetched so far stays cached in {self.path.parent}: rerun after 00:00 UTC "
            f"(in {hours} h {seconds // 60} min) to continue where this run stopped, or raise "
            f"{self.section}.{key} (iNaturalist asks for under 10,000 requests and 24 GB of photos a day).",
        )


class InatClient:
    """GET requests to the API through a rate limiter, a daily request cap and an on-disk cache of the raw JSON
    answers that expires after ``max_age_s`` (None: never).

    A failed request is retried by :func:`~geocontrast.data.download.get_json`, waiting with ``sleep``; its retries
    are not charged to ``usage`` (one request, one charge). ``now`` (epoch seconds) ages the cache entries.
    """

    def __init__(
        self,
        api_url: str,
        cache_dir: Path,
        limiter: RateLimiter,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        usage: DailyUsage | None = None,
        max_age_s: float | None = None,
        now: Callable[[], float] = time.time,
    ):
        self.api_url = api_url.rstrip("/")
        self.responses = Path(cache_dir) / "responses"
        self.limiter = limiter
        self.session = session or new_session()
        self.sleep = sleep
        self.usage = usage
        self.max_age_s = max_age_s
        self.now = now

    def get(self, endpoint: str, params: dict | None = None) -> dict:
        """The JSON answer of ``{api_url}/{endpoint}?{params}``, from the cache when this exact request was made
        less than ``max_age_s`` ago."""
        url = f"{self.api_url}/{endpoint}"
        query = urlencode(sorted((params or {}).items()))
        cached = self.responses / f"{hashlib.sha256(f'{url}?{query}'.encode()).hexdigest()[:32]}.json"
        if cached.exists() and (self.max_age_s is None or self.now() - cached.stat().st_mtime < self.max_age_s):
            return json.loads(cached.read_text())
        if self.usage is not None:
            self.usage.charge_request()
        self.limiter.wait()
        answer = get_json(url, params, session=self.session, sleep=self.sleep)
        with atomic_path(cached) as partial:
            partial.write_text(json.dumps(answer))
        return answer


def download_photos(
    table: pd.DataFrame,
    photo_cache: Path,
    image_root: Path,
    limiter: RateLimiter,
    session: requests.Session,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    usage: DailyUsage | None = None,
    max_bytes: int | None = None,
    check_image: bool = False,
) -> np.ndarray:
    """Fetch each ``photo_url`` into ``photo_cache`` (unless there already), hard-link it to ``image_root/path``.

    Returns a mask of the photos now in place; those the server says are gone (403, 404, 410) are logged. The bytes
    fetched are charged to ``usage``, whose media budget may stop the run (:class:`DailyLimitReached`). A ``path``
    that would land outside ``image_root`` stops the run (:class:`SourceError`). An answer longer than
    ``max_bytes``, or (``check_image``) one that Pillow cannot read as an image, is refused: deleted, named in the
    log with its URL and why, and left out.
    """
    for path in table["path"]:  # before any download
        contained(image_root, path)
    available = np.ones(len(table), dtype=bool)
    refused: list[str] = []
    rows = zip(table["photo_url"], table["path"])
    for i, (url, path) in enumerate(
        tqdm(rows, total=len(table), unit="photo", desc="photos", disable=not progress, file=sys.stderr)
    ):
        cached = contained(photo_cache, path)
        try:
            if not cached.exists():
                if usage is not None:
                    usage.check_media()
                limiter.wait()
                download(url, cached, session=session, progress=False, sleep=sleep, max_bytes=max_bytes)
                if usage is not None:
                    usage.charge_media(cached.stat().st_size)
            if check_image:
                _check_image(cached, url)
        except DailyLimitReached as stop:
            raise stop.during(f"downloading photos, with {i} of {len(table)} in place") from None
        except (TooLargeError, NotAnImageError) as error:
            cached.unlink(missing_ok=True)
            refused.append(f"{path}: {error}")
            log.warning("refused %s", refused[-1])
            available[i] = False
            continue
        except DownloadError as error:
            if error.status not in GONE_STATUS:
                raise
            log.warning("%s", error)
            available[i] = False
            continue
        place_file(cached, image_root / path, "hardlink")
    if refused:
        log.warning("%d answers refused (not an image, or too large):\n%s", len(refused), "\n".join(refused))
    if not available.all():
        log.warning("%d photos not available were skipped", int((~available).sum()))
    return available


class NotAnImageError(DownloadError):
    """A downloaded answer that Pillow cannot read as an image."""


def _check_image(path: Path, url: str) -> None:
    try:
        with Image.open(path) as image:
            image.verify()
    # PIL signals a bad file with many exception types (OSError, SyntaxError, ValueError, ...).
    except Exception as error:  # noqa: BLE001
        raise NotAnImageError(f"{url}: not an image ({type(error).__name__}: {error})") from None


def fetch_listed_photos(
    table: pd.DataFrame,
    config: dict,
    image_root: Path,
    photo_cache: Path,
    *,
    session: requests.Session | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.time,
    progress: bool = True,
    section: str = "dataset",
) -> pd.DataFrame:
    """The rows of ``table`` whose ``photo_url`` was fetched into ``photo_cache`` and placed at ``image_root/path``:
    the sources that list photo URLs (an export, an archive) fetch them as the API source does.

    ``config`` holds ``photo_requests_per_minute``, ``max_media_gb_per_day`` (the UTC day's bytes, counted in
    ``photo_cache/../usage.json`` across runs) and ``max_photo_mb`` (a longer answer is refused, as is one that
    is not an image); ``section`` is its place in the config, for the messages.
    """
    usage = DailyUsage(Path(photo_cache).parent / "usage.json", 0, config["max_media_gb_per_day"] * GB, now, section)
    available = download_photos(
        table,
        Path(photo_cache),
        Path(image_root),
        RateLimiter(config["photo_requests_per_minute"], 60.0, clock, sleep),
        session or new_session(),
        progress,
        sleep,
        usage,
        max_bytes=int(config["max_photo_mb"] * 1e6),
        check_image=True,
    )
    return table[available].reset_index(drop=True)
