"""The long-running processes besides the Faust worker: the channel sink and the projector.

Both are plain consumer groups (no state of their own in Kafka): they read a batch,
do their work idempotently, and commit the batch's offsets afterwards.
"""

from __future__ import annotations

import signal

import structlog

from dunning.config import Settings
from dunning.kafka_io import make_consumer, make_producer, run_consumer
from projections.db import make_engine, migrate
from projections.projector import Projector
from schemas.codec import Codec, DecodeError
from sinks.channels import ChannelSink
from sinks.email import OutboxFolderSender, SmtpSender
from streams import metrics, topics
from streams.core import events as ev
from streams.processor import dead_letter_for

log = structlog.get_logger(__name__)


class _Stopper:
    """True once SIGTERM or SIGINT arrived; the loop then finishes its batch and exits."""

    def __init__(self):
        self.stopped = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)

    def _stop(self, *_):
        self.stopped = True

    def __call__(self) -> bool:
        return self.stopped


def _dead_letter(producer, codec: Codec, message, reason: str) -> None:
    letter = dead_letter_for(message.topic(), message.partition(), message.offset(), message.key(),
                             message.value() or b"", reason)
    producer.produce(topics.DEAD_LETTERS.name, key=message.key(), value=codec.encode(topics.DEAD_LETTERS.name, letter))
    metrics.DEAD_LETTERS.labels(message.topic(), "decode").inc()
    log.warning("event dead-lettered", topic=message.topic(), offset=message.offset(), reason=reason)


def database_url(settings: Settings) -> str:
    return settings.database_url or settings.sqlite_url


def run_sink(settings: Settings, bootstrap: str) -> None:
    codec = Codec.from_env()
    engine = make_engine(database_url(settings))
    migrate(engine)
    sender = SmtpSender(settings.smtp_url) if settings.smtp_url else OutboxFolderSender(settings.data_dir / "outbox")
    sink = ChannelSink(engine, sender)
    producer = make_producer(bootstrap)
    consumer = make_consumer(bootstrap, "dunning-sink", [topics.ACTIONS.name])
    log.info("sink running", sender=repr(sender))

    def handle(messages) -> None:
        for message in messages:
            try:
                action = codec.decode(message.value())
            except DecodeError as exc:
                if exc.transient:
                    raise  # the schema registry is unreachable: the batch is retried after a restart
                _dead_letter(producer, codec, message, f"cannot decode: {exc}")
                continue
            if not isinstance(action, ev.DunningActionDue):
                _dead_letter(producer, codec, message, f"{type(action).__name__} does not belong on {message.topic()}")
                continue
            result = sink.handle(action)
            producer.produce(topics.DELIVERIES.name, key=action.action_id.encode(),
                             value=codec.encode(topics.DELIVERIES.name, result))
        producer.flush(30)

    run_consumer(consumer, handle, _Stopper())


PROJECTED = (topics.ACTIONS, topics.ALERTS, topics.UNMATCHED, topics.SNAPSHOTS, topics.DELIVERIES)


def run_projector(settings: Settings, bootstrap: str) -> None:
    codec = Codec.from_env()
    engine = make_engine(database_url(settings))
    migrate(engine)
    projector = Projector(engine)
    producer = make_producer(bootstrap)
    consumer = make_consumer(bootstrap, "dunning-projector", [spec.name for spec in PROJECTED])
    log.info("projector running", database=engine.url.render_as_string(hide_password=True))

    def handle(messages) -> None:
        events = []
        for message in messages:
            try:
                events.append(codec.decode(message.value()))
            except DecodeError as exc:
                if exc.transient:
                    raise  # the schema registry is unreachable: the batch is retried after a restart
                _dead_letter(producer, codec, message, f"cannot decode: {exc}")
        projector.apply_batch(events)
        producer.flush(30)

    run_consumer(consumer, handle, _Stopper(), size=2000)
