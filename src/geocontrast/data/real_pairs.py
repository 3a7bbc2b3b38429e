"""What pairs of photos share in real collections: the calibration target of the synthetic world's geography.

:data:`REAL_RANGES` holds, per (fact, pair kind), the (low, high) share of pairs with the same fact in two
research-grade iNaturalist observation exports (a statewide one, 6,555 observations of 1,376 species; a 360 km²
protected area, 1,947 observations of 682 species; one photo per observation; context positives within 5 km drawn
as the neighbour table draws them; issue [R]). ``config/realistic.yaml`` is calibrated to them
(``bench/measure/pair_statistics.py``), the pairs figure draws them behind its bars and results_summary.txt sets the
collection's own context-positive purity beside them.
"""

REAL_RANGES = {
    ("species", "positive"): (0.006, 0.018),
    ("genus", "positive"): (0.010, 0.023),
    ("observer", "positive"): (0.27, 0.41),
    ("date", "positive"): (0.14, 0.17),
    ("species", "random"): (0.003, 0.004),
}


def range_text(fact: str, kind: str) -> str:
    """'0.6–1.8 %': the real range of (fact, kind) in percent."""
    low, high = REAL_RANGES[(fact, kind)]
    return f"{100 * low:.1f}–{100 * high:.1f} %"
