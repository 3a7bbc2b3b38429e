"""Pair diagnostics: what a strategy's positives, extra negatives and masked items share, next to random pairs.

The answer to "why does a strategy win or lose" is often in its pairs: how many context positives show the
anchor's species (or only its observer), whether geo negatives are really of other species, which pairs the
geo-near mask removes. :func:`pair_diagnostics` counts that over a sample of the strategy's own batches, drawn
with a separate random stream so training is unchanged, and :func:`fallback_causes` says why anchors got an
augmented view of themselves instead of a neighbour (:func:`observation_fallbacks`: instead of another photo of
their observation), :func:`negative_fallbacks` why geo negatives are random draws, :func:`mask_coverage` how much of
each anchor's contrast the geo-near mask removes, the strategy's auxiliary terms (``auxiliary``:
:meth:`~geocontrast.strategies.base.Strategy.auxiliary_diagnostics`) what their targets reach, and
:func:`fallback_notes` says all that in words (``notes``: results_summary.txt and the report list them). The
training loop writes the result as ``pairs.json`` beside ``metrics.jsonl`` and warns (:func:`fallback_warnings`)
when every geographic positive or negative fell back, or the mask left no anchor a negative. A strategy whose
pairs follow the encoder (``context_filtered``'s appearance filter) has them drawn after training, from the final
encoder's embeddings (``drawn_after_training`` true): the pairs the filter has come to; early in training its
pairs lie between those and ``context_pos``'s uniform draw.

Pair kinds (each a list of (row, partner) manifest-row pairs):

- ``positive``: (anchor, positive) where the positive is another photo; ``self_share`` counts the rest (two
  views of the anchor: every pair of ``augmentation`` positives, the fallbacks of ``neighbour`` ones);
- ``negative``: (anchor, its own extra negative);
- ``masked``: (anchor, in-batch anchor) and (anchor, extra negative) pairs masked as false negatives, excluding
  an anchor masked against its own row;
- ``random``: (anchor, a uniform other row of the strategy's negative pool), the baseline.

For each kind: ``n`` pairs, then the share of pairs with the same species, genus, family, observer and
observation date (over the pairs where both rows have that fact; ``n_<fact>`` is that count) and distance
quantiles in km (over the pairs where both rows have coordinates). A kind the strategy's batches do not have
(no positive view, no negative view, no ``mask`` option) is null.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from geocontrast.geo.coords import chord_to_km, unit_vectors
from geocontrast.strategies.base import PairBatch, Strategy, observation_positives, random_negatives

FACTS = ("species", "genus", "family", "observer_id", "observed_on")
"""Manifest columns compared between the two rows of a pair (as ``same_<column>``)."""
SHARE_NAMES = {"observer_id": "observer", "observed_on": "date"}
DISTANCE_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
MAX_BATCHES = 64
"""Batches sampled per job: one epoch of the embedded world (~22 batches of 128), bounded on large data."""


def fact_codes(manifest: pd.DataFrame) -> dict[str, np.ndarray]:
    """(N,) int64 codes per :data:`FACTS` column (equal values share a code; missing: -1) and ``unit`` (N, 3)
    unit vectors, NaN rows where the row has no usable coordinates (``has_coords``)."""
    codes = {column: pd.factorize(manifest[column].reset_index(drop=True))[0].astype(np.int64) for column in FACTS}
    usable = manifest["has_coords"].to_numpy(bool)
    lat = np.where(usable, manifest["lat"].to_numpy(np.float64, na_value=np.nan), np.nan)
    lon = np.where(usable, manifest["lon"].to_numpy(np.float64, na_value=np.nan), np.nan)
    return {**codes, "unit": unit_vectors(lat, lon)}


def pair_summary(facts: dict[str, np.ndarray], rows: np.ndarray, partners: np.ndarray) -> dict:
    """Shares of same facts and distance quantiles over the pairs (rows[i], partners[i]); None where no pair has
    the fact."""
    rows, partners = np.asarray(rows, dtype=np.int64), np.asarray(partners, dtype=np.int64)
    summary: dict = {"n": int(rows.size)}
    for column in FACTS:
        a, b = facts[column][rows], facts[column][partners]
        known = (a >= 0) & (b >= 0)
        name = SHARE_NAMES.get(column, column)
        summary[f"n_{name}"] = int(known.sum())
        summary[f"same_{name}"] = float((a[known] == b[known]).mean()) if known.any() else None
    diff = facts["unit"][rows] - facts["unit"][partners]  # (n, 3), NaN where either row has no coordinates
    chord = np.sqrt((diff * diff).sum(axis=1))
    km = chord_to_km(chord[np.isfinite(chord)])
    summary["n_distance"] = int(km.size)
    summary["distance_km"] = (
        {f"p{round(q * 100)}": float(np.quantile(km, q)) for q in DISTANCE_QUANTILES} if km.size else None
    )
    return summary


def batch_pairs(batch: PairBatch) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The (rows, partners) of each pair kind one batch has (see the module docstring): ``positive`` with a
    positive view, ``negative`` with a negative view, ``masked`` with a false-negative mask."""
    anchors = batch.views["anchor"]
    pairs = {}
    if "positive" in batch.views:
        positive = batch.views["positive"]
        moved = positive != anchors
        pairs["positive"] = (anchors[moved], positive[moved])
    if "negative" in batch.views:
        pairs["negative"] = (anchors, batch.views["negative"])
    masks = [
        (mask, partners)
        for mask, partners in (
            (batch.false_negatives, anchors),
            (batch.extra_false_negatives, batch.views.get("negative")),
        )
        if mask is not None
    ]
    if masks:
        rows, partners = [], []
        for mask, candidates in masks:
            i, j = np.nonzero(mask)
            other = anchors[i] != candidates[j]  # an anchor masked against its own row is no geo-near pair
            rows.append(anchors[i[other]])
            partners.append(candidates[j[other]])
        pairs["masked"] = (np.concatenate(rows), np.concatenate(partners))
    return pairs


def fallback_causes(strategy: Strategy, anchors: np.ndarray) -> dict | None:
    """Why ``neighbour`` positives of ``anchors`` are the anchor itself, by cause; None for other strategies.

    ``no_coordinates``; ``no_neighbour_within_r`` (flagged by the table, nothing usable in its row);
    ``neighbours_outside_split`` (its row holds neighbours, none of them allowed under ``pairs_from``). Also
    ``nearest_beyond_r``: flagged anchors that get their nearest photo beyond the radius (fallback ``nearest``).
    """
    if strategy.options.get("positive") != "neighbour":
        return None
    table, allowed = strategy.data.neighbours, strategy.allowed
    starts, ends = table.indptr[anchors], table.indptr[anchors + 1]
    if allowed is None:
        usable = ends > starts
    else:
        allowed_so_far = np.r_[0, np.cumsum(allowed[table.indices])]  # allowed entries before each table slot
        usable = allowed_so_far[ends] > allowed_so_far[starts]
    located = table.has_coords[anchors]
    flagged = table.fallback[anchors] & located
    return {
        "n_anchors": int(anchors.size),
        "no_coordinates": int((~located).sum()),
        "no_neighbour_within_r": int((flagged & ~usable).sum()),
        "neighbours_outside_split": int((located & ~flagged & ~usable).sum()),
        "nearest_beyond_r": int((flagged & usable).sum()),
    }


def observation_fallbacks(strategy: Strategy, anchors: np.ndarray) -> dict | None:
    """Why ``observation`` positives of ``anchors`` are the anchor itself, by cause; None for other strategies.

    ``single_photo`` (its observation has no other photo); ``other_photos_outside_split`` (it has others, none of
    them allowed under ``pairs_from``)."""
    if strategy.options.get("positive") != "observation":
        return None
    indptr, indices = strategy.data.observation_photos
    others = indptr[anchors + 1] - indptr[anchors]
    _, found = observation_positives(strategy.data, anchors, np.random.default_rng(0), strategy.allowed)
    return {
        "n_anchors": int(anchors.size),
        "single_photo": int((others == 0).sum()),
        "other_photos_outside_split": int(((others > 0) & ~found).sum()),
    }


def negative_fallbacks(strategy: Strategy, anchors: np.ndarray) -> dict | None:
    """How many ``geo`` negatives of ``anchors`` are random draws instead, by cause (``no_coordinates``; the
    table's ``fallback``: no candidate under its rule); None for strategies without geo negatives."""
    if "geo" not in (strategy.options.get("negative"), strategy.options.get("extra_negatives")):
        return None
    located = np.isfinite(strategy.data.unit[anchors]).all(axis=1)
    return {
        "n_anchors": int(anchors.size),
        "no_coordinates": int((~located).sum()),
        "no_candidate_under_rule": int((strategy.data.negatives.fallback[anchors] & located).sum()),
    }


def mask_coverage(strategy: Strategy, batches: list[PairBatch]) -> dict | None:
    """How much of the anchors' contrast the geo-near mask removes; None without the ``mask`` option.

    ``n_anchors``; ``masked_share``: the masked share of the (anchor, other item) pairs, in-batch and extra
    negatives (an anchor drawn as its own extra negative is no pair), each pair counted by the share of its
    denominator weight taken away (1 under the hard mask, its degree in [0, 1] under a soft one);
    ``without_negatives``: anchors whose every negative is wholly masked, so their loss term has nothing to
    contrast with (every photo at one site)."""
    if not strategy.options.get("mask"):
        return None
    n_anchors = pairs = masked = without = 0
    for batch in batches:
        anchors = batch.views["anchor"]
        in_batch = np.asarray(batch.false_negatives, dtype=float) * ~np.eye(anchors.size, dtype=bool)
        candidates, removed = np.full(anchors.size, anchors.size - 1), in_batch.sum(axis=1)
        if batch.extra_false_negatives is not None:
            other = anchors[:, None] != batch.views["negative"][None, :]  # (B, E)
            candidates = candidates + other.sum(axis=1)
            removed = removed + (np.asarray(batch.extra_false_negatives, dtype=float) * other).sum(axis=1)
        n_anchors += anchors.size
        pairs += int(candidates.sum())
        masked += float(removed.sum())
        without += int((removed >= candidates).sum())
    return {"n_anchors": n_anchors, "masked_share": masked / pairs if pairs else 0.0, "without_negatives": without}


CAUSE_TEXTS = {
    "no_coordinates": "without coordinates",
    "no_neighbour_within_r": "with no neighbour within the radius",
    "neighbours_outside_split": "with neighbours only outside the split",
    "single_photo": "whose observation has one photo",
    "other_photos_outside_split": "whose observation's other photos lie outside the split",
}


def fallback_notes(record: dict) -> list[dict]:
    """What of a pairs.json ``record``'s geographic pairs fell back, and why: one note per kind with any, each
    ``what`` (geographic positives, observation positives, geographic negatives, negatives left by the geo-near
    mask), ``why`` (the share of sampled anchors, its causes and what they got instead) and ``every`` (true when
    all anchors did: the strategy's pairs of that kind then carry no geography, or no other photo)."""
    rule = record.get("negative_rule") or {}
    random_km = ((record["pairs"].get("random") or {}).get("distance_km") or {}).get("p50")
    spread = "" if random_km is None else f"; its photos lie a median {random_km:.3g} km apart"
    causes_text = {**CAUSE_TEXTS, "no_candidate_under_rule": f"with no photo {negative_rule_text(rule)}{spread}"}
    notes = []
    for key, what, instead, consequence in (
        ("fallbacks", "geographic positives", "the anchor itself", "its geographic positives carry no geography"),
        ("observation_fallbacks", "observation positives", "the anchor itself", "it trains as augmented SimCLR"),
        ("negative_fallbacks", "geographic negatives", "random photos", "its geographic negatives carry no geography"),
    ):
        counts = record.get(key)
        if not counts or not counts["n_anchors"]:
            continue
        causes = {cause: n for cause, n in counts.items() if cause not in ("n_anchors", "nearest_beyond_r") and n}
        if causes:
            share = sum(causes.values()) / counts["n_anchors"]
            detail = ", ".join(f"{n} {causes_text[cause]}" for cause, n in causes.items())
            why = f"{_percent(share)} of the {counts['n_anchors']} sampled anchors fell back to {instead} ({detail})"
            notes.append(_note(what, why, share, consequence))
    for term, share_key, what in (
        ("location", "located_share", "the image-location term"),
        ("pretext", "targeted_share", "the geographic-cluster term"),
    ):
        covered = ((record.get("auxiliary") or {}).get(term) or {}).get(share_key)
        if covered is not None and covered < 1:
            why = f"{_percent(1 - covered)} of the {record['n_anchors']} sampled anchors have no coordinates"
            notes.append(_note(what, why, 1 - covered, "the term adds nothing"))
    mask = record.get("mask")
    if mask and mask["without_negatives"]:
        share = mask["without_negatives"] / mask["n_anchors"]
        why = (
            f"{_percent(share)} of the {mask['n_anchors']} sampled anchors had every negative masked as geo-near"
            f" (within {rule.get('false_negative_radius_km', float('nan')):g} km{spread});"
            f" {_percent(mask['masked_share'])} of all pairs masked"
        )
        consequence = "the loss contrasts nothing, no gradient"
        notes.append(_note("negatives left by the geo-near mask", why, share, consequence))
    return notes


def _note(what: str, why: str, share: float, consequence: str) -> dict:
    every = share == 1.0
    return {"what": what, "why": f"{why}: {consequence}" if every else why, "every": every}


def negative_rule_text(rule: dict) -> str:
    """The negative table's rule in words: "under rule far (beyond 50 km)"."""
    if rule.get("rule") == "far":
        return f"under rule far (beyond {rule['r_neg_km']:g} km)"
    if rule.get("rule") == "band":
        return f"under rule band ({rule['band_km'][0]:g}-{rule['band_km'][1]:g} km)"
    return "under the negative rule"


def _percent(share: float) -> str:
    """A share as a percentage that says 0 % and 100 % only when exact."""
    if 0 < share < 0.01:
        return "< 1 %"
    if 0.99 < share < 1:
        return "> 99 %"
    return f"{100 * share:.0f} %"


def fallback_warnings(record: dict) -> list[str]:
    """Loud sentences for the notes of a pairs.json ``record`` (:func:`fallback_notes`) that concern every anchor:
    every geographic (or observation) positive or negative fell back (the strategy then trains on the anchor itself
    or on random negatives: no geography at all), or the mask left no negative."""
    return [f"{record['strategy']}: {note['what']}: {note['why']}" for note in fallback_notes(record) if note["every"]]


def sample_batches(
    strategy: Strategy, batch_size: int, rng: np.random.Generator, max_batches: int = MAX_BATCHES
) -> list[PairBatch]:
    """Up to ``max_batches`` batches of one epoch as the loop draws them: a permutation of the anchors cut into
    batches of ``batch_size``, each sampled by the strategy from ``rng``."""
    order = rng.permutation(strategy.anchor_rows())
    n_batches = min(max_batches, max(1, order.size // batch_size))
    return [strategy.sample(order[i * batch_size : (i + 1) * batch_size], rng) for i in range(n_batches)]


def pair_diagnostics(manifest: pd.DataFrame, strategy: Strategy, batches: list[PairBatch], rng) -> dict:
    """The pairs.json record of ``strategy`` over ``batches`` (module docstring); ``rng`` draws the random pairs."""
    facts = fact_codes(manifest)
    drawn: dict[str, list] = {}
    for batch in batches:
        for kind, pair in batch_pairs(batch).items():
            drawn.setdefault(kind, []).append(pair)
    summaries = {
        kind: pair_summary(facts, *(np.concatenate(side) for side in zip(*drawn[kind]))) if kind in drawn else None
        for kind in ("positive", "negative", "masked")
    }
    if not strategy.options.get("mask"):
        summaries["masked"] = None  # only an anchor against its own row is masked: no geo-near pairs to show
    anchors = np.concatenate([batch.views["anchor"] for batch in batches])
    if summaries["positive"] is not None:
        summaries["positive"]["self_share"] = 1.0 - summaries["positive"]["n"] / anchors.size
    summaries["random"] = pair_summary(facts, anchors, random_negatives(anchors, strategy.negative_pool(), rng))
    negatives = strategy.data.negatives
    record = {
        "strategy": strategy.name,
        "options": strategy.options,
        "n_batches": len(batches),
        "n_anchors": int(anchors.size),
        "pairs": summaries,
        "drawn_after_training": strategy.follows_encoder,
        "fallbacks": fallback_causes(strategy, anchors),
        "observation_fallbacks": observation_fallbacks(strategy, anchors),
        "negative_fallbacks": negative_fallbacks(strategy, anchors),
        "mask": mask_coverage(strategy, batches),
        "auxiliary": strategy.auxiliary_diagnostics(batches),
        "negative_rule": None
        if negatives is None
        else {**negatives.params, "false_negative_radius_km": negatives.false_negative_radius_km},
    }
    return {**record, "notes": fallback_notes(record)}
