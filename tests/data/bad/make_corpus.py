"""Writes the bad-input corpus beside this script: photos and CSV files that real collections contain.

Run once (``python tests/data/bad/make_corpus.py``); the files are committed, so tests read them as a user's
data would arrive, and a reader can open them. Every image is a few hundred bytes. tests/test_bad_inputs.py says
what the workflow must do with each: fail naming the file, row or column, or (for valid photos in unusual
encodings) cache them as correct RGB.

Photos:
  good.jpg            a plain 24 px RGB JPEG, listed by the CSV files
  truncated.jpg       the first half of good.jpg's bytes (an interrupted download)
  empty.jpg           zero bytes
  error_page.jpg      an HTML error page saved under a .jpg name (a failed download that answered 200)
  cmyk.jpg            CMYK JPEG of the RGB colour (200, 40, 90) (print workflows, some scanners)
  grey.jpg            8-bit greyscale JPEG, value 77 (herbarium scans)
  grey16.png          16-bit greyscale PNG, a left-to-right ramp 0 .. 65535 (scientific cameras)
  rgb16.png           48-bit RGB PNG of (200, 40, 90) in the top 8 bits of each channel
  exif_rotated.jpg    stored with a red top half, EXIF orientation 6 (rotate 90° clockwise to display): upright,
                      the red half is on the right (phone portraits)
CSV files (the csv source's input; paths relative to this folder):
  coords_nan.csv          NaN in both lat and lon (a photo without coordinates, written by pandas)
  coords_half_nan.csv     NaN in lat only, row 3
  coords_inf.csv          lat inf in row 2, lon -inf in row 3
  coords_out_of_range.csv lat 91 in row 2, lon -181 in row 3
  coords_swapped.csv      lat -122.4 and lon 37.8 in row 3 (columns exchanged)
  duplicate_ids.csv       image_id 'p1' in rows 2 and 4
  empty_species.csv       species blank in row 3 and only spaces in row 4 (unlabelled photos)
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
SIZE = 24
COLOUR = (200, 40, 90)


def png_rgb16(path: Path, pixels: np.ndarray) -> None:
    """A 48-bit RGB PNG from an (h, w, 3) uint16 array (Pillow cannot write one)."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)  # filter type 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)  # 16 bits, colour type 2 (RGB)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )


def write_photos() -> None:
    gradient = np.linspace(0, 255, SIZE, dtype=np.uint8)
    good = np.stack(np.broadcast_arrays(gradient[:, None], gradient[None, :], 255 - gradient[:, None]), axis=-1)
    Image.fromarray(np.ascontiguousarray(good)).save(HERE / "good.jpg", quality=90)
    whole = (HERE / "good.jpg").read_bytes()
    (HERE / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (HERE / "empty.jpg").write_bytes(b"")
    (HERE / "error_page.jpg").write_text(
        "<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n"
        "<body><h1>Service Unavailable</h1><p>Please try again later.</p></body></html>\n"
    )
    Image.new("RGB", (SIZE, SIZE), COLOUR).convert("CMYK").save(HERE / "cmyk.jpg", quality=95)
    Image.new("L", (SIZE, SIZE), 77).save(HERE / "grey.jpg", quality=95)
    ramp = np.tile(np.linspace(0, 65535, SIZE).astype(np.uint16), (SIZE, 1))
    Image.fromarray(ramp).save(HERE / "grey16.png")
    png_rgb16(HERE / "rgb16.png", np.full((SIZE, SIZE, 3), [c * 256 + 0x80 for c in COLOUR], dtype=np.uint16))
    top_red = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    top_red[: SIZE // 2, :, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the viewer rotates the stored image 90° clockwise
    Image.fromarray(top_red).save(HERE / "exif_rotated.jpg", quality=95, exif=exif)


CSV_FILES = {
    "coords_nan.csv": "path,lat,lon\ngood.jpg,37.1,-122.0\ngrey.jpg,NaN,NaN\n",
    "coords_half_nan.csv": "path,lat,lon\ngood.jpg,37.1,-122.0\ngrey.jpg,NaN,-122.0\n",
    "coords_inf.csv": "path,lat,lon\ngood.jpg,inf,-122.0\ngrey.jpg,37.2,-inf\n",
    "coords_out_of_range.csv": "path,lat,lon\ngood.jpg,91,-122.0\ngrey.jpg,37.2,-181\n",
    "coords_swapped.csv": "path,lat,lon\ngood.jpg,37.1,-122.0\ngrey.jpg,-122.4,37.8\n",
    "duplicate_ids.csv": "path,lat,lon,image_id\ngood.jpg,37.1,-122.0,p1\ngrey.jpg,37.2,-122.1,p2\n"
    "cmyk.jpg,37.3,-122.2,p1\n",
    "empty_species.csv": "path,lat,lon,species,genus\ngood.jpg,37.1,-122.0,Quercus agrifolia,Quercus\n"
    "grey.jpg,37.2,-122.1,,Quercus\ncmyk.jpg,37.3,-122.2,   ,Quercus\n",
}


def main() -> None:
    write_photos()
    for name, text in CSV_FILES.items():
        (HERE / name).write_text(text)


if __name__ == "__main__":
    main()
