"""The task queue's broker: messages wake an idle pusher through PostgreSQL NOTIFY, on the real database."""
from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import OrmQ

from navigator.broker import CHANNEL, NotifyingORM
from tests.sessions import when_seen

pytestmark = pytest.mark.django_db(transaction=True)  # NOTIFY is delivered at commit


@pytest.fixture
def broker():
    broker = NotifyingORM(list_key="broker-test")
    yield broker
    broker.close()
    OrmQ.objects.filter(key="broker-test").delete()


def test_the_configured_broker_is_the_notifying_orm_broker():
    assert isinstance(get_broker(), NotifyingORM)


def _listening_backends() -> set[int]:
    """Server processes of this database that LISTEN for new messages (other than this connection)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = %s "
                       "AND pid <> pg_backend_pid()", [f'LISTEN "{CHANNEL}"'])
        return {pid for pid, in cursor.fetchall()}


def _enqueue_once_polled(payload: str, pusher_backend: int) -> threading.Thread:
    """Enqueue from another session as soon as the pusher's session has looked at the (empty) queue
    table, so the message can only reach it through the announcement."""
    def polled() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pusher_backend])
            return "django_q_ormq" in cursor.fetchone()[0]

    return when_seen(polled, lambda: NotifyingORM(list_key="broker-test").enqueue(payload), timeout=60)


def test_an_enqueued_message_wakes_a_waiting_pusher(broker, monkeypatch):
    # A poll interval long enough that only a notification can end the wait: were NOTIFY not sent or
    # not heard, the idle pusher would sleep out its full minute and count no wake-up.
    monkeypatch.setattr(Conf, "POLL", 60)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pusher_backend = cursor.fetchone()[0]
    thread = _enqueue_once_polled("stage message", pusher_backend)
    assert broker.dequeue() is None  # the queue was empty when it looked; it waited
    thread.join()
    assert broker.wakeups == 1
    assert [payload for _, payload in broker.dequeue()] == ["stage message"]


def test_messages_of_another_queue_do_not_wake_this_one(broker):
    broker.wait(0)  # listening
    other_queue = NotifyingORM(list_key="broker-test-other")
    try:
        other_queue.enqueue("for the other queue")
        assert broker.wait(0.2) is False
    finally:
        other_queue.close()
        OrmQ.objects.filter(key="broker-test-other").delete()


def test_an_idle_pusher_finds_a_message_without_a_notification(broker, monkeypatch):
    monkeypatch.setattr(Conf, "POLL", 0.01)
    OrmQ.objects.create(key="broker-test", payload="sent by a plain ORM broker", lock=timezone.now())
    assert [payload for _, payload in broker.dequeue()] == ["sent by a plain ORM broker"]


def test_a_message_is_taken_by_one_cluster_only(broker, monkeypatch):
    monkeypatch.setattr(Conf, "POLL", 0.01)
    other_cluster = NotifyingORM(list_key="broker-test")
    try:
        broker.enqueue("one message")
        taken = [broker.dequeue(), other_cluster.dequeue()]
    finally:
        other_cluster.close()
    assert [payload for _, payload in taken[0]] == ["one message"]
    assert taken[1] is None


def test_a_lost_listening_connection_falls_back_to_polling_and_reconnects(broker, monkeypatch):
    monkeypatch.setattr(Conf, "POLL", 0.01)
    before = _listening_backends()
    broker.wait(0)
    (lost,) = _listening_backends() - before
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [lost])
    broker.enqueue("sent while the listener was down")
    assert broker.wait(0.2) is False  # the broken connection is noticed, not raised to the pusher
    assert [payload for _, payload in broker.dequeue()] == ["sent while the listener was down"]
    broker.wait(0.2)  # polling alone for one interval after the failure, then listening again
    assert broker.wait(0) is False
    assert len(_listening_backends() - before - {lost}) == 1  # on a new connection
