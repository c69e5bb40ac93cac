"""Stored files: uploads, compressed models, reports."""
