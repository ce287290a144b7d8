"""Model adapters: per-family preprocessing and postprocessing, chosen by the manifest."""
