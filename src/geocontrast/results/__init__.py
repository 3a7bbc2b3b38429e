"""The study's results from the evaluation records: the table (:mod:`.table`), the paired comparisons
(:mod:`.compare`), their intervals (:mod:`.intervals`) and their words (:mod:`.compare_text`); the comparisons
rule's CLI is :mod:`.comparisons`.

Files (``R = results/<dataset>``): ``R/results.csv``: one row per evaluation JSON, columns
:data:`geocontrast.evaluate.RESULT_COLUMNS`; ``R/results_summary.csv``: mean, std and n_seeds per (strategy,
protocol, label_fraction) (:func:`geocontrast.results.table.summarise`); ``R/comparisons.csv`` and
``comparisons.txt``: paired differences of every strategy against the reference and against ``random_init``, with
intervals (:mod:`geocontrast.results.compare`).
"""
