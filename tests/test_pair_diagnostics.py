"""Pair diagnostics (pairs.json) against brute-force counts over the tiny world's sampled batches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geocontrast.geo.coords import great_circle_km
from geocontrast.strategies import build_strategy
from geocontrast.strategies.diagnostics import fallback_causes, negative_fallbacks, pair_diagnostics, sample_batches
from geocontrast.train.settings import PretrainSettings

FACT_COLUMNS = {"species": "species", "genus": "genus", "family": "family", "observer": "observer_id"}


def brute_force(manifest: pd.DataFrame, pairs: list[tuple[int, int]]) -> dict:
    """Shares of same facts and median distance over explicit (row, partner) pairs, one pair at a time."""
    records = manifest.to_dict("records")
    result = {"n": len(pairs)}
    for name, column in {**FACT_COLUMNS, "date": "observed_on"}.items():
        both = [(records[a][column], records[b][column]) for a, b in pairs]
        both = [(x, y) for x, y in both if not pd.isna(x) and not pd.isna(y)]
        result[f"same_{name}"] = sum(x == y for x, y in both) / len(both) if both else None
    km = [
        great_circle_km(records[a]["lat"], records[a]["lon"], records[b]["lat"], records[b]["lon"])
        for a, b in pairs
        if records[a]["has_coords"] and records[b]["has_coords"]
    ]
    result["p50"] = float(np.median(km)) if km else None
    return result


def listed_pairs(batches) -> dict[str, list[tuple[int, int]]]:
    pairs = {"positive": [], "negative": [], "masked": []}
    for batch in batches:
        anchors = batch.views["anchor"]
        positive, negative = batch.views["positive"], batch.views["negative"]
        for i, a in enumerate(anchors):
            if positive[i] != a:
                pairs["positive"].append((a, positive[i]))
            pairs["negative"].append((a, negative[i]))
            for j, b in enumerate(anchors):
                if batch.false_negatives[i, j] and a != b:
                    pairs["masked"].append((a, b))
            for j, b in enumerate(negative):
                if batch.extra_false_negatives[i, j] and a != b:
                    pairs["masked"].append((a, b))
    return pairs


def test_pair_shares_and_distances_match_a_brute_force_count(tiny_data):
    manifest, data = tiny_data
    strategy = build_strategy("context_pos_neg", data, PretrainSettings())
    batches = sample_batches(strategy, batch_size=32, rng=np.random.default_rng(0))
    record = pair_diagnostics(manifest, strategy, batches, np.random.default_rng(1))
    pairs = listed_pairs(batches)
    assert len(batches) == strategy.anchor_rows().size // 32
    for kind in ("positive", "negative", "masked"):
        expected, got = brute_force(manifest, pairs[kind]), record["pairs"][kind]
        assert expected["n"] == got["n"] > 0
        for name in (*FACT_COLUMNS, "date"):
            assert got[f"same_{name}"] == pytest.approx(expected[f"same_{name}"]), (kind, name)
        assert got["distance_km"]["p50"] == pytest.approx(expected["p50"], rel=1e-6)
    n_anchors = sum(batch.views["anchor"].size for batch in batches)
    assert record["pairs"]["positive"]["self_share"] == pytest.approx(1 - len(pairs["positive"]) / n_anchors)
    assert record["pairs"]["random"]["n"] == n_anchors
    # geography shows: positives are nearer than random pairs, geo negatives farther
    p50 = {kind: record["pairs"][kind]["distance_km"]["p50"] for kind in ("positive", "negative", "random")}
    assert p50["positive"] < p50["random"] < p50["negative"]


def test_strategies_without_a_view_or_mask_report_that_kind_as_null(tiny_data):
    manifest, data = tiny_data
    strategy = build_strategy("augmented", data, PretrainSettings())
    record = pair_diagnostics(
        manifest, strategy, sample_batches(strategy, 32, np.random.default_rng(0)), np.random.default_rng(1)
    )
    assert record["pairs"]["negative"] is None and record["pairs"]["masked"] is None
    assert record["pairs"]["positive"]["n"] == 0 and record["pairs"]["positive"]["self_share"] == 1.0
    assert record["fallbacks"] is None


def test_fallback_causes_match_a_brute_force_count(tiny_data):
    manifest, data = tiny_data
    strategy = build_strategy("context_pos", data, PretrainSettings())
    anchors = strategy.anchor_rows()
    table = data.neighbours
    expected = {"no_coordinates": 0, "no_neighbour_within_r": 0, "neighbours_outside_split": 0, "nearest_beyond_r": 0}
    for a in anchors:
        row = table.indices[table.indptr[a] : table.indptr[a + 1]]
        usable = any(data.split[r] == "train" for r in row)
        if not manifest["has_coords"].iloc[a]:
            expected["no_coordinates"] += 1
        elif table.fallback[a]:
            expected["nearest_beyond_r" if usable else "no_neighbour_within_r"] += 1
        elif not usable:
            expected["neighbours_outside_split"] += 1
    causes = fallback_causes(strategy, anchors)
    assert causes == {"n_anchors": anchors.size, **expected}
    assert min(causes[key] for key in ("no_coordinates", "no_neighbour_within_r", "neighbours_outside_split")) > 0
    # every cause is a fallback: exactly those anchors get their own row as the positive
    positive = strategy.sample(anchors, np.random.default_rng(0)).views["positive"]
    assert (positive == anchors).sum() == sum(expected[key] for key in expected if key != "nearest_beyond_r")


def test_negative_fallbacks_count_anchors_without_coordinates_and_flagged_rows(tiny_data):
    manifest, data = tiny_data
    anchors = build_strategy("context_pos_neg", data, PretrainSettings()).anchor_rows()
    located = manifest["has_coords"].to_numpy(bool)[anchors]
    expected = {
        "n_anchors": anchors.size,
        "no_coordinates": int((~located).sum()),
        "no_candidate_under_rule": int((data.negatives.fallback[anchors] & located).sum()),
    }
    assert negative_fallbacks(build_strategy("context_pos_neg", data, PretrainSettings()), anchors) == expected
    assert expected["no_coordinates"] > 0
    assert (
        negative_fallbacks(build_strategy("context_pos", data, PretrainSettings()), anchors) is None
    )  # no geo negatives


def test_a_soft_mask_counts_each_pair_by_the_weight_it_takes_away(tiny_data):
    manifest, data = tiny_data
    record = {}
    for name, options in (("hard", {}), ("half", {"near_weight": 0.5})):
        strategy = build_strategy("context_pos_neg", data, PretrainSettings(options=options))
        batches = sample_batches(strategy, 32, np.random.default_rng(0))
        record[name] = pair_diagnostics(manifest, strategy, batches, np.random.default_rng(1))["mask"]
    assert record["hard"]["masked_share"] > 0
    # The same batches (the draw does not depend on the weight), each geo-near pair half-discounted.
    assert record["half"]["masked_share"] == pytest.approx(record["hard"]["masked_share"] / 2)
    assert record["half"]["without_negatives"] == 0
