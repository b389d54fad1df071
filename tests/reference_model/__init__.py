"""Tests of the reference model (4DGS, transformers, pipeline, training, exports)."""
