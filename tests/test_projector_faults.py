"""The projector under faults, against the embedded broker, PostgreSQL and SQLite: a
database that refuses logins for a while, a SQLite file locked by another writer for
longer than its busy timeout, a value the database cannot store, tombstones, SIGTERM
while the database is away. The projector waits, keeps its partitions, dead-letters
only what it can never store, and catches up by itself."""

from __future__ import annotations

import dataclasses
import signal
import sqlite3
import time
import uuid

import pytest
from sqlalchemy import create_engine, text

from harness.stack import Stack
from harness.watch import TopicWatcher
from projections.db import migrate
from schemas import topics
from schemas.codec import Codec
from streams.core import events as ev
from streams.core.pipeline import Pipeline
from streams.kafka.clients import make_producer
from tests.scenario import sample_policy
from tests.support import PG_SERVER, log_events, postgres_database, wait_until

pytestmark = [pytest.mark.broker]
PARTITIONS = 4


def snapshots(count: int, prefix: str) -> list[ev.DebtorSnapshot]:
    pipeline = Pipeline(sample_policy())
    for n in range(count):
        pipeline.process(ev.DebtorRegistered(f"{prefix}-reg-{n}", f"{prefix}{n:04d}", f"Debiteur {n}", "B2B",
                                             segment="smb", email=f"d{n}@{prefix}.example"))
    return pipeline.snapshots()


def publish(bootstrap: str, codec: Codec, events: list, tombstones: tuple[str, ...] = ()) -> None:
    producer = make_producer(bootstrap)
    for name in tombstones:
        producer.produce(name, key=b"gone", value=None)
    for event in events:
        topic = topics.OUTPUT_TOPIC[type(event)].name
        producer.produce(topic, key=topics.key_of(event).encode(), value=codec.encode(topic, event))
    producer.flush(10)


def debtor_rows(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM debtors")).scalar_one()
    except Exception:  # noqa: BLE001 - not reachable or not there yet
        return -1
    finally:
        engine.dispose()


@pytest.fixture
def pg_role():
    """A database owned by a role of its own, so that the test can refuse it logins."""
    role = f"proj_{uuid.uuid4().hex[:8]}"
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{role}" LOGIN'))
    try:
        with postgres_database("dunning_projector_faults") as db_url:
            with admin.connect() as connection:
                database = db_url.rsplit("/", 1)[1]
                connection.execute(text(f'ALTER DATABASE "{database}" OWNER TO "{role}"'))
            role_url = db_url.replace("postgres@", f"{role}@")
            migrate(role_url)

            def refuse(refused: bool) -> None:
                with admin.connect() as connection:
                    connection.execute(text(f'ALTER ROLE "{role}" {"NOLOGIN" if refused else "LOGIN"}'))
                    if refused:
                        connection.execute(text(
                            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"))

            yield role_url, refuse
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


@pytest.mark.postgres
def test_a_database_that_refuses_logins_for_a_while_is_waited_for(tmp_path, pg_role):
    url, refuse = pg_role
    codec = Codec()
    first, later = snapshots(300, "A"), snapshots(300, "B")
    with Stack(tmp_path, PARTITIONS, {"DATABASE_URL": url}) as stack:
        stack.start("project")
        publish(stack.bootstrap, codec, first)
        wait_until(lambda: debtor_rows(url) == 300, 60, "the first 300 debtors")
        refuse(True)
        publish(stack.bootstrap, codec, later)
        wait_until(lambda: "failed, tried again after a pause" in (tmp_path / "project.log").read_text(), 60,
                   "the projector to meet the refusal")
        time.sleep(15)  # refused for longer than the consumer's poll interval (10 s)
        assert stack.processes["project"].poll() is None, "the projector ended"
        refuse(False)
        wait_until(lambda: debtor_rows(url) == 600, 120, "all 600 debtors once the database is back")
        assert stack.processes["project"].poll() is None
    events = [e["event"] for e in log_events(tmp_path / "project.log")]
    assert events.count("partitions assigned") == 1, "the projector lost its partitions and joined again"


def test_a_sqlite_file_locked_past_the_busy_timeout_is_waited_for(tmp_path):
    url = f"sqlite:///{tmp_path / 'read-models.db'}"
    migrate(url)
    codec = Codec()
    with Stack(tmp_path, PARTITIONS, {"DATABASE_URL": url}) as stack:
        stack.start("project")
        publish(stack.bootstrap, codec, snapshots(50, "A"))
        wait_until(lambda: debtor_rows(url) == 50, 60, "the first 50 debtors")
        lock = sqlite3.connect(tmp_path / "read-models.db", isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")  # another writer, for longer than the busy timeout (10 s)
        try:
            publish(stack.bootstrap, codec, snapshots(50, "B"))
            wait_until(lambda: "failed, tried again after a pause" in (tmp_path / "project.log").read_text(), 60,
                       "the projector to give up on the lock once")
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        wait_until(lambda: debtor_rows(url) == 100, 120, "all 100 debtors once the lock is gone")
        assert stack.processes["project"].poll() is None


@pytest.mark.postgres
def test_a_value_the_database_cannot_store_is_dead_lettered_and_the_rest_projected(tmp_path):
    codec = Codec()
    good = snapshots(20, "G")
    bad = dataclasses.replace(snapshots(1, "X")[0], name="N" * 300)  # past the column, past the edge's checks
    with postgres_database("dunning_projector_faults") as url:
        migrate(url)
        with Stack(tmp_path, PARTITIONS, {"DATABASE_URL": url}) as stack:
            stack.start("project")
            watcher = TopicWatcher(stack.bootstrap, codec, [topics.DEAD_LETTERS.name]).start()
            try:
                publish(stack.bootstrap, codec, [*good[:10], bad, *good[10:]],
                        tombstones=(topics.SNAPSHOTS.name, topics.ACTIONS.name))
                wait_until(lambda: debtor_rows(url) == 20, 60, "the 20 good debtors")
                watcher.wait_for(lambda w: w.events("DeadLetter"), 60, "the dead letter")
            finally:
                watcher.stop()
            assert stack.processes["project"].poll() is None
    [letter] = watcher.events("DeadLetter")
    assert letter.source_topic == topics.SNAPSHOTS.name
    assert "StringDataRightTruncation" in letter.reason or "too long" in letter.reason
    assert codec.decode(letter.original_value).debtor_id == bad.debtor_id


@pytest.mark.postgres
def test_a_projector_waiting_for_its_database_stops_on_sigterm(tmp_path, pg_role):
    url, refuse = pg_role
    with Stack(tmp_path, PARTITIONS, {"DATABASE_URL": url}) as stack:
        projector = stack.start("project")
        wait_until(lambda: "partitions assigned" in (tmp_path / "project.log").read_text(), 60, "the assignment")
        refuse(True)
        publish(stack.bootstrap, Codec(), snapshots(10, "S"))
        wait_until(lambda: "failed, tried again after a pause" in (tmp_path / "project.log").read_text(), 60,
                   "the projector to meet the refusal")
        started = time.monotonic()
        projector.send_signal(signal.SIGTERM)
        projector.wait(timeout=60)
        took = time.monotonic() - started
        refuse(False)
    assert took < 10, f"the projector took {took:.1f} s to stop"
