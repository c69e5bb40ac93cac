"""Fault injection: killed workers, restarted servers, concurrency and memory under load."""
