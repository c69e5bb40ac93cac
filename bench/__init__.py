"""The benchmark harness: reference models, compression recipes, and honest before/after figures."""
