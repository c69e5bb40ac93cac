"""The `modelpress` command line."""
