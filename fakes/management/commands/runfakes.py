"""Serve only the LlamaParse and OpenAI fakes, on a multi-threaded gunicorn.

    python manage.py runfakes --port 8001 [--host 0.0.0.0] [--workers 2] [--threads 8]

Job state and fault knobs live in the database, so any number of workers (or servers) answer for
the same jobs. The process becomes gunicorn (exec), so signals reach it directly: SIGTERM stops
gracefully, SIGINT at once.
"""
from __future__ import annotations

import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, connections

from fakes import faults as fault_knobs
from fakes.models import FakeParseJob, FakeRequest, FaultSettings


class Command(BaseCommand):
    help = "Serve only the LlamaParse and OpenAI fakes (gunicorn, threaded) for other programs and docker-compose."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("FAKES_HOST", "127.0.0.1"),
                            help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)")
        parser.add_argument("--port", type=int, default=int(os.environ.get("FAKES_PORT", 8001)),
                            help="port to listen on (default 8001)")
        parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
        # A request hanging on a timeout fault holds its thread: keep enough for the rest.
        parser.add_argument("--threads", type=int, default=8, help="threads per worker (default 8)")
        parser.add_argument("--access-log", action="store_true", help="log every request to stdout")

    def handle(self, *args, host: str, port: int, workers: int, threads: int, access_log: bool, **options):
        if not 0 < port < 65536:
            raise CommandError(f"--port must be between 1 and 65535, not {port}.")
        if workers < 1 or threads < 1:
            raise CommandError("--workers and --threads must be at least 1.")
        try:
            fault_knobs.Faults.from_env()
        except ValueError as exc:
            raise CommandError(f"A FAKE_* environment variable is wrong: {exc}.") from exc
        tables = set(connection.introspection.table_names())
        missing = {m._meta.db_table for m in (FakeParseJob, FaultSettings, FakeRequest)} - tables
        if missing:
            raise CommandError(f"The fakes' tables are missing ({', '.join(sorted(missing))}): "
                               "run `python manage.py migrate` first.")
        connections.close_all()  # nothing of this process's state may leak into the server

        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        argv = [sys.executable, "-m", "gunicorn", "fakes.server.wsgi:application", "--chdir", str(settings.BASE_DIR),
                "--bind", bind, "--worker-class", "gthread", "--workers", str(workers), "--threads", str(threads),
                "--graceful-timeout", "5", "--name", "navigator-fakes",
                # One control socket per user by default: several servers on one machine would share it.
                "--no-control-socket"]
        if access_log:
            argv += ["--access-logfile", "-"]
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="fakes.server.settings")
        shown = host if host not in ("0.0.0.0", "::") else "127.0.0.1"
        self.stdout.write(f"Fakes on http://{shown}:{port}: LlamaParse base URL http://{shown}:{port}, "
                          f"OpenAI base URL http://{shown}:{port}/v1 (also under /fakes/ as in the app).")
        self.stdout.flush()
        os.execve(sys.executable, argv, env)
