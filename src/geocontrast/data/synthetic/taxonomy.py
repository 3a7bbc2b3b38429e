"""A seeded taxonomy kingdom -> species with heritable visual traits, niches, seasons and abundances.

Traits are inherited down the tree so that ranks are visually meaningful: a family fixes the leaf shape, a genus
fixes petal count and petal shape and a base colour, and the 2-5 species of a genus differ only by small shifts of
hue, saturation, proportions and centre colour. Species recognition is therefore fine-grained while genus and
family are easier, as in real floras.
"""

from __future__ import annotations

import colorsys

import numpy as np
import pandas as pd

from ..plant_drawing import PETAL_SHAPES, FlowerTraits
from .region import Region, offset_km

CLASSES = {
    # class -> (petal counts, leaf shapes) typical of it
    "Magnoliopsida": ((4, 5, 5, 8, 10), ("ovate", "lanceolate", "lobed")),
    "Liliopsida": ((3, 6), ("linear", "lanceolate")),
}
CENTRE_COLOURS = np.array(
    [(0.95, 0.80, 0.15), (0.90, 0.50, 0.10), (0.30, 0.18, 0.10), (0.95, 0.95, 0.85), (0.65, 0.75, 0.20)]
)
EPITHETS = (
    "alba",
    "rubra",
    "lutea",
    "purpurea",
    "caerulea",
    "montana",
    "palustris",
    "californica",
    "minor",
    "major",
    "gracilis",
    "elegans",
    "nana",
    "robusta",
    "hirsuta",
    "glabra",
    "pallida",
    "occidentalis",
    "borealis",
    "australis",
    "sylvatica",
    "aurea",
    "rosea",
    "violacea",
    "nivalis",
    "maritima",
    "arvensis",
    "crispa",
    "tenuis",
    "grandiflora",
)
SYLLABLES = (
    "ca",
    "lo",
    "mi",
    "ra",
    "ne",
    "ta",
    "phy",
    "lla",
    "sa",
    "vi",
    "tri",
    "co",
    "do",
    "ri",
    "ze",
    "bel",
    "li",
    "mon",
    "ar",
    "cto",
    "sta",
    "phi",
    "le",
    "nu",
    "ro",
    "the",
    "ga",
    "pe",
    "sil",
    "ver",
)
RANK_COLUMNS = ("species", "genus", "family", "order", "class", "phylum", "kingdom")


def _name_maker(rng: np.random.Generator):
    used: set[str] = set()

    def make(suffix: str) -> str:
        while True:
            stem = "".join(rng.choice(SYLLABLES, size=rng.integers(2, 4)))
            name = (stem + suffix).capitalize()
            if name not in used:
                used.add(name)
                return name

    return make


def _flower_hue(rng: np.random.Generator) -> float:
    """Flower hues avoid leaf green: blue, purple, pink, red, orange, yellow."""
    return float(rng.uniform(0.55, 1.17) % 1.0)


def make_taxonomy(taxonomy_params: dict, region: Region, params: dict, rng: np.random.Generator) -> pd.DataFrame:
    """One row per species: ranks, taxon_id, traits, niche, flowering season and relative abundance.

    taxonomy_params: n_orders, families_per_order, genera_per_family [lo, hi], species_per_genus [lo, hi].
    params: the world config (sympatric_genus_fraction, abundance_exponent, season_length).
    """
    name = _name_maker(rng)
    rows = []
    class_names = list(CLASSES)
    for order_index in range(taxonomy_params["n_orders"]):
        class_name = class_names[order_index % len(class_names)]
        petal_counts, leaf_shapes = CLASSES[class_name]
        order = name("ales")
        for _ in range(taxonomy_params["families_per_order"]):
            family = name("aceae")
            family_traits = {
                "leaf_shape": str(rng.choice(leaf_shapes)),
                "leaf_hsv": (rng.uniform(0.22, 0.36), rng.uniform(0.45, 0.8), rng.uniform(0.35, 0.65)),
                "leaf_count": int(rng.integers(1, 5)),
            }
            lo, hi = taxonomy_params["genera_per_family"]
            for _ in range(int(rng.integers(lo, hi + 1))):
                rows.extend(
                    _genus_rows(
                        name,
                        rng,
                        taxonomy_params,
                        params,
                        region,
                        petal_counts,
                        {"order": order, "family": family, "class": class_name},
                        family_traits,
                    )
                )
    taxonomy = pd.DataFrame(rows)
    taxonomy.insert(0, "taxon_id", [str(100001 + i) for i in range(len(taxonomy))])
    taxonomy["phylum"] = "Tracheophyta"
    taxonomy["kingdom"] = "Plantae"
    # Long-tailed abundance: Zipf weights over a random ranking of species.
    rank = rng.permutation(len(taxonomy)) + 1
    abundance = 1.0 / rank ** params["abundance_exponent"]
    taxonomy["abundance"] = abundance / abundance.sum()
    # Scaled after every draw, so the rest of the world is the same at any season_length.
    taxonomy["flowering_width_days"] *= params["season_length"]
    return taxonomy


def _genus_rows(name, rng, taxonomy_params, params, region, petal_counts, ranks, family_traits) -> list[dict]:
    genus = name(str(rng.choice(["a", "us", "um", "is"])))
    hue = _flower_hue(rng)
    saturation, value = rng.uniform(0.45, 0.9), rng.uniform(0.7, 1.0)
    petal_count = int(rng.choice(petal_counts))
    petal_shape = str(rng.choice(PETAL_SHAPES))
    petal_length, petal_width = rng.uniform(0.6, 0.95), rng.uniform(0.25, 0.65)
    centre_index, centre_size = int(rng.integers(len(CENTRE_COLOURS))), rng.uniform(0.15, 0.35)
    flowering_peak = rng.uniform(40, 200)
    niche = {
        "elevation_opt": rng.uniform(0.1, 0.9),
        "moisture_opt": rng.uniform(0.1, 0.9),
        "niche_width": rng.uniform(0.12, 0.3),
    }
    range_centre = region.sample_uniform(1, rng)[0]
    range_km = float(np.exp(rng.normal(np.log(250), 0.6)))
    sympatric = rng.random() < params["sympatric_genus_fraction"]

    lo, hi = taxonomy_params["species_per_genus"]
    n_species = int(rng.integers(lo, hi + 1))
    epithets = rng.choice(EPITHETS, size=n_species, replace=False)
    hue_steps = rng.permutation(n_species) - (n_species - 1) / 2
    rows = []
    for k in range(n_species):
        if sympatric:  # congeners share a range and a niche, with small differences
            species_niche = {
                key: float(np.clip(v + rng.normal(0, 0.05), 0.02, 0.98)) if key != "niche_width" else float(v)
                for key, v in niche.items()
            }
            species_centre = offset_km(range_centre[None], rng.normal(0, 30, (1, 2)))[0]
            species_range_km = range_km * rng.uniform(0.7, 1.3)
        else:
            species_niche = {
                "elevation_opt": rng.uniform(0.1, 0.9),
                "moisture_opt": rng.uniform(0.1, 0.9),
                "niche_width": rng.uniform(0.12, 0.3),
            }
            species_centre = region.sample_uniform(1, rng)[0]
            species_range_km = float(np.exp(rng.normal(np.log(250), 0.6)))
        centre = centre_index if rng.random() < 0.6 else int(rng.integers(len(CENTRE_COLOURS)))
        rows.append(
            {
                "species": f"{genus} {epithets[k]}",
                "genus": genus,
                **ranks,
                "sympatric_genus": bool(sympatric),
                "petal_count": petal_count,
                "petal_shape": petal_shape,
                "petal_h": float((hue + 0.035 * hue_steps[k] + rng.normal(0, 0.005)) % 1.0),
                "petal_s": float(np.clip(saturation + rng.normal(0, 0.08), 0.2, 1.0)),
                "petal_v": float(np.clip(value + rng.normal(0, 0.06), 0.45, 1.0)),
                "petal_length": float(np.clip(petal_length * rng.uniform(0.88, 1.12), 0.5, 1.0)),
                "petal_width": float(np.clip(petal_width * rng.uniform(0.85, 1.15), 0.15, 0.8)),
                "centre_r": CENTRE_COLOURS[centre][0],
                "centre_g": CENTRE_COLOURS[centre][1],
                "centre_b": CENTRE_COLOURS[centre][2],
                "centre_size": float(np.clip(centre_size + rng.normal(0, 0.04), 0.1, 0.45)),
                "leaf_shape": family_traits["leaf_shape"],
                "leaf_h": family_traits["leaf_hsv"][0],
                "leaf_s": family_traits["leaf_hsv"][1],
                "leaf_v": family_traits["leaf_hsv"][2],
                "leaf_count": family_traits["leaf_count"],
                "flowering_peak_doy": float((flowering_peak + rng.normal(0, 15)) % 365),
                "flowering_width_days": float(rng.uniform(18, 40)),
                **species_niche,
                "range_lon": float(species_centre[0]),
                "range_lat": float(species_centre[1]),
                "range_km": float(species_range_km),
            }
        )
    return rows


def individual_traits(species: pd.Series, rng: np.random.Generator) -> FlowerTraits:
    """Traits of one plant: its species' traits with small individual variation (shared by its photos)."""
    hue = (species.petal_h + rng.normal(0, 0.012)) % 1.0
    saturation = np.clip(species.petal_s + rng.normal(0, 0.04), 0.0, 1.0)
    value = np.clip(species.petal_v + rng.normal(0, 0.04), 0.0, 1.0)
    leaf = colorsys.hsv_to_rgb(species.leaf_h, species.leaf_s, np.clip(species.leaf_v + rng.normal(0, 0.05), 0, 1))
    return FlowerTraits(
        petal_count=int(species.petal_count),
        petal_shape=str(species.petal_shape),
        petal_length=float(np.clip(species.petal_length * rng.normal(1, 0.04), 0.5, 1.0)),
        petal_width=float(np.clip(species.petal_width * rng.normal(1, 0.05), 0.15, 0.8)),
        petal_rgb=tuple(float(c) for c in colorsys.hsv_to_rgb(hue, saturation, value)),
        centre_rgb=(float(species.centre_r), float(species.centre_g), float(species.centre_b)),
        centre_size=float(np.clip(species.centre_size + rng.normal(0, 0.02), 0.1, 0.45)),
        leaf_shape=str(species.leaf_shape),
        leaf_rgb=tuple(float(c) for c in leaf),
        leaf_count=int(np.clip(species.leaf_count + rng.integers(-1, 2), 0, 6)),
    )
