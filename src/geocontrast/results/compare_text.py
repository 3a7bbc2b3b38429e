"""comparisons.txt: the paired comparisons in words (:mod:`geocontrast.results.compare` computes them).

It opens with the primary comparison in one sentence (:func:`primary_words`), then one short line per exploratory
comparison of the first metric with its Holm-adjusted p and verdict (:func:`plain_words`), then what the geographic
prior adds to each strategy (:func:`prior_gain_words`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from geocontrast.evaluate import PROTOCOL_TITLES
from geocontrast.results.compare import METRIC_NAMES, CompareSettings
from geocontrast.results.intervals import MAX_REPLICATES, POWER, floor_exceeds


def points(value: float, sign: bool = True) -> str:
    """A fraction as percentage points with one decimal and a true minus sign."""
    return f"{100 * value:{'+' if sign else ''}.1f}".replace("-", "\u2212")


def to_resolve_words(row) -> str:
    """Why an unresolved comparison is unresolved, and what would resolve it (:func:`replicates_to_resolve`)."""
    needed = row["replicates_to_resolve"]
    if np.isnan(needed):
        return ""
    if np.isinf(needed):
        if floor_exceeds(row["diff"], row["sd"], row["photo_se"], row["rho"], row["planning_confidence"]):
            if row["photo_se"] > 0:
                return "the test photos' own sampling error exceeds the difference: more replicates cannot resolve it"
            return "replicates of one photo pool share its photos, which alone exceed the difference: more photos would"
        return f"more than {MAX_REPLICATES} replicates for {POWER:.0%} power"
    return f"~{needed:.0f} replicates for {POWER:.0%} power"


def interval_words(row) -> str:
    """'−12.4 [−20.4, −4.4]' in points (no interval below two replicates or without spread)."""
    interval = "" if np.isnan(row["low"]) else f" [{points(row['low'])}, {points(row['high'])}]"
    return f"{points(row['diff'])}{interval}"


def primary_words(comparisons: pd.DataFrame, settings: CompareSettings) -> str:
    """The opening sentence: the primary comparison's difference, interval, verdict and who is ahead."""
    if settings.primary is None:
        return "No primary comparison is declared (compare.primary: null): every line below is exploratory.\n"
    primary = settings.primary
    title = PROTOCOL_TITLES.get(primary["protocol"], primary["protocol"])
    what = (
        f"{primary['strategy']} minus {primary['reference']}, {title}, {primary['label_fraction']:g}% labels, "
        f"{METRIC_NAMES[primary['metric']]}"
    )
    rows = comparisons[comparisons["role"] == "primary"]
    if rows.empty:
        return f"Primary comparison ({what}): not in this run (a strategy or protocol of it did not run).\n"
    row = rows.iloc[0]
    words = f"{interval_words(row)} points"
    if row["n_pairs"] > 1 and not np.isnan(row["low"]):
        words += f" ({row['confidence']:.0%} {row['interval']} interval, n={row['n_pairs']} replicates)"
    words += f": {row['verdict']}"
    if row["verdict"] == "resolved":
        words += f", {row['strategy'] if row['diff'] > 0 else row['reference']} ahead"
    elif row["verdict"] == "unresolved" and to_resolve_words(row):
        words += f" ({to_resolve_words(row)})"
    return f"Primary comparison ({what}): {words}.\n"


def plain_words(comparisons: pd.DataFrame, settings: CompareSettings | None = None) -> str:
    """comparisons.txt's opening: the primary comparison in one sentence, then one short line per exploratory
    comparison of the first compared metric (the others are in comparisons.csv), with its Holm-adjusted p. The
    heading names the interval the lines carry; where they carry several, each line names its own. ``settings``:
    those the comparisons were made with (None: the defaults)."""
    settings = settings or CompareSettings()
    if comparisons.empty:
        return "Paired comparisons: none (the results hold no strategy to compare with the reference or random_init).\n"
    metric = settings.metrics[0]
    shown = comparisons[(comparisons["role"] == "exploratory") & (comparisons["metric"] == metric)]
    family = int(comparisons.loc[comparisons["role"] == "exploratory", "p_value"].notna().sum())
    intervals = sorted(set(shown.loc[shown["n_pairs"] > 1, "interval"]))
    lines = [
        primary_words(comparisons, settings),
        f"Exploratory comparisons, \u0394{METRIC_NAMES[metric]} in points (strategy minus reference, mean over "
        f"replicates [{settings.confidence:.0%} interval: {', '.join(intervals) or 'none'}]); p adjusted by Holm "
        f"over all {family} exploratory tests, replicates to resolve planned at their Bonferroni level; "
        f"{', '.join(METRIC_NAMES[m] for m in settings.metrics[1:]) or 'no other metric'} in comparisons.csv:",
    ]
    table = []
    for row in shown.to_dict("records"):
        note = to_resolve_words(row) if row["verdict"] == "unresolved" else ""
        table.append(
            [
                f"{row['strategy']} \u2212 {row['reference']}",
                PROTOCOL_TITLES.get(row["protocol"], row["protocol"]),
                f"{row['label_fraction']:g}%",
                interval_words(row),
                "\u2013" if np.isnan(row["p_adjusted"]) else f"{row['p_adjusted']:.3f}",
                row["verdict"] + (f" ({note})" if note else ""),
                f"n={row['n_pairs']}",
            ]
        )
    header = ["comparison", "protocol", "labels", "difference", "p (Holm)", "verdict", "n"]
    if len(intervals) > 1:  # the heading cannot name each line's interval: the lines do
        header.append("interval")
        table = [[*cells, row["interval"]] for cells, row in zip(table, shown.to_dict("records"))]
    lines += aligned(header, table)
    return "\n".join(lines) + "\n"


def aligned(header: list[str], rows: list[list[str]]) -> list[str]:
    """Lines of a plain-text table, columns left-aligned to their widest cell, two spaces apart."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    return [
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [header, *rows]
    ]


def prior_gain_words(gains: pd.DataFrame, confidence: float = 0.95) -> str:
    """The comparisons.txt section on the prior (:func:`prior_gains`); empty when no result has a prior."""
    if gains.empty:
        return ""
    intervals = sorted(set(gains.loc[gains["n"] > 1, "interval"]))
    lines = [
        "",
        f"What the geographic prior adds (calibrated combination, weight chosen on val): \u0394top-1 in points, with"
        f" the prior minus without, same model and test photos, mean over replicates [{confidence:.0%} interval:"
        f" {', '.join(intervals) or 'none'}];"
        f" p adjusted by Holm over these {int(gains['p_value'].notna().sum())} gains:",
    ]
    table = [
        [
            row["strategy"],
            PROTOCOL_TITLES.get(row["protocol"], row["protocol"]),
            f"{row['label_fraction']:g}%",
            interval_words(row),
            "\u2013" if np.isnan(row["p_adjusted"]) else f"{row['p_adjusted']:.3f}",
            row["verdict"],
            f"n={row['n']}",
        ]
        for row in gains.to_dict("records")
    ]
    lines += aligned(["strategy", "protocol", "labels", "gain", "p (Holm)", "verdict", "n"], table)
    return "\n".join(lines) + "\n"
