"""Figures and tables of the results, each a pure function from data to a matplotlib Figure plus a thin CLI.

Figure numbers in the docstrings are those of the table of figures in docs/architecture.md.
"""
