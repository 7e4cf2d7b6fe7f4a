"""Serve this project (and so the fakes under /fakes/) on a free loopback port in a background thread.

For commands that need the fake providers when no web server is running (``eval_search``,
``bench_search``): the OpenAI SDK then talks real HTTP to the fakes, as it would to the service.
"""
from __future__ import annotations

import contextlib
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.core.handlers.wsgi import WSGIHandler
from django.db import connections


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # one line per request would drown the command's output
        pass


class _ClosingWSGIHandler(WSGIHandler):
    """Each request thread closes its database connection when done, so none is left open."""

    def __call__(self, environ, start_response):
        try:
            return super().__call__(environ, start_response)
        finally:
            connections.close_all()


@contextlib.contextmanager
def serve_in_thread():
    """Yield the base URL (``http://127.0.0.1:PORT``) of this project served until the block ends."""
    server = make_server("127.0.0.1", 0, _ClosingWSGIHandler(), server_class=_ThreadingServer,
                         handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="fakes-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
