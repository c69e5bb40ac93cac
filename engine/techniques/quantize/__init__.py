"""Quantization techniques: dynamic, static and fp16, and what they share."""
