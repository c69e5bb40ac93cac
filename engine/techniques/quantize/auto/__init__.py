"""quantize.auto: prepare, measure, search, advise."""
