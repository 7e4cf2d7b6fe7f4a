"""Settings of the fakes-only server: the project's settings (same database, keys and knobs), serving
only the fakes. Plain HTTP JSON APIs, so no sessions, CSRF or HTTPS redirect middleware."""
from navigator.settings import *  # noqa: F401,F403

ROOT_URLCONF = "fakes.server.urls"
MIDDLEWARE: list[str] = []
