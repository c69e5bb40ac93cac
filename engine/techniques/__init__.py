"""Technique implementations, one module each, imported lazily by name from the catalog."""
