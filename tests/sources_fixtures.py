"""The source tests' local HTTP server serving small files in the real formats, a JPEG maker, the source defaults."""

from __future__ import annotations

import io
import json
import re
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from conftest import load_config
from PIL import Image

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


def jpeg_bytes(colour=(40, 120, 60), size=(12, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def defaults(source: str) -> dict:
    """The schema's defaults of one dataset source section."""
    return load_config()["dataset"][source]


def photo_bytes(seed: int, size=(48, 40), format="JPEG", **save_options) -> bytes:
    """A photo with a texture of its own (9 × 12 random colour blocks, smoothly resized), so that photos of different
    seeds are no near-duplicates of each other (their hashes differ in 18 bits or more over 200 seeds)."""
    import numpy as np

    blocks = np.random.default_rng(seed).integers(0, 256, (9, 12, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(blocks).resize(size, Image.Resampling.BICUBIC).save(buffer, format=format, **save_options)
    return buffer.getvalue()
