"""The results table: a row per strategy x protocol x label fraction, each metric as 'mean ± std' in percent.

Input is ``results.csv`` (columns :data:`geocontrast.evaluate.RESULT_COLUMNS`; metrics are fractions in [0, 1])
and, optionally, results.py's ``not_computed.csv``, listed below the table as what could not be computed and why.
:func:`write_table` writes it as Markdown, CSV and HTML (the HTML report shows HTML inline). The report CLI
(:mod:`geocontrast.report.results_figures`) writes it with ``table``::

    python -m geocontrast.report.results_figures table --results results.csv --out results_table.md \\
        [--not-computed not_computed.csv]
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from geocontrast.atomic import atomic_path
from geocontrast.evaluate import CLASSIFICATION_METRIC_COLUMNS
from geocontrast.report.panels import as_percent, require_columns, species_summary

TABLE_METRICS = ("top1", "top5", "macro_top1", "prior_top1", "prior_top5")


def metric_label(metric: str) -> str:
    """Column header of a metric, e.g. 'top-1', 'macro top-5', 'geo-prior gain top-5', 'genus top-1'."""
    for prefix, name in (("prior_gain_", "geo-prior gain "), ("prior_", "with geo prior "), ("macro_", "macro ")):
        if metric.startswith(prefix):
            return name + metric_label(metric[len(prefix) :])
    if metric.startswith("acc_"):
        return f"{metric[4:]} top-1"
    return metric.replace("top", "top-")


def results_table(results: pd.DataFrame, *, metrics: Sequence[str] = TABLE_METRICS) -> pd.DataFrame:
    """One row per strategy x protocol x label fraction: seeds, and each metric as 'mean ± std' in percent.

    Gains are signed; a metric a row lacks (the baseline has no prior) is '–'; one seed shows the mean alone.
    """
    unknown = [m for m in metrics if m not in CLASSIFICATION_METRIC_COLUMNS]
    if unknown:
        raise ValueError(f"unknown table metrics {unknown}; known: {list(CLASSIFICATION_METRIC_COLUMNS)}")
    require_columns(results, metrics, "results table")
    summary = species_summary(results)
    table = pd.DataFrame(
        {
            "strategy": summary["strategy"],
            "protocol": summary["protocol"],
            "labels (%)": [f"{f:g}" for f in summary["label_fraction"].astype(float)],
            "seeds": summary["n_seeds"].astype(int),
        }
    )
    for metric in metrics:
        sign = "+" if metric.startswith("prior_gain_") else ""
        cells = []
        for mean, std in zip(as_percent(summary, metric), summary[f"{metric}_std"].to_numpy(float) * 100):
            if np.isnan(mean):
                cells.append("–")
            else:
                cells.append(f"{mean:{sign}.1f}" + ("" if np.isnan(std) else f" ± {std:.1f}"))
        table[f"{metric_label(metric)} (%)"] = cells
    return table


TABLE_NOTE = "Test accuracy in percent, mean ± std over seeds (ddof 1); seeds: number of seeds per row."
NOT_COMPUTED_TITLE = "What could not be computed and why"


def not_computed_lines(not_computed: pd.DataFrame | None) -> list[str]:
    """The rows of results.py's not_computed.csv (level, what, where, why) as sentences, warnings marked."""
    if not_computed is None:
        return []
    return [
        f"{'WARNING ' if row.level == 'warning' else ''}{row.what} ({row.where}): {row.why}"
        for row in not_computed.itertuples(index=False)
    ]


def table_markdown(table: pd.DataFrame, not_computed: pd.DataFrame | None = None) -> str:
    """A GitHub-flavoured Markdown table (text columns left-aligned, numbers right-aligned) with its note, then
    what could not be computed and why (when anything could not)."""
    columns = list(table.columns)
    align = [":---" if c in ("strategy", "protocol") else "---:" for c in columns]
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    missing = not_computed_lines(not_computed)
    if missing:
        lines += ["", f"{NOT_COMPUTED_TITLE}:", "", *(f"- {line}" for line in missing)]
    return "\n".join([TABLE_NOTE, "", *lines]) + "\n"


def table_html(table: pd.DataFrame, not_computed: pd.DataFrame | None = None) -> str:
    """A standalone HTML page of the table (Snakemake's report shows HTML inline, Markdown and CSV only as files),
    then what could not be computed and why, warnings in bold."""
    style = (
        "body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse}"
        " th,td{padding:3px 9px;border-bottom:1px solid #ddd;text-align:right}"
        " th:nth-child(-n+2),td:nth-child(-n+2){text-align:left}"
    )
    missing = "".join(
        f"<li>{'<b>' + escape(line) + '</b>' if line.startswith('WARNING') else escape(line)}</li>"
        for line in not_computed_lines(not_computed)
    )
    section = f"<h3>{NOT_COMPUTED_TITLE}</h3><ul>{missing}</ul>" if missing else ""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style></head><body>"
        f"<p>{TABLE_NOTE}</p>{table.to_html(index=False, border=0)}{section}</body></html>\n"
    )


def write_table(table: pd.DataFrame, markdown_path: Path, not_computed: pd.DataFrame | None = None) -> list[Path]:
    """Write ``markdown_path`` and the same table as .csv and .html beside it (each atomically); returns the paths.
    ``not_computed`` (results.py's not_computed.csv) adds its section to the Markdown and HTML pages."""
    markdown_path = Path(markdown_path)
    paths = [markdown_path, markdown_path.with_suffix(".csv"), markdown_path.with_suffix(".html")]
    writers = (
        lambda path: path.write_text(table_markdown(table, not_computed)),
        lambda path: table.to_csv(path, index=False),
        lambda path: path.write_text(table_html(table, not_computed)),
    )
    for path, write in zip(paths, writers):
        with atomic_path(path) as partial:
            write(partial)
    return paths
