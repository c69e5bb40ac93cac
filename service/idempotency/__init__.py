"""Idempotency keys for uploads: replay a finished request, refuse a different or concurrent one."""
