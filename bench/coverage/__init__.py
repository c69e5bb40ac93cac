"""Coverage matrix: every technique over real public models that ship inside PyPI wheels."""
