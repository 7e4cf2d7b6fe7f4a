"""Provider clients kept per process, so their connections are reused from one document to the next.

Creating an HTTP client loads the TLS trust store (~30 ms), and a kept connection saves a TLS
handshake per request. A forked process (a django-q2 worker, a gunicorn worker) starts with an empty
pool: it never uses, or closes, its parent's connections.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Callable


_pools: list["ClientPool"] = []


class ClientPool:
    def __init__(self) -> None:
        self._forget()
        os.register_at_fork(after_in_child=self._forget)
        _pools.append(self)

    def _forget(self) -> None:
        self._clients: dict[tuple, Any] = {}
        self._lock = threading.Lock()  # a lock held by another thread at fork time is not inherited held

    def get(self, key: tuple, make: Callable[[], Any]) -> Any:
        """The client for ``key`` in this process, made by ``make`` the first time."""
        with self._lock:
            if key not in self._clients:
                self._clients[key] = make()
            return self._clients[key]

    def close(self) -> None:
        """Close every kept client (before the provider they point at goes away, as in tests)."""
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


def close_all() -> None:
    """Close the kept clients of every provider (LlamaParse, OpenAI) in this process."""
    for pool in _pools:
        pool.close()
