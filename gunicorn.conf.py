"""gunicorn settings read from the project root (the web process of `make run`, the Procfile and the benchmark)."""


def post_worker_init(worker):
    """Once a worker has loaded the application: load every view before the first request, and keep
    the start-up objects out of full garbage collections (navigator/processes.py)."""
    from navigator.processes import prepare_web_worker

    prepare_web_worker()
