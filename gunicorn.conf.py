"""gunicorn settings read from the project root (the web process of `make run`, the Procfile and the benchmark)."""

# Idle connections are kept longer than the clients keep theirs (httpx and the OpenAI SDK: 5 s), so a
# client never sends a request on a connection the server is closing at that instant. With gunicorn's
# default of 2 s, the parse stage's upload to the local fake parser, about 2 s after its last poll,
# sometimes met a connection closed under it ("RemoteProtocolError"): a failed attempt and a retry.
keepalive = 10


def post_worker_init(worker):
    """Once a worker has loaded the application: load every view before the first request, and keep
    the start-up objects out of full garbage collections (navigator/processes.py)."""
    from navigator.processes import prepare_web_worker

    prepare_web_worker()
