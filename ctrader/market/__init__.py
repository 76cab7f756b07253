"""What a run trades: the universe (symbols, assets, triangles) and per-symbol book state."""
