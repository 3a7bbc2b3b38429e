"""The plant of a synthetic field photo: its traits and how its parts are drawn.

:class:`FlowerTraits` (validated on construction) is the heritable look of one plant. The rest draws it on a PIL
canvas for :mod:`geocontrast.data.render`, which composes the photo: the closed petal and leaf outlines
(complex-number geometry), the colour helpers, and the drawing of a leaf, of the flower head (petal ring and disc,
with the petal-width cap that keeps the petal count readable) and of an occluder over the flower.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass

import numpy as np
from PIL import ImageDraw

PETAL_SHAPES = ("ellipse", "pointed", "notched", "strap")
LEAF_SHAPES = ("lanceolate", "ovate", "linear", "lobed")

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
# The flower head and what may cover it.


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
