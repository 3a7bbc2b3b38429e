"""Procedural "field photo" renderer for the synthetic flora world.

One call to :func:`render_photo` turns the traits of one plant individual
(:class:`FlowerTraits`) and the place where it grows (:class:`Habitat`) into a
small RGB photo, roughly what a phone snapshot of a wild flower looks like when
shrunk to thumbnail size.

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

What it cannot show
    Bilaterally symmetric (orchid-, pea-like) flowers, composite or clustered
    inflorescences, side views, buds, fruit, several flowers per photo, petal
    venation or texture, hairs, true 3-D shading, shadows or depth of field,
    insects, and any trait not in :class:`FlowerTraits`.  Leaves are flat
    silhouettes with a midrib.  Everything is drawn with flat-filled polygons
    on a 2x supersampled canvas, so detail below about one output pixel is lost.
"""

from __future__ import annotations

import functools
import math
import numbers
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from geocontrast.atomic import atomic_path

PETAL_SHAPES = ("ellipse", "pointed", "notched", "strap")
LEAF_SHAPES = ("lanceolate", "ovate", "linear", "lobed")

MIN_SIZE = 16
MAX_NUISANCE = 2.0

_SUPERSAMPLE = 2
# Canonical flower radius as a fraction of the image width, and the +- range
# that full nuisance adds (radius 0.2..0.42 of the image at nuisance 1).
_RADIUS_FRAC = 0.31
_RADIUS_JITTER = 0.11
# Petals start this far out (in disc radii), i.e. hidden under the disc.
_PETAL_BASE_IN_DISC = 0.6
# Fraction of the arc between petal axes that one petal may fill; < 1 keeps a
# visible gap between neighbours.
_PETAL_ARC_FILL = 0.8


def _check_real(owner: str, name: str, value, lo: float, hi: float) -> None:
    if (
        not isinstance(value, numbers.Real)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not lo <= value <= hi
    ):
        raise ValueError(f"{owner}.{name} must be a number in [{lo}, {hi}], got {value!r}")


def _check_int(owner: str, name: str, value, lo: int, hi: int) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValueError(f"{owner}.{name} must be an integer in [{lo}, {hi}], got {value!r}")


def _check_rgb(owner: str, name: str, value) -> None:
    try:
        parts = tuple(value)
    except TypeError:
        parts = ()
    ok = len(parts) == 3 and all(
        isinstance(c, numbers.Real) and not isinstance(c, bool) and math.isfinite(c) and 0.0 <= c <= 1.0 for c in parts
    )
    if not ok:
        raise ValueError(f"{owner}.{name} must be three numbers in [0, 1], got {value!r}")


def _check_choice(owner: str, name: str, value, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{owner}.{name} must be one of {choices}, got {value!r}")


@dataclass(frozen=True)
class FlowerTraits:
    """Heritable look of one plant; validated on construction (ValueError names the field)."""

    petal_count: int  # 3..12 (genus-level)
    petal_shape: str  # one of PETAL_SHAPES (genus-level)
    petal_length: float  # petal length as a fraction of the flower radius, 0.5..1.0
    petal_width: float  # petal width / petal length, 0.15..0.8
    petal_rgb: tuple[float, float, float]  # 0..1
    centre_rgb: tuple[float, float, float]  # 0..1
    centre_size: float  # centre disc radius as a fraction of the flower radius, 0.1..0.45
    leaf_shape: str  # one of LEAF_SHAPES (family-level)
    leaf_rgb: tuple[float, float, float]
    leaf_count: int  # 0..6

    def __post_init__(self) -> None:
        owner = type(self).__name__
        _check_int(owner, "petal_count", self.petal_count, 3, 12)
        _check_choice(owner, "petal_shape", self.petal_shape, PETAL_SHAPES)
        _check_real(owner, "petal_length", self.petal_length, 0.5, 1.0)
        _check_real(owner, "petal_width", self.petal_width, 0.15, 0.8)
        _check_rgb(owner, "petal_rgb", self.petal_rgb)
        _check_rgb(owner, "centre_rgb", self.centre_rgb)
        _check_real(owner, "centre_size", self.centre_size, 0.1, 0.45)
        _check_choice(owner, "leaf_shape", self.leaf_shape, LEAF_SHAPES)
        _check_rgb(owner, "leaf_rgb", self.leaf_rgb)
        _check_int(owner, "leaf_count", self.leaf_count, 0, 6)


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


# --------------------------------------------------------------------------
# Geometry uses complex numbers for 2-D points (x + iy, y pointing down):
# rotation is a multiplication and the flat [x0, y0, x1, y1, ...] list PIL
# wants is a free reinterpretation of the complex array.


def _petal_profile(shape: str) -> np.ndarray:
    """Closed petal outline for a petal of length 1: x along the petal, y across (|y| <= ~0.5)."""
    t = np.linspace(0.0, 1.0, 13)
    tip = np.empty(0)
    if shape == "ellipse":
        w = np.sqrt(np.clip(1.0 - (2.0 * t - 1.0) ** 2, 0.0, None))
    elif shape == "pointed":
        # Widest at 40 % of the length, then a concave taper to a sharp tip.
        w = np.where(t < 0.4, np.sin(0.5 * np.pi * t / 0.4), ((1.0 - t) / 0.6) ** 1.4)
    elif shape == "notched":
        # Obovate (widest near the tip) with a V notch cut into the tip.
        w = np.minimum(1.0, (t / 0.7) ** 0.6)
        w = np.where(t > 0.8, w * np.sqrt(np.clip(1.0 - ((t - 0.8) / 0.25) ** 2, 0.0, None)), w)
        tip = np.array([0.7])
    else:  # strap: a ribbon (see _PETAL_WIDTH_MULT) with a blunt, squarish end
        w = np.minimum(1.0, np.sqrt(t / 0.1))
        w = np.where(t > 0.9, np.sqrt(np.clip(1.0 - ((t - 0.9) / 0.12) ** 2, 0.0, None)), w)
    w = 0.5 * _PETAL_WIDTH_MULT[shape] * w
    return np.concatenate([t + 1j * w, tip, t[::-1] - 1j * w[::-1]])


# Strap petals stay ribbons whatever the species' width ratio; notched ones are broad.
_PETAL_WIDTH_MULT = {"ellipse": 1.0, "pointed": 0.9, "notched": 1.1, "strap": 0.5}
# Leaf width / length per shape.
_LEAF_ASPECT = {"lanceolate": 0.24, "ovate": 0.6, "linear": 0.08, "lobed": 0.6}


def _leaf_profile(shape: str) -> np.ndarray:
    """Closed leaf outline for a leaf of length 1: x along the midrib, y across."""
    if shape == "lanceolate":
        t = np.linspace(0.0, 1.0, 11)
        w = np.sin(np.pi * t**0.8)
    elif shape == "ovate":
        t = np.linspace(0.0, 1.0, 11)
        w = np.sin(np.pi * t**0.6) ** 0.8
    elif shape == "linear":
        t = np.linspace(0.0, 1.0, 6)
        w = np.minimum(1.0, (1.0 - t) * 4.0)
    else:  # lobed
        t = np.linspace(0.0, 1.0, 25)
        w = np.sin(np.pi * t**0.7) * (0.55 + 0.45 * np.abs(np.sin(3.5 * np.pi * t)))
    w = 0.5 * _LEAF_ASPECT[shape] * w
    return np.concatenate([t + 1j * w, t[::-1] - 1j * w[::-1]])


_PETAL_TEMPLATES = {s: _petal_profile(s) for s in PETAL_SHAPES}
_LEAF_TEMPLATES = {s: _leaf_profile(s) for s in LEAF_SHAPES}
_CIRCLE = np.exp(2j * np.pi * np.arange(24) / 24)
_GRASS_GREEN = np.array([0.30, 0.48, 0.16])
_GRASS_STRAW = np.array([0.66, 0.60, 0.36])


def _xy(points: np.ndarray) -> list:
    """Complex points -> flat [x0, y0, x1, y1, ...] list (one list per row for 2-D input)."""
    return np.ascontiguousarray(points).view(np.float64).tolist()


def _to_uint8(rgb01: np.ndarray) -> np.ndarray:
    return np.clip(rgb01 * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _rgb255(rgb, factor: float = 1.0) -> tuple[int, int, int]:
    r, g, b = rgb
    k = 255.0 * factor
    return (min(255, max(0, int(r * k + 0.5))), min(255, max(0, int(g * k + 0.5))), min(255, max(0, int(b * k + 0.5))))


def _rgb255_rows(rgb01: np.ndarray) -> list[tuple[int, int, int]]:
    """Vectorised _rgb255 for an (n, 3) array: one PIL fill colour per row."""
    return [tuple(row) for row in _to_uint8(rgb01).tolist()]


def _draw_leaf(
    draw: ImageDraw.ImageDraw, shape: str, base: complex, direction: float, length: float, rgb, shade: float
) -> None:
    heading = length * complex(math.cos(direction), math.sin(direction))
    draw.polygon(_xy(base + heading * _LEAF_TEMPLATES[shape]), fill=_rgb255(rgb, shade))
    tip = base + 0.9 * heading
    draw.line([base.real, base.imag, tip.real, tip.imag], fill=_rgb255(rgb, 0.7 * shade), width=1)


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


@functools.lru_cache(maxsize=4096)
def _max_petal_width(shape: str, count: int, length: float, disc: float) -> float:
    """Largest petal_width (width/length) for which neighbouring petals keep a gap beyond the disc."""
    template = _PETAL_TEMPLATES[shape]
    r = _PETAL_BASE_IN_DISC * disc + template.real * length
    visible = (r > disc) & (template.imag > 1e-6)
    # The half-width at radius r may fill half of the permitted arc.
    limit = _PETAL_ARC_FILL * np.pi * r[visible] / count
    return float(np.min(limit / (template.imag[visible] * length)))


def _draw_flower(
    draw: ImageDraw.ImageDraw,
    traits: FlowerTraits,
    centre: complex,
    radius: float,
    rng: np.random.Generator,
    nuisance: float,
) -> None:
    n = traits.petal_count
    template = _PETAL_TEMPLATES[traits.petal_shape]
    width = min(traits.petal_width, _max_petal_width(traits.petal_shape, n, traits.petal_length, traits.centre_size))
    length = traits.petal_length * radius
    local = length * (template.real + 1j * width * template.imag) + _PETAL_BASE_IN_DISC * traits.centre_size * radius

    rotation = -0.5 * np.pi + nuisance * rng.uniform(-np.pi, np.pi)
    angles = rotation + 2 * np.pi * np.arange(n) / n + nuisance * rng.normal(0.0, 0.04 * np.pi / n, n)
    # Foreshortening of a tilted flower head: squash by `squash` across a random axis,
    # written as the complex-affine map z -> a z + b conj(z).
    tilt_axis = rng.uniform(0.0, np.pi)
    squash = 1.0 - nuisance * rng.uniform(0.0, 0.25)
    a = 0.5 * (1.0 + squash)
    b = 0.5 * (1.0 - squash) * complex(math.cos(2 * tilt_axis), math.sin(2 * tilt_axis))

    z = np.exp(1j * angles)[:, None] * local
    # Soft directional light from the upper left, plus per-petal irregularity.
    light = -0.75 * np.pi + nuisance * rng.uniform(-0.5 * np.pi, 0.5 * np.pi)
    shade = 1.0 + 0.07 * np.cos(angles - light) + nuisance * rng.normal(0.0, 0.03, n)
    edge = _rgb255(traits.petal_rgb, 0.72)
    fills = _rgb255_rows(shade[:, None] * np.asarray(traits.petal_rgb))
    for xy, fill in zip(_xy(centre + a * z + b * np.conj(z)), fills):
        draw.polygon(xy, fill=fill, outline=edge)

    disc = traits.centre_size * radius * _CIRCLE
    disc = a * disc + b * np.conj(disc)
    draw.polygon(_xy(centre + disc), fill=_rgb255(traits.centre_rgb), outline=_rgb255(traits.centre_rgb, 0.7))
    # Lit dome of the disc, offset toward the light.
    highlight = centre + 0.5 * disc + 0.2 * traits.centre_size * radius * complex(math.cos(light), math.sin(light))
    draw.polygon(_xy(highlight), fill=_rgb255(traits.centre_rgb, 1.15))


def _draw_occluder(
    draw: ImageDraw.ImageDraw, traits: FlowerTraits, centre: complex, radius: float, rng: np.random.Generator
) -> None:
    """A leaf, twig or grey blob covering part (never all) of the flower."""
    kind = rng.integers(3)
    direction = rng.uniform(0.0, 2 * np.pi)
    unit = complex(math.cos(direction), math.sin(direction))
    if kind == 0:  # a foreign leaf poking in from outside the flower
        shape = LEAF_SHAPES[rng.integers(len(LEAF_SHAPES))]
        rgb = 0.5 * np.asarray(traits.leaf_rgb) + 0.5 * _GRASS_GREEN
        base = centre + unit * radius * rng.uniform(0.9, 1.4)
        _draw_leaf(
            draw,
            shape,
            base,
            direction + np.pi + rng.normal(0.0, 0.3),
            radius * rng.uniform(0.7, 1.1),
            rgb,
            rng.uniform(0.7, 1.1),
        )
    elif kind == 1:  # a twig passing off-centre across the flower
        mid = centre + unit * radius * rng.uniform(0.25, 0.7)
        along = 1.5j * unit * radius
        rgb = np.array([0.36, 0.26, 0.16]) * rng.uniform(0.7, 1.3)
        draw.line(
            _xy(np.array([mid - along, mid + along])),
            fill=_rgb255(rgb),
            width=max(1, int(radius * rng.uniform(0.06, 0.12))),
        )
    else:  # out-of-focus stone or debris
        blob = centre + unit * radius * rng.uniform(0.5, 0.9)
        outline = blob + _CIRCLE * radius * rng.uniform(0.3, 0.55) * rng.uniform(0.8, 1.2, _CIRCLE.size)
        draw.polygon(_xy(outline), fill=_rgb255((1.0, 1.0, 1.0), rng.uniform(0.35, 0.7)))


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
    traits: FlowerTraits, habitat: Habitat, size: int, rng: np.random.Generator, nuisance: float = 1.0
) -> np.ndarray:
    """One photo, uint8 array (size, size, 3). All randomness from `rng` (deterministic for a seeded rng).

    ``nuisance`` scales every per-photo variation (0 = canonical centred view,
    1 = default strength, up to ``MAX_NUISANCE`` for exaggerated variation).
    Raises ValueError naming the offending argument or field.
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
    return np.array(_relight(img, rng, s))  # a copy: np.asarray of a PIL image is read-only


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
    with atomic_path(path) as partial:
        Image.fromarray(image).save(partial, format="JPEG", quality=int(quality), subsampling=0)
