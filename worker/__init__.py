"""ModelPress workers: Celery tasks, the step pipeline, the sandbox and the techniques."""
