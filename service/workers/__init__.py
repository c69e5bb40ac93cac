"""The worker registry: each worker process's row, its heartbeat, and who counts as alive."""
