"""Pruning techniques: magnitude, N:M and structured, and channel selection."""
