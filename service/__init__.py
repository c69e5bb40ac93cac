"""ModelPress HTTP side and shared persistence."""
