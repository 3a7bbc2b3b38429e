"""Collect evaluation JSONs into ``results.csv`` and summarise them over seeds."""

from __future__ import annotations

import pandas as pd

from geocontrast.evaluate import METRIC_COLUMNS

GROUP_COLUMNS = ("strategy", "protocol", "label_fraction")


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof 1; NaN for one seed) and n_seeds of every metric per (strategy, protocol, label_fraction).

    Columns: the group columns, ``n_seeds``, then ``<metric>_mean`` and ``<metric>_std`` for each metric
    of :data:`geocontrast.evaluate.METRIC_COLUMNS` present in ``results``.
    """
    metrics = [column for column in METRIC_COLUMNS if column in results.columns]
    grouped = results.groupby(list(GROUP_COLUMNS), sort=False)
    summary = grouped[metrics].agg(["mean", "std"])
    summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]
    summary.insert(0, "n_seeds", grouped["seed"].nunique())
    return summary.reset_index()
