"""Uploaded models and their ingest."""
