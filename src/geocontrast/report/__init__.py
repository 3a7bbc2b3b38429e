"""Figures and tables of the results, each a pure function from data to a matplotlib Figure plus a thin CLI."""
