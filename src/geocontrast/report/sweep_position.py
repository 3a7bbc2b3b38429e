"""A collection on the map of when geography helps: a purity sweep's curves (its sweep.csv) with the collection's
own context-positive purity drawn across every panel.

    python -m geocontrast.report.sweep_position --sweep results/sweeps/purity/sweep.csv \\
        --pairs results/<dataset>/pretrain/*/seed*/pairs.json --out results/<dataset>/report/sweep_position.png

The purity is :func:`geocontrast.results.table.context_purity` of the runs' pairs.json (the uniform neighbour
positives' share of the anchor's species), the same number results_summary.txt reads the curves at. A reading of
the synthetic map at this purity, not a prediction for the collection.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from geocontrast.cli import exit_without_teardown
from geocontrast.report.style import save_figure
from geocontrast.report.sweep import crossovers, read_sweep_table, sweep_figure
from geocontrast.results.table import context_purity, read_pair_records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m geocontrast.report.sweep_position", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--sweep", required=True, type=Path, help="a purity sweep's sweep.csv")
    parser.add_argument("--pairs", required=True, type=Path, nargs="+", help="the collection's pairs.json files")
    parser.add_argument("--out", required=True, type=Path, help="figure .png (an .svg is written beside it)")
    args = parser.parse_args(argv)
    table = read_sweep_table(args.sweep)
    if table.empty:
        parser.error(f"{args.sweep}: no finished sweep point to draw (run the sweep's summarise when it has one)")
    purity = context_purity(read_pair_records(args.pairs))
    mark = None if purity is None else (purity["species"], "this collection's context positives")
    if mark is None:
        print("no run drew uniform context positives: the collection is not marked on the map", file=sys.stderr)
    save_figure(sweep_figure(table, crossovers(table), mark=mark), args.out)
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
