"""Data (part "Data" of the book): synthetic ratings with a planted FM, streams of them,
MovieLens 100k, the sparse feature encoder, and relation blocks (libFM's BS format)."""
