"""The collapse monitor: total collapse (features all one way), the effective rank, and the notes that name total
and partial collapse against the untrained encoder in the results summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_train_loop import FAST

from geocontrast.data.manifest import read_manifest
from geocontrast.geo.training_data import training_data
from geocontrast.models import build_encoder
from geocontrast.results.table import collapse_text
from geocontrast.train.monitor import Monitor, collapse_note, effective_rank
from geocontrast.train.settings import PretrainSettings


def test_collapse_monitor_flags_an_encoder_whose_features_all_point_one_way(tiny_inputs):
    class Constant(torch.nn.Module):
        feature_dim = 8

        def forward(self, images):
            return torch.ones(images.shape[0], self.feature_dim) + 1e-4 * images.mean(dim=(1, 2, 3))[:, None]

    manifest = read_manifest(tiny_inputs["manifest"])
    data = training_data(manifest, pd.read_parquet(tiny_inputs["splits"]))
    monitor = Monitor(
        np.load(tiny_inputs["cache"]),
        data,
        PretrainSettings.from_mapping(FAST),
        32,
        torch.device("cpu"),
        None,
        torch.contiguous_format,
    )
    assert monitor(Constant())["collapsed"]
    assert not monitor(build_encoder("cnn5"))["collapsed"]


def test_effective_rank_counts_the_directions_the_features_spread_over():
    rng = torch.Generator().manual_seed(0)
    spread = torch.randn(4000, 8, generator=rng)
    assert effective_rank(spread) == pytest.approx(8, rel=0.02)  # isotropic: every direction
    line = torch.randn(4000, 1, generator=rng) * torch.ones(1, 8)
    assert effective_rank(line) == pytest.approx(1, abs=1e-3)  # one direction, however many dimensions


def monitor_record(knn: float | None, rank: float, collapsed: bool = False, cosine: float = 0.5) -> dict:
    return {"knn_top1": knn, "effective_rank": rank, "collapsed": collapsed, "mean_pairwise_cosine": cosine}


def test_a_collapse_note_names_total_and_partial_collapse_against_the_untrained_encoder():
    start = monitor_record(0.30, 12.0)
    assert collapse_note(monitor_record(0.45, 14.0), start, peak_rank=14.0) == ""
    assert collapse_note(monitor_record(0.20, 14.0, collapsed=True, cosine=0.9995), start, 14.0).startswith("total")
    below = collapse_note(monitor_record(0.25, 13.0), start, peak_rank=14.0)  # kNN fell below its start
    assert below == "partial: online kNN top-1 0.250 below the untrained encoder's 0.300"
    fell = collapse_note(monitor_record(0.40, 6.0), start, peak_rank=14.0)  # rank fell below half its peak
    assert fell == "partial: effective rank 6.0 below 0.5 x its peak 14.0"
    assert collapse_note(monitor_record(None, 14.0), monitor_record(None, 12.0), 14.0) == ""  # no kNN: rank only


def test_the_results_summary_names_the_runs_that_collapsed():
    results = pd.DataFrame(
        {
            "strategy": ["simsiam", "simsiam", "augmented"],
            "seed": [2, 2, 0],
            "pretrain_label_fraction": [0, 0, 0],
            "pretrain_collapse": ["partial: online kNN top-1 0.2 below the untrained encoder's 0.3"] * 2 + [""],
        }
    )
    text = collapse_text(results)
    assert text.splitlines()[-1] == "simsiam seed 2: partial: online kNN top-1 0.2 below the untrained encoder's 0.3"
    assert "augmented" not in text and collapse_text(results.iloc[2:]) == ""
