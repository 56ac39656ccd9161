"""The composition root's wiring: each part of the platform built from the settings.

Product code takes plain values (a bootstrap address, an engine, a codec, a policy); only
this module and the command line read ``Settings``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import structlog

from dunning.settings import Settings, SettingsError
from schemas.codec import Codec
from streams.core.policy import Policy, PolicyCheck, PolicyError, check_policy

log = structlog.get_logger(__name__)


class UsageError(Exception):
    """A user's mistake (a file missing or unreadable, a bad policy): one line, exit 2."""


def make_codec(settings: Settings) -> Codec:
    """A real schema registry when ``SCHEMA_REGISTRY_URL`` is set, else the registry file."""
    if not settings.schema_registry_url:
        return Codec()
    from schemas.registry import SchemaRegistry

    try:
        registry = SchemaRegistry(settings.schema_registry_url, user=settings.schema_registry_user,
                                  password=settings.schema_registry_password)
    except ValueError:  # the client refused the URL; its message may quote the password
        raise SettingsError("bad setting SCHEMA_REGISTRY_URL: not a URL the registry client accepts") from None
    return Codec(registry)


def read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: the {what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def check_policy_file(path: Path) -> PolicyCheck:
    """The policy in ``path`` checked against the channels and templates the platform ships;
    ``UsageError`` when it cannot be read or is wrong."""
    try:
        return check_policy(read_text(path, "policy"), str(path), **vocabulary())
    except PolicyError as exc:
        raise UsageError(str(exc)) from None


def load_policy(path: Path) -> Policy:
    """The policy in ``path``, checked as ``check_policy_file`` does; its warnings are logged."""
    checked = check_policy_file(path)
    for warning in checked.warnings:
        log.warning("policy warning", warning=warning)
    return checked.policy


def vocabulary() -> dict:
    """What a policy may name: the channels of the registry, the templates per language."""
    from sinks import registry

    return {"channels": registry.names(), "templates": registry.available_templates()}


def run_worker(settings: Settings, bootstrap: str, policy: Policy) -> None:
    import faust

    from dunning.runtime import tune_garbage_collector
    from streams.worker.app import create_app

    app = create_app(bootstrap, settings.profile, policy, make_codec(settings), partitions=settings.partitions,
                     store=settings.state_store, data_dir=settings.data_dir)
    tune_garbage_collector()
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True, override_logging=False,
                          redirect_stdouts=False)  # keep the JSON lines on stderr
    worker.spinner = None  # Faust's progress spinner writes terminal escape codes, even into a log file
    worker.execute_from_commandline()


def _consume(settings: Settings, bootstrap: str, handler, fetch_size: int) -> None:
    from streams.kafka.clients import consumer_config, make_producer
    from streams.kafka.consumer_loop import ConsumerLoop

    loop = ConsumerLoop(consumer_config(bootstrap, settings.profile), make_producer(bootstrap), make_codec(settings),
                        handler, fetch_size)
    loop.install_signal_handlers()
    loop.run()


def run_sink(settings: Settings, bootstrap: str) -> None:
    from projections.db import make_engine, migrate
    from sinks.channels import ChannelSink
    from sinks.email import OutboxFolderSender, SmtpSender
    from sinks.handler import SinkHandler

    engine = make_engine(settings.read_model_url)
    migrate(engine)
    if settings.smtp_url:
        try:
            sender = SmtpSender(settings.smtp_url, timeout=settings.smtp_timeout)
        except ValueError as exc:
            raise SettingsError(f"bad setting SMTP_URL: {exc}") from None
    else:
        sender = OutboxFolderSender(settings.data_dir / "outbox")
    # A claim outlives the longest send: each SMTP step may take the timeout.
    sink = ChannelSink(engine, sender, mail_from=settings.mail_from,
                       lease=timedelta(seconds=3 * settings.smtp_timeout))
    log.info("sink running", sender=repr(sender))
    _consume(settings, bootstrap, SinkHandler(sink, settings.sink_retry_seconds), fetch_size=100)


def run_projector(settings: Settings, bootstrap: str) -> None:
    from projections.db import make_engine, migrate
    from projections.handler import ProjectorHandler
    from projections.projector import Projector
    from sinks import registry

    engine = make_engine(settings.read_model_url)
    migrate(engine)
    log.info("projector running", database=engine.url.render_as_string(hide_password=True))
    _consume(settings, bootstrap, ProjectorHandler(Projector(engine, registry.task_channels())), fetch_size=2000)
