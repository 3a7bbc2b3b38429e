"""Geography: unit-sphere coordinates, neighbour (positive) and negative tables (docs/architecture.md: contracts)."""
