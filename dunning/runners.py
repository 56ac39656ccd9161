"""The long-running processes besides the Faust worker: the channel sink and the projector.

Each is a handler on the shared consumer loop (``streams.consumer_loop``), which decodes,
retries, dead-letters, commits, keeps the group membership while it waits, and stops
within seconds of SIGTERM.
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from dunning.config import Settings
from dunning.kafka_io import consumer_config, make_producer
from projections.db import make_engine, migrate
from projections.handler import ProjectorHandler
from projections.projector import Projector
from schemas.codec import Codec
from sinks.channels import ChannelSink
from sinks.email import OutboxFolderSender, SmtpSender
from sinks.handler import SinkHandler
from streams.consumer_loop import ConsumerLoop

log = structlog.get_logger(__name__)


def database_url(settings: Settings) -> str:
    return settings.database_url or settings.sqlite_url


def _run(bootstrap: str, handler, fetch_size: int) -> None:
    loop = ConsumerLoop(consumer_config(bootstrap), make_producer(bootstrap), Codec.from_env(), handler, fetch_size)
    loop.install_signal_handlers()
    loop.run()


def run_sink(settings: Settings, bootstrap: str) -> None:
    engine = make_engine(database_url(settings))
    migrate(engine)
    if settings.smtp_url:
        sender = SmtpSender(settings.smtp_url, timeout=settings.smtp_timeout)
    else:
        sender = OutboxFolderSender(settings.data_dir / "outbox")
    # A claim outlives the longest send: each SMTP step may take the timeout.
    sink = ChannelSink(engine, sender, lease=timedelta(seconds=3 * settings.smtp_timeout))
    log.info("sink running", sender=repr(sender))
    _run(bootstrap, SinkHandler(sink, settings.sink_retry_seconds), fetch_size=100)


def run_projector(settings: Settings, bootstrap: str) -> None:
    engine = make_engine(database_url(settings))
    migrate(engine)
    log.info("projector running", database=engine.url.render_as_string(hide_password=True))
    _run(bootstrap, ProjectorHandler(Projector(engine)), fetch_size=2000)
