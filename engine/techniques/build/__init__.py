"""Techniques that compile a model for one runtime (TensorRT engines)."""
