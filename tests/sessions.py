"""Another worker, for tests of races: a thread with its own database session."""
from __future__ import annotations

import threading
import time
from typing import Callable

from django.db import connections


def when_seen(condition: Callable[[], bool], act: Callable[[], None], *, timeout: float = 20,
              every: float = 0.01) -> threading.Thread:
    """On a thread of its own (its own database session, closed at the end), look at ``condition``
    every ``every`` seconds and run ``act`` once it holds; give up after ``timeout`` seconds without
    acting (the test then sees that nothing happened). Returns the started thread."""
    def watch():
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if condition():
                    act()
                    return
                time.sleep(every)
        finally:
            connections.close_all()

    thread = threading.Thread(target=watch)
    thread.start()
    return thread
