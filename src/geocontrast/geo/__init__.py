"""Geography: unit-sphere coordinates, neighbour (positive) tables and negative tables (DESIGN.md §3, §6)."""
