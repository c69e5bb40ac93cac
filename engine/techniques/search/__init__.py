"""optimize: a search across techniques within a time budget."""
