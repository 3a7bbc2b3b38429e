"""Procedural "field photo" renderer for the synthetic flora world.

One call to :func:`render_photo` turns the traits of one plant individual
(:class:`~geocontrast.data.plant_drawing.FlowerTraits`) and the place where it
grows (:class:`Habitat`) into a small RGB photo, roughly what a phone snapshot of
a wild flower looks like when shrunk to thumbnail size.

This module holds the habitat, the ground layers, the composition of the photo
(placement, crop, stem and leaves, blur, relighting) and the JPEG writer; the
plant's traits and the drawing of its leaves, flower head and occluders are in
:mod:`geocontrast.data.plant_drawing`.

What is modelled
    * Ground: the habitat colour with low-frequency blotches and per-pixel
      grain whose contrast follows ``Habitat.roughness``, plus grass blades and
      pebbles/litter whose density follows ``Habitat.vegetation``.
    * Plant: a stem running from the flower to the bottom edge, ``leaf_count``
      leaves of ``leaf_shape`` and ``leaf_rgb`` alternating along it, and a
      radially symmetric flower head seen roughly from above: ``petal_count``
      petals of ``petal_shape`` (ellipse, pointed, notched or strap outline)
      around a disc of ``centre_rgb``.  Petals start under the disc and are
      ``petal_length`` flower radii long, so a petal ring always shows beyond
      the disc even for the largest discs and shortest petals.  Petal width is
      capped so that neighbouring petals never merge into a solid ring: the
      petal count stays readable at 64 px for every genus (for crowded
      many-petalled genera this cap, not ``petal_width``, sets the width).
      The flower radius is the length unit of the traits; petal tips reach
      (0.6 * centre_size + petal_length) flower radii from the centre.
    * Per-photo nuisance, all multiplied by ``nuisance`` (0 gives the
      canonical photo: centred, upright, evenly exposed, unoccluded flower of
      radius 0.31 image widths; only the ground texture still varies): flower
      scale (radius 0.2..0.42 image widths at 1), position, rotation, slight
      foreshortening (tilted flower head), occasional partial crop past an
      image edge, stem lean and leaf angles, Gaussian blur, brightness /
      contrast / colour cast, and occasional occluders (a leaf, twig or grey
      blob over part of the flower).
    * Per-observer camera (:class:`CameraStyle`, optional): colour gains,
      blur or sharpening, JPEG quality and a framing habit (zoom, offset),
      the same on every photo of one observer.

What it cannot show
    Bilaterally symmetric (orchid-, pea-like) flowers, composite or clustered
    inflorescences, side views, buds, fruit, several flowers per photo, petal
    venation or texture, hairs, true 3-D shading, shadows or depth of field,
    insects, and any trait not in ``FlowerTraits``.  Leaves are flat
    silhouettes with a midrib.  Everything is drawn with flat-filled polygons
    on a 2x supersampled canvas, so detail below about one output pixel is lost.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from geocontrast.atomic import atomic_path
from geocontrast.data.plant_drawing import (
    _GRASS_GREEN,
    _GRASS_STRAW,
    _PETAL_BASE_IN_DISC,
    FlowerTraits,
    _check_real,
    _check_rgb,
    _draw_flower,
    _draw_leaf,
    _draw_occluder,
    _rgb255,
    _rgb255_rows,
    _to_uint8,
    _xy,
)

MIN_SIZE = 16
MAX_NUISANCE = 2.0

_SUPERSAMPLE = 2
# Canonical flower radius as a fraction of the image width, and the +- range
# that full nuisance adds (radius 0.2..0.42 of the image at nuisance 1).
_RADIUS_FRAC = 0.31
_RADIUS_JITTER = 0.11


@dataclass(frozen=True)
class Habitat:
    """What the ground behind the plant looks like; validated on construction."""

    ground_rgb: tuple[float, float, float]  # dominant background colour, 0..1
    roughness: float  # 0..1, contrast of the ground texture
    vegetation: float  # 0..1, density of background grass blades / clutter

    def __post_init__(self) -> None:
        owner = type(self).__name__
        _check_rgb(owner, "ground_rgb", self.ground_rgb)
        _check_real(owner, "roughness", self.roughness, 0.0, 1.0)
        _check_real(owner, "vegetation", self.vegetation, 0.0, 1.0)


@dataclass(frozen=True)
class CameraStyle:
    """One observer's camera and habits, the same on each of their photos (``None``: no style at all).

    ``gains`` multiply R, G, B after the per-photo relighting (colour cast times white balance); ``sharpness`` < 0
    blurs (Gaussian radius -sharpness pixels at 64 px), > 0 sharpens (unsharp mask of that strength);
    ``jpeg_quality`` is the quality the photo is saved with; ``zoom`` multiplies the flower radius and ``offset``
    moves its centre (image widths, x and y): the observer's framing habit."""

    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    sharpness: float = 0.0
    jpeg_quality: int = 90
    zoom: float = 1.0
    offset: tuple[float, float] = (0.0, 0.0)


# --------------------------------------------------------------------------
# Scene layers.


def _ground(habitat: Habitat, size: int, rng: np.random.Generator, nuisance: float) -> Image.Image:
    """Ground texture at output resolution (upsampled later so grain stays one output pixel)."""
    base = np.clip(np.asarray(habitat.ground_rgb) + nuisance * rng.normal(0.0, 0.03, 3), 0.0, 1.0)
    rough = habitat.roughness
    if rough == 0.0:
        return Image.new("RGB", (size, size), _rgb255(base))
    # Low-frequency blotches: a coarse random grid smoothly interpolated.
    coarse = rng.standard_normal((5, 5, 4))
    blotch = base * (1.0 + 0.3 * rough * coarse[..., :1]) * (1.0 + 0.05 * rough * coarse[..., 1:])
    img = Image.fromarray(_to_uint8(blotch)).resize((size, size), Image.BICUBIC)
    # Uniform grain (std 0.17 * roughness): cheaper to draw than Gaussian and looks the same.
    grain = rng.random((size, size), dtype=np.float32) - 0.5
    arr = np.asarray(img, dtype=np.float32) * (1.0 + 0.6 * rough * grain)[..., None]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _vegetation(draw: ImageDraw.ImageDraw, habitat: Habitat, canvas: int, rng: np.random.Generator) -> None:
    """Grass blades (tapered triangles) and litter/pebbles, density from Habitat.vegetation."""
    n_blades = rng.poisson(60.0 * habitat.vegetation)
    if n_blades:
        mix = rng.random((n_blades, 2))
        rgb = (mix[:, :1] * _GRASS_GREEN + (1 - mix[:, :1]) * _GRASS_STRAW) * (0.5 + 0.4 * mix[:, 1:])
        rgb = 0.75 * rgb + 0.25 * np.asarray(habitat.ground_rgb)  # blades pick up the ambient ground tint
        bx = rng.uniform(-0.05, 1.05, n_blades) * canvas
        by = rng.uniform(0.15, 1.15, n_blades) * canvas
        length = rng.uniform(0.08, 0.35, n_blades) * canvas
        angle = rng.normal(0.0, 0.35, n_blades)
        half_w = rng.uniform(0.006, 0.016, n_blades) * canvas
        tri = np.stack(
            [bx - half_w, by, bx + half_w, by, bx + length * np.sin(angle), by - length * np.cos(angle)], axis=1
        )
        for xy, fill in zip(tri.tolist(), _rgb255_rows(rgb)):
            draw.polygon(xy, fill=fill)
    n_litter = rng.poisson(10.0 * habitat.vegetation)
    if n_litter:
        centre = rng.random((n_litter, 2)) * canvas
        radius = rng.uniform(0.01, 0.035, (n_litter, 2)) * canvas
        shade = rng.uniform(0.55, 1.35, (n_litter, 1))
        boxes = np.concatenate([centre - radius, centre + radius], axis=1)
        for box, fill in zip(boxes.tolist(), _rgb255_rows(shade * np.asarray(habitat.ground_rgb))):
            draw.ellipse(box, fill=fill)


def _relight(img: Image.Image, rng: np.random.Generator, nuisance: float) -> Image.Image:
    """Brightness, contrast and colour cast as one per-channel affine colour matrix (clipped in C)."""
    gain = 1.0 + nuisance * rng.uniform(-0.25, 0.25)
    contrast = 1.0 + nuisance * rng.uniform(-0.25, 0.2)
    cast = gain * (1.0 + nuisance * rng.normal(0.0, 0.05, 3))
    # out = ((in - 128) * contrast + 128) * cast
    scale, offset = contrast * cast, 128.0 * (1.0 - contrast) * cast
    matrix = (scale[0], 0.0, 0.0, offset[0], 0.0, scale[1], 0.0, offset[1], 0.0, 0.0, scale[2], offset[2])
    return img.convert("RGB", matrix)


def _bezier(p0: complex, p1: complex, p2: complex, u: np.ndarray) -> np.ndarray:
    return (1 - u) ** 2 * p0 + 2 * u * (1 - u) * p1 + u**2 * p2


# --------------------------------------------------------------------------
# Public API.


def render_photo(
    traits: FlowerTraits,
    habitat: Habitat,
    size: int,
    rng: np.random.Generator,
    nuisance: float = 1.0,
    style: CameraStyle | None = None,
) -> np.ndarray:
    """One photo, uint8 array (size, size, 3). All randomness from `rng` (deterministic for a seeded rng).

    ``nuisance`` scales every per-photo variation (0 = canonical centred view,
    1 = default strength, up to ``MAX_NUISANCE`` for exaggerated variation).
    ``style``: the observer's camera (:class:`CameraStyle`; its JPEG quality is the caller's), applied
    without drawing from ``rng``. Raises ValueError naming the offending argument or field.
    """
    if not isinstance(traits, FlowerTraits):
        raise ValueError(f"traits must be a FlowerTraits, got {type(traits).__name__}")
    if not isinstance(habitat, Habitat):
        raise ValueError(f"habitat must be a Habitat, got {type(habitat).__name__}")
    if not isinstance(size, numbers.Integral) or isinstance(size, bool) or size < MIN_SIZE:
        raise ValueError(f"size must be an integer >= {MIN_SIZE}, got {size!r}")
    _check_real("render_photo", "nuisance", nuisance, 0.0, MAX_NUISANCE)
    size = int(size)
    s = float(nuisance)
    canvas = size * _SUPERSAMPLE

    img = _ground(habitat, size, rng, s).resize((canvas, canvas), Image.NEAREST)
    draw = ImageDraw.Draw(img)
    _vegetation(draw, habitat, canvas, rng)

    radius = canvas * (_RADIUS_FRAC + s * rng.uniform(-_RADIUS_JITTER, _RADIUS_JITTER))
    centre = canvas * complex(0.5 + s * rng.uniform(-0.15, 0.15), 0.5 + s * rng.uniform(-0.15, 0.15))
    if style is not None:  # the observer's framing habit
        radius *= style.zoom
        centre += canvas * complex(*style.offset)
    outer = radius * (_PETAL_BASE_IN_DISC * traits.centre_size + traits.petal_length)
    if rng.random() < min(1.0, 0.15 * s):
        # Partial crop: push the flower over one edge so a fraction `cut` of its width is lost.
        vertical, far_side = rng.integers(2), rng.integers(2)
        cut = min(0.45, s * rng.uniform(0.15, 0.4))
        coord = outer * (1.0 - 2.0 * cut)
        coord = canvas - coord if far_side else coord
        centre = complex(centre.real, coord) if vertical else complex(coord, centre.imag)

    # Stem: quadratic Bezier from the flower down past the bottom edge.
    end = complex(centre.real + s * rng.uniform(-0.2, 0.2) * canvas, 1.05 * canvas)
    ctrl = 0.5 * (centre + end) + s * rng.uniform(-0.1, 0.1) * canvas
    draw.line(
        _xy(_bezier(centre, ctrl, end, np.linspace(0.0, 1.0, 9))),
        fill=_rgb255(traits.leaf_rgb, 0.85),
        width=max(2, int(0.07 * radius)),
        joint="curve",
    )

    n_leaves = traits.leaf_count
    if n_leaves:
        # Leaves start just below the flower head and alternate sides down the stem.
        u0 = min(0.75, 0.8 * outer / max(end.imag - centre.imag, 1.0))
        us = np.linspace(u0, 0.9, n_leaves) + s * rng.uniform(-0.04, 0.04, n_leaves)
        mirrored = rng.random() < 0.5 * min(1.0, s)  # which side the first leaf is on
        sides = np.where(np.arange(n_leaves) % 2 == 0, 1.0, -1.0) * (-1.0 if mirrored else 1.0)
        # Direction measured from "up" (-pi/2), leaning outwards by ~55 degrees.
        directions = -0.5 * np.pi + sides * np.radians(55.0 + s * rng.uniform(-20.0, 20.0, n_leaves))
        lengths = (
            radius * (1.12 if traits.leaf_shape == "linear" else 0.8) * (1.0 + s * rng.uniform(-0.15, 0.15, n_leaves))
        )
        shades = 1.0 + s * rng.normal(0.0, 0.06, n_leaves)
        for base, direction, length, shade in zip(
            _bezier(centre, ctrl, end, us).tolist(), directions.tolist(), lengths.tolist(), shades.tolist()
        ):
            _draw_leaf(draw, traits.leaf_shape, base, direction, length, traits.leaf_rgb, shade)

    _draw_flower(draw, traits, centre, radius, rng, s)
    if rng.random() < min(1.0, 0.2 * s):
        _draw_occluder(draw, traits, centre, radius, rng)

    img = img.reduce(_SUPERSAMPLE)  # box-filter antialiasing
    if rng.random() < min(1.0, 0.4 * s):
        img = img.filter(ImageFilter.GaussianBlur(s * rng.uniform(0.3, 1.0) * size / 64.0))
    img = _relight(img, rng, s)
    if style is not None:
        img = _camera(img, style, size)
    return np.array(img)  # a copy: np.asarray of a PIL image is read-only


def _camera(img: Image.Image, style: CameraStyle, size: int) -> Image.Image:
    """The observer's colour gains and sharpness (blur or unsharp mask)."""
    r, g, b = style.gains
    img = img.convert("RGB", (r, 0.0, 0.0, 0.0, 0.0, g, 0.0, 0.0, 0.0, 0.0, b, 0.0))
    if style.sharpness < 0:
        img = img.filter(ImageFilter.GaussianBlur(-style.sharpness * size / 64.0))
    elif style.sharpness > 0:
        img = img.filter(ImageFilter.UnsharpMask(radius=1.0, percent=int(round(100 * style.sharpness)), threshold=0))
    return img


def save_jpeg(image: np.ndarray, path: str | os.PathLike, quality: int = 90) -> None:
    """Write a uint8 (H, W, 3) array as a JPEG, creating parent folders.

    ``quality`` is PIL's JPEG quality, 1..95 (higher values only grow the file).
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be a uint8 (H, W, 3) array, got {image.dtype} {image.shape}")
    if not isinstance(quality, numbers.Integral) or not 1 <= quality <= 95:
        raise ValueError(f"quality must be an integer in [1, 95], got {quality!r}")
    # 4:4:4 chroma: default 4:2:0 subsampling smears petal colour over 2x2 blocks at thumbnail sizes.
    # No search for orphaned partial files: it lists the folder at every photo, which made rendering quadratic
    # (500,000 photos in 100 folders: 1,000 photos/s at the start, 290 at the end); the renderer's folder is a job
    # output that Snakemake deletes whole before it runs the job again.
    with atomic_path(path, remove_orphans=False) as partial:
        Image.fromarray(image).save(partial, format="JPEG", quality=int(quality), subsampling=0)
