"""The channel sink under faults, against the embedded broker, PostgreSQL and real SMTP
servers: a mail server that is down, slow or hung, a sink killed again and again, a send
that never succeeds. Nothing is lost, nothing stays stuck, nothing is sent twice but
what the outbox states and logs as an uncertain resend."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from contextlib import contextmanager
from typing import Iterator

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text

from harness.stack import Stack
from harness.watch import TopicWatcher
from projections.db import migrate
from schemas import topics
from schemas.codec import Codec
from streams.kafka.clients import make_producer
from tests.support import CollectingHandler, free_port, log_events, postgres_database, start_smtp, wait_until
from tests.test_sinks import make_action

pytestmark = [pytest.mark.broker, pytest.mark.postgres]
PARTITIONS = 4


class SlowHandler(CollectingHandler):
    """A mail server that takes ``rcpt_delay`` seconds to accept a recipient, before any
    data is sent (so a client that dies meanwhile has delivered nothing)."""

    def __init__(self, rcpt_delay: float):
        super().__init__()
        self.rcpt_delay = rcpt_delay

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd's naming)
        await asyncio.sleep(self.rcpt_delay)
        envelope.rcpt_tos.append(address)
        return "250 OK"


@contextmanager
def slow_smtp(rcpt_delay: float) -> Iterator[tuple[int, SlowHandler]]:
    handler = SlowHandler(rcpt_delay)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, handler
    finally:
        controller.stop()


def sink_stack(tmp_path, database: str, smtp_port: int, smtp_timeout: float, **env: str) -> Stack:
    """A broker for a sink against the given database and mail server (no sink started yet)."""
    return Stack(tmp_path, PARTITIONS, {"DATABASE_URL": database, "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
                                        "SMTP_TIMEOUT": str(smtp_timeout), **env})


def publish_actions(bootstrap: str, codec: Codec, count: int, prefix: str, tombstone: bool = False) -> list[str]:
    producer = make_producer(bootstrap)
    if tombstone:  # a record with no value ahead of the actions: skipped, not a reason to stop
        producer.produce(topics.ACTIONS.name, key=f"{prefix}-D0".encode(), value=None)
    ids = []
    for n in range(count):
        action = make_action(action_id=f"{prefix}-{n}", debtor_id=f"{prefix}-D{n}", email=f"d{n}@{prefix}.example")
        producer.produce(topics.ACTIONS.name, key=action.debtor_id.encode(),
                         value=codec.encode(topics.ACTIONS.name, action))
        ids.append(action.action_id)
    producer.flush(10)
    return ids


def outbox_statuses(db_url: str) -> dict[str, str]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            return dict(connection.execute(text("SELECT action_id, status FROM outbox")).all())
    finally:
        engine.dispose()


@pytest.fixture
def database():
    with postgres_database("dunning_sink_faults") as db_url:
        migrate(db_url)
        yield db_url


def test_mail_waits_for_a_server_that_is_down_and_goes_out_once_it_is_back(tmp_path, database):
    port = free_port()  # nothing listens here yet
    codec = Codec()
    with sink_stack(tmp_path, database, port, smtp_timeout=5) as stack:
        stack.start("sink")
        watcher = TopicWatcher(stack.bootstrap, codec, [topics.DELIVERIES.name, topics.DEAD_LETTERS.name]).start()
        controller = None
        try:
            ids = publish_actions(stack.bootstrap, codec, 20, "down")
            wait_until(lambda: "deferred" in outbox_statuses(database).values(), 60,
                       "the sink to find the server down")
            time.sleep(3)  # down for a while: several tries meet it down
            controller, handler = start_smtp(port)
            wait_until(lambda: len(handler.messages) >= 20 and sum(
                r.status == "sent" for r in watcher.events("DeliveryResult")) >= 20, 120, "all 20 e-mails")
            assert stack.processes["sink"].poll() is None, "the sink ended"
        finally:
            watcher.stop()
            if controller is not None:
                controller.stop()
    sent = Counter(message["X-Dunning-Action-Id"] for _, message in handler.messages)
    assert sorted(sent) == sorted(ids)
    assert [a for a, copies in sent.items() if copies > 1] == []
    assert watcher.events("DeadLetter") == []
    assert set(outbox_statuses(database).values()) == {"sent"}


def test_a_send_that_does_not_pass_in_time_is_given_up_failed_and_dead_lettered(tmp_path, database):
    port = free_port()  # nothing ever listens here
    codec = Codec()
    with sink_stack(tmp_path, database, port, smtp_timeout=5, SINK_RETRY_SECONDS="3") as stack:
        stack.start("sink")
        watcher = TopicWatcher(stack.bootstrap, codec, [topics.DELIVERIES.name, topics.DEAD_LETTERS.name]).start()
        try:
            [action_id] = publish_actions(stack.bootstrap, codec, 1, "never", tombstone=True)
            watcher.wait_for(lambda w: w.events("DeadLetter") and w.events("DeliveryResult"), 60,
                             "the dead letter and the failed delivery")
        finally:
            watcher.stop()
    [letter] = watcher.events("DeadLetter")
    [result] = watcher.events("DeliveryResult")
    assert letter.source_topic == topics.ACTIONS.name and letter.reason.startswith("gave up: SendDeferred")
    assert "refused" in letter.reason.lower()
    assert codec.decode(letter.original_value).action_id == action_id
    assert (result.action_id, result.status) == (action_id, "failed")
    assert outbox_statuses(database) == {action_id: "failed"}


def test_a_slow_mail_server_never_costs_the_sink_its_group_membership(tmp_path, database):
    """Each message takes longer than the consumer's poll interval (10 s)."""
    codec = Codec()
    with slow_smtp(rcpt_delay=11) as (port, handler), sink_stack(tmp_path, database, port, smtp_timeout=20) as stack:
        stack.start("sink")
        ids = publish_actions(stack.bootstrap, codec, 3, "slow")
        wait_until(lambda: len(handler.messages) >= 3, 120, "three slow e-mails")
        wait_until(lambda: set(outbox_statuses(database).values()) == {"sent"}, 30, "all marked sent")
        assert stack.processes["sink"].poll() is None, "the sink ended"
    sent = Counter(message["X-Dunning-Action-Id"] for _, message in handler.messages)
    assert sorted(sent) == sorted(ids) and max(sent.values()) == 1
    events = [e["event"] for e in log_events(tmp_path / "sink.log")]
    assert events.count("partitions assigned") == 1, "the sink lost its partitions and joined again"
    assert "commit refused" not in events


def test_a_sink_killed_again_and_again_sends_each_mail_once_or_says_so(tmp_path, database):
    codec = Codec()
    with slow_smtp(rcpt_delay=1.5) as (port, handler), sink_stack(tmp_path, database, port, smtp_timeout=2) as stack:
        stack.start("sink", name="sink-0")
        ids = publish_actions(stack.bootstrap, codec, 8, "kill")
        for n in range(1, 6):
            # Killed while a message is on its way: after it was claimed, mostly before its data.
            wait_until(lambda: any(s in ("sending", "handed_over") for s in outbox_statuses(database).values())
                       or len(handler.messages) >= len(ids), 60, "a send on its way")
            if len(handler.messages) >= len(ids):
                break
            time.sleep(0.5)
            stack.kill(f"sink-{n - 1}", signal.SIGKILL)
            stack.start("sink", name=f"sink-{n}")
        wait_until(lambda: set(outbox_statuses(database).values()) == {"sent"}
                   and len(outbox_statuses(database)) == len(ids), 180, "every e-mail sent")
    sent = Counter(message["X-Dunning-Action-Id"] for _, message in handler.messages)
    assert sorted(sent) == sorted(ids)
    uncertain = Counter(e.get("action_id") for path in tmp_path.glob("sink-*.log") for e in log_events(path)
                        if e.get("event") == "sent again: an earlier attempt may have delivered it")
    twice = {action: copies - 1 for action, copies in sent.items() if copies > 1}
    assert all(uncertain[action] >= extra for action, extra in twice.items()), (twice, uncertain)


def test_a_hung_mail_server_does_not_keep_the_sink_from_stopping(tmp_path, database):
    codec = Codec()
    with slow_smtp(rcpt_delay=120) as (port, handler), sink_stack(tmp_path, database, port, smtp_timeout=300) as stack:
        sink = stack.start("sink")
        publish_actions(stack.bootstrap, codec, 1, "hung")
        wait_until(lambda: "sending" in outbox_statuses(database).values(), 60, "the send to start")
        started = time.monotonic()
        sink.send_signal(signal.SIGTERM)
        sink.wait(timeout=60)
        took = time.monotonic() - started
    assert took < 12, f"the sink took {took:.1f} s to stop"
    assert handler.messages == []


def test_a_second_sink_joining_mid_send_sends_nothing_twice(tmp_path, database):
    """The group rebalances while the first sink is sending: the partitions it loses are
    read by the second from their committed offsets, and an action whose send is still on
    its way in the first is left to it (its claim is live) instead of being sent again."""
    codec = Codec()
    with slow_smtp(rcpt_delay=1.0) as (port, handler), sink_stack(tmp_path, database, port, smtp_timeout=10) as stack:
        stack.start("sink", name="sink-1")
        ids = publish_actions(stack.bootstrap, codec, 16, "scale")
        wait_until(lambda: len(handler.messages) >= 2, 60, "the first sink to be sending")
        stack.start("sink", name="sink-2")
        wait_until(lambda: "partitions assigned" in (tmp_path / "sink-2.log").read_text(), 60,
                   "the second sink to take partitions")
        wait_until(lambda: len(outbox_statuses(database)) == len(ids)
                   and set(outbox_statuses(database).values()) == {"sent"}, 120, "every e-mail sent")
        ended = [name for name, process in stack.processes.items() if process.poll() is not None]
    sent = Counter(message["X-Dunning-Action-Id"] for _, message in handler.messages)
    assert ended == []
    assert sorted(sent) == sorted(ids)
    assert [action for action, copies in sent.items() if copies > 1] == []
    delivered_by = [sum(e.get("event") == "dunning action delivered" and e.get("status") == "sent"
                        for e in log_events(tmp_path / f"sink-{n}.log")) for n in (1, 2)]
    assert all(count > 0 for count in delivered_by), delivered_by
    lines = [e for n in (1, 2) for e in log_events(tmp_path / f"sink-{n}.log")]
    assert [e for e in lines if e.get("process") != "dunning-sink"] == []  # the handler's thread logs as the sink
