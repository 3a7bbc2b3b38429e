"""Hue gaps between congeneric species of a synthetic world, next to the augmentation's hue range.

The species of a genus differ mainly by petal hue; a hue jitter wider than those gaps teaches an encoder to
ignore the main species cue. This prints, in the YIQ chroma plane that BatchAugment rotates, the angle between
the mean petal colours of every congeneric pair and from each species to its nearest congener::

    PYTHONPATH=src:tests python bench/measure/hue_gaps.py [config/config.yaml]
"""

from __future__ import annotations

import colorsys
import itertools
import sys
from pathlib import Path

import numpy as np
from conftest import load_config

from geocontrast.data.synthetic import generate_world

RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def angle_gap(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def main(config: Path) -> None:
    taxonomy = generate_world(load_config(config)["world"]).taxonomy
    hsv = taxonomy[["petal_h", "petal_s", "petal_v"]].to_numpy()
    yiq = np.array([colorsys.hsv_to_rgb(*colour) for colour in hsv]) @ RGB_TO_YIQ.T
    hue = np.degrees(np.arctan2(yiq[:, 2], yiq[:, 1]))
    pairs, nearest = [], []
    for _, genus in taxonomy.groupby("genus"):
        rows = genus.index.to_numpy()
        pairs += [angle_gap(hue[a], hue[b]) for a, b in itertools.combinations(rows, 2)]
        nearest += [min(angle_gap(hue[a], hue[b]) for b in rows if b != a) for a in rows if rows.size > 1]
    print(f"{config}: {len(taxonomy)} species in {taxonomy['genus'].nunique()} genera")
    for name, gaps in (("congeneric pairs", pairs), ("nearest congener", nearest)):
        values = ", ".join(f"p{round(q * 100)} {v:.1f}" for q, v in zip(QUANTILES, np.quantile(gaps, QUANTILES)))
        print(f"{name} ({len(gaps)}): hue gap in degrees {values}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("config/config.yaml"))
