"""Compression jobs, their steps and their measured results."""
