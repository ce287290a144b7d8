"""Inference engines: a batch of preprocessed tensors in, raw named outputs out."""
