"""gunicorn settings read from the project root (the web process of `make run`, the Procfile and the benchmark)."""


def post_worker_init(worker):
    """Once a worker has loaded the application, keep its start-up objects out of full GC collections."""
    from navigator.processes import freeze_startup_objects

    freeze_startup_objects()
