"""The task queue's broker: django-q2's ORM broker, woken by PostgreSQL NOTIFY.

django-q2's ORM broker finds new messages by polling its table: when the queue is empty the pusher
sleeps ``poll`` seconds before looking again, so every message waits half a poll interval on average
before a worker starts it, and each of a document's five stages pays that wait. This broker is the
same table, the same row locking and the same messages (a cluster using the plain ORM broker works
beside it); it adds two things:

- ``enqueue`` sends ``NOTIFY`` on one channel after writing the message (delivered when the message's
  transaction commits, so a woken pusher always finds it);
- an idle pusher waits on a ``LISTEN`` connection of its own for up to ``poll`` seconds instead of
  sleeping, and looks at the table as soon as a notification arrives.

Polling stays the safety net: a notification lost while the listening connection reconnects, or a
message whose lock expired (redelivery after ``retry``), is found at the next poll as before.
"""
from __future__ import annotations

import logging
import os
import select
import time
from contextlib import nullcontext

import psycopg2
import psycopg2.extensions
from django.db import DatabaseError, connections, transaction
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf

logger = logging.getLogger(__name__)

CHANNEL = "django_q_enqueued"


class NotifyingORM(ORM):
    """The ORM broker with a NOTIFY on enqueue and a LISTEN wait in place of the idle sleep."""

    _listener: psycopg2.extensions.connection | None = None
    _listener_pid: int | None = None
    _listen_retry_at = 0.0  # after a failed connect, poll alone until then
    wakeups = 0  # waits this broker object ended on an announcement rather than at the poll interval

    def enqueue(self, task):
        task_id = super().enqueue(task)
        connection = connections[Conf.ORM]
        try:
            # inside a transaction, a savepoint keeps a failed NOTIFY from spoiling the caller's work
            with transaction.atomic(using=Conf.ORM) if connection.in_atomic_block else nullcontext():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, self.list_key])
        except DatabaseError:
            # the message is stored: an idle pusher finds it at its next poll
            logger.warning("could not announce a new task-queue message; it starts at the next poll")
        return task_id

    def dequeue(self):
        # LISTEN before looking at the table: a message enqueued between the look and the wait
        # leaves its notification on the connection and the wait returns at once. Notifications
        # received so far are for messages the look below will see: they are read off now, so they
        # do not pile up while a backlog keeps the pusher from waiting.
        listening = self._listen() is not None and self._heard() is not None
        tasks = self.get_connection().filter(key=self.list_key, lock__lt=timezone.now())[0:Conf.BULK]
        if tasks:
            claimed = []
            for task in tasks:
                # the same claim as the ORM broker: only the cluster whose update moves the lock takes it
                if self.get_connection().filter(id=task.id, lock=task.lock).update(lock=self.timeout(task)):
                    claimed.append((task.pk, task.payload))
            return claimed
        if listening:
            self.wait(Conf.POLL)
        else:
            time.sleep(Conf.POLL)
        return None

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for a message of this queue to be announced; True if one was.
        Notifications for other queues (another QCLUSTER_NAME on the same database) are read and ignored."""
        if self._listen() is None:
            time.sleep(seconds)
            return False
        deadline = time.monotonic() + seconds
        while True:
            heard = self._heard()
            if heard is None:  # the connection failed: poll alone for a while, then listen again
                self._listen_retry_at = time.monotonic() + seconds
                return False
            if heard:
                self.wakeups += 1
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                select.select([self._listener], [], [], remaining)
            except (OSError, ValueError):
                pass  # the next read reports the failure

    def _heard(self) -> bool | None:
        """Read what the listening connection received: True if a message of this queue was announced,
        None if the connection failed (it is dropped)."""
        listener = self._listener
        try:
            listener.poll()
        except (psycopg2.Error, OSError, ValueError):
            logger.warning("the task queue's listening connection failed; polling until it reconnects")
            self._drop_listener()
            return None
        ours = any(notify.payload == self.list_key for notify in listener.notifies)
        listener.notifies.clear()
        return ours

    def _listen(self) -> psycopg2.extensions.connection | None:
        """This process's listening connection (made on first use, made again after a fork or a failure)."""
        if self._listener is not None and self._listener_pid == os.getpid() and not self._listener.closed:
            return self._listener
        self._listener = None  # a parent's connection is never used (or closed) by a forked child
        if time.monotonic() < self._listen_retry_at:
            return None
        try:
            params = connections[Conf.ORM].get_connection_params()
            params.pop("cursor_factory", None)
            # An idle connection a firewall or NAT dropped without a word would leave the pusher waiting
            # out every poll; TCP keepalives notice it within a minute (settings given in OPTIONS win).
            for name, value in (("keepalives", 1), ("keepalives_idle", 30), ("keepalives_interval", 10),
                                ("keepalives_count", 3), ("application_name", "navigator queue listener")):
                params.setdefault(name, value)
            listener = psycopg2.connect(**params)
            listener.set_session(autocommit=True)
            with listener.cursor() as cursor:
                cursor.execute(f'LISTEN "{CHANNEL}"')
        except (psycopg2.Error, OSError):
            logger.warning("the task queue cannot LISTEN for new messages; polling every %s s for a minute",
                           Conf.POLL)
            self._listen_retry_at = time.monotonic() + 60
            return None
        self._listener, self._listener_pid = listener, os.getpid()
        return listener

    def _drop_listener(self) -> None:
        if self._listener is not None and self._listener_pid == os.getpid():
            try:
                self._listener.close()
            except psycopg2.Error:
                pass
        self._listener = None

    def close(self) -> None:
        """Close this process's listening connection (a stopping pusher, a test)."""
        self._drop_listener()
