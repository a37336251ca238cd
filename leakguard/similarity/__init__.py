"""Per-modality backends of the similarity checks (augmented, semantic, partial duplicates)."""
