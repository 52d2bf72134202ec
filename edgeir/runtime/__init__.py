"""Running models and artifacts on this host: the eager reference runner, tiling for photos of any size,
whole-photo inputs of tiled programs, restoring photos, and ``verify`` (artifact vs reference)."""
