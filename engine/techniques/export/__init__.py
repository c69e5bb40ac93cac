"""Techniques whose output is a model in another format than ONNX."""
