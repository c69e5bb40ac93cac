"""The shared training loop for bridged models: data, loss, schedule, validation."""
