"""``dunning``: every command of the platform.

A user's mistake (a bad setting, a missing or unreadable file, a bad policy) is answered
with one line on stderr and exit status 2, never a traceback. The processes that need
Kafka take it from ``KAFKA_BOOTSTRAP``: ``dunning broker`` runs an embedded broker for
separately started parts to share; ``demo`` and ``bench`` start their own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from dunning.observability import configure_logging, serve_metrics
from dunning.runners import UsageError
from dunning.settings import Settings, SettingsError, load_settings, variables

USAGE_ERROR = 2

# The variables each command reads (the help lists them with their defaults).
KAFKA = ("KAFKA_BOOTSTRAP", "KAFKA_PROFILE", "PARTITIONS", "SCHEMA_REGISTRY_URL", "SCHEMA_REGISTRY_USER",
         "SCHEMA_REGISTRY_PASSWORD")
PROCESS = ("LOG_LEVEL", "METRICS_PORT", "METRICS_HOST")
READS = {
    "worker": (*KAFKA, "POLICY_FILE", "STATE_STORE", "DATA_DIR", *PROCESS),
    "sink": (*KAFKA, "DATABASE_URL", "SMTP_URL", "MAIL_FROM", "SMTP_TIMEOUT", "SINK_RETRY_SECONDS", "DATA_DIR",
             *PROCESS),
    "project": (*KAFKA, "DATABASE_URL", "DATA_DIR", *PROCESS),
    "clock": (*KAFKA, *PROCESS),
    "publish": (*KAFKA, "LOG_LEVEL"),
    "replay-dead-letters": (*KAFKA, "LOG_LEVEL"),
    "broker": ("PARTITIONS", "LOG_LEVEL"),
    "simulate": ("POLICY_FILE", "LOG_LEVEL"),
    "check-policy": ("LOG_LEVEL",),
    "demo": ("DATA_DIR", "PARTITIONS", "DATABASE_URL", "SMTP_URL", "KAFKA_BOOTSTRAP", "SCHEMA_REGISTRY_URL"),
    "bench": ("DATA_DIR", "PARTITIONS"),
    "sample": (),
    "reference": (),
    "import-bank": (*KAFKA, "LOG_LEVEL"),
    "allocate": (*KAFKA, "DATABASE_URL", "DATA_DIR", "LOG_LEVEL"),
    "bench-matching": (),
    "import-invoices": (*KAFKA, "DATA_DIR", "LOG_LEVEL"),
    "poll-psd2": (*KAFKA, "PSD2_BASE_URL", "PSD2_ACCOUNT_ID", "PSD2_CONSENT_ID", "PSD2_TOKEN", "PSD2_POLL_SECONDS",
                  "PSD2_RETRY_SECONDS", "DATA_DIR", "LOG_LEVEL"),
}
EXAMPLES = {
    "worker": "KAFKA_BOOTSTRAP=127.0.0.1:9092 dunning worker",
    "sink": "KAFKA_BOOTSTRAP=127.0.0.1:9092 SMTP_URL=smtp://mail:1025 dunning sink",
    "project": "KAFKA_BOOTSTRAP=127.0.0.1:9092 DATABASE_URL=postgresql+psycopg://app@db/dunning dunning project",
    "clock": "dunning clock --start 2026-01-05 --days 30 --interval 0.5",
    "publish": "dunning publish invoices.jsonl",
    "replay-dead-letters": "dunning replay-dead-letters --topic dunning.actions --reason SendDeferred --dry-run",
    "broker": "dunning broker --port 9092",
    "simulate": "dunning simulate last-year.jsonl --policy policy.yaml > actions.jsonl",
    "check-policy": "dunning check-policy policy.yaml",
    "demo": "dunning demo --days 30",
    "bench": "dunning bench --events 50000",
    "sample": "dunning sample --days 30 > sample.jsonl",
    "reference": "dunning reference 12345678",
    "import-bank": "dunning import-bank statement-2025-04-15.xml",
    "allocate": "dunning allocate 2025041500008 --invoice F2025-0131 --by anouk",
    "bench-matching": "dunning bench-matching --lines 20000",
    "import-invoices": "dunning import-invoices openstaande-posten-2025-04-15.csv --source exact-main",
    "poll-psd2": "dunning poll-psd2 --date-from 2025-04-01 --once",
}


def package_version() -> str:
    try:
        return version("dunning-platform")
    except PackageNotFoundError:
        return "unknown"


# ----------------------------------------------------------------------------- processes


def _serve_metrics(settings: Settings, *groups) -> None:
    try:
        serve_metrics(settings.metrics_port, settings.metrics_host, groups, package_version())
    except OSError as exc:
        raise SettingsError(f"METRICS_PORT={settings.metrics_port}: cannot listen on "
                            f"{settings.metrics_host}:{settings.metrics_port}: {exc.strerror or exc}") from None


def _connected(settings: Settings, command: str) -> str:
    """The bootstrap servers, with every topic created."""
    from confluent_kafka import KafkaException

    from streams.kafka.clients import ensure_topics

    bootstrap = settings.require_kafka(command)
    try:
        ensure_topics(bootstrap, settings.partitions)
    except KafkaException as exc:
        raise UsageError(f"cannot reach Kafka at KAFKA_BOOTSTRAP={bootstrap}: {exc.args[0].str()}") from None
    return bootstrap


def cmd_worker(settings: Settings, args) -> int:
    from dunning.runners import load_policy, run_worker
    from streams.kafka import metrics as consumer_metrics
    from streams.worker import metrics as worker_metrics

    policy = load_policy(settings.policy_file)  # refused before anything starts
    settings.prepare_data_dir()
    _serve_metrics(settings, worker_metrics, consumer_metrics)
    run_worker(settings, _connected(settings, "worker"), policy)
    return 0


def cmd_sink(settings: Settings, args) -> int:
    from dunning.runners import run_sink
    from sinks import metrics as sink_metrics
    from streams.kafka import metrics as consumer_metrics

    settings.prepare_data_dir()
    _serve_metrics(settings, sink_metrics, consumer_metrics)
    run_sink(settings, _connected(settings, "sink"))
    return 0


def cmd_project(settings: Settings, args) -> int:
    from dunning.runners import run_projector
    from projections import metrics as projection_metrics
    from streams.kafka import metrics as consumer_metrics

    settings.prepare_data_dir()
    _serve_metrics(settings, projection_metrics, consumer_metrics)
    run_projector(settings, _connected(settings, "project"))
    return 0


def cmd_clock(settings: Settings, args) -> int:
    from connectors import clock
    from connectors.publisher import Publisher
    from dunning.runners import make_codec
    from streams.kafka.progress import WorkerProgress

    _serve_metrics(settings, clock)
    bootstrap = _connected(settings, "clock")
    publisher = Publisher(bootstrap, make_codec(settings), settings.partitions,
                          before_tick=WorkerProgress(bootstrap, waiting=clock.waiting_for_worker))
    if args.start:
        clock.run_range(publisher, args.start, args.days, args.interval)
    else:
        clock.run_calendar(publisher)
    return 0


def cmd_broker(settings: Settings, args) -> int:
    import signal
    import threading

    from harness.embedded import EmbeddedBroker
    from streams.kafka.clients import ensure_topics

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    broker = EmbeddedBroker(args.port or None)
    try:
        broker.start()
    except (RuntimeError, TimeoutError) as exc:  # the port is taken, or the broker would not come up
        raise UsageError(f"cannot start the embedded broker on {broker.bootstrap}: {exc}") from None
    with broker:
        ensure_topics(broker.bootstrap, settings.partitions)
        print(f"KAFKA_BOOTSTRAP={broker.bootstrap}", flush=True)
        print("KAFKA_PROFILE=embedded", flush=True)
        print(f"# export both lines for every part that should share this broker; it keeps topics in memory "
              f"only and stops with Ctrl-C (pid {os.getpid()})", file=sys.stderr, flush=True)
        while not stop.wait(1.0):
            if broker.process is not None and broker.process.poll() is not None:
                raise UsageError(f"the embedded broker exited with status {broker.process.returncode}")
    return 0


def cmd_publish(settings: Settings, args) -> int:
    from contextlib import contextmanager

    from connectors.publisher import Publisher, open_events_file, publish_file
    from dunning.runners import make_codec
    from streams.kafka.clients import ensure_topics, make_producer
    from streams.kafka.progress import WorkerProgress

    if not args.timeout > 0:  # librdkafka reads 0 as "wait for ever"
        raise UsageError("--timeout must be more than 0 seconds")
    bootstrap = settings.require_kafka("publish")
    codec = make_codec(settings)
    try:
        handle = open_events_file(args.file)
    except OSError as exc:
        raise UsageError(f"{args.file}: {exc.strerror or exc}") from None

    @contextmanager
    def connect():
        ensure_topics(bootstrap, settings.partitions)
        producer = make_producer(bootstrap, **{"message.timeout.ms": int(args.timeout * 1000), "linger.ms": 20})
        barrier = None if args.no_wait else WorkerProgress(bootstrap, waiting=lambda seconds: print(
            f"{args.file}: a DayStarted line waits for the worker to process the lines before it "
            f"({seconds:.0f} s so far; --no-wait does not wait)", file=sys.stderr))
        yield Publisher(bootstrap, codec, settings.partitions, producer, before_tick=barrier)

    with handle:
        report = publish_file(handle, codec, settings.partitions, connect, skip_invalid=args.skip_invalid,
                              on_rejected=lambda error: print(f"{args.file}: {error}", file=sys.stderr))
    if report.error:
        print(f"{args.file}: {report.error}", file=sys.stderr)
    if report.lines_rejected and not args.skip_invalid:
        print(f"{args.file}: {report.lines_rejected} of {report.lines} lines rejected, nothing published "
              "(--skip-invalid publishes the valid lines)", file=sys.stderr)
    if report.records_failed:
        print(f"{args.file}: {report.records_failed} records not delivered ({report.first_error}), "
              f"{report.records_delivered} delivered, {report.lines_not_sent} lines not sent; publishing the "
              "file again is safe (events have stable ids)", file=sys.stderr)
    print(json.dumps(report.to_json()))
    return 0 if report.ok else 1


def cmd_replay_dead_letters(settings: Settings, args) -> int:
    from connectors.dead_letters import LetterFilter, replay
    from connectors.publisher import Publisher
    from dunning.runners import make_codec
    from schemas import topics
    from streams.kafka.clients import end_offsets

    letter_filter = LetterFilter(args.topic, args.reason, args.key, args.since, args.until)
    bootstrap = _connected(settings, "replay-dead-letters")
    ends = end_offsets(bootstrap, [topics.DEAD_LETTERS.name])
    codec = make_codec(settings)
    report = replay(bootstrap, codec, Publisher(bootstrap, codec, settings.partitions), ends, letter_filter, args.dry_run)
    print(json.dumps({**report.to_json(), "dry_run": args.dry_run}))
    return 0


# ----------------------------------------------------------------------------- offline


def cmd_simulate(settings: Settings, args) -> int:
    from connectors.publisher import read_events
    from dunning.runners import load_policy
    from dunning.runtime import tune_garbage_collector
    from schemas.json_form import event_to_json
    from streams.core.simulate import Rejected, simulate

    policy = load_policy(args.policy or settings.policy_file)
    try:
        events, errors = read_events(args.file)
    except OSError as exc:
        raise UsageError(f"{args.file}: {exc.strerror or exc}") from None
    for error in errors:
        print(f"{args.file}: {error}", file=sys.stderr)
    if errors:
        return 1
    tune_garbage_collector()
    for output in simulate(events, policy, snapshots=args.snapshots):
        if isinstance(output, Rejected):
            record = {"type": "Rejected", "line": output.position, "event_id": output.event_id,
                      "field": output.field, "reason": output.reason}
        else:
            record = event_to_json(output)
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


def cmd_check_policy(settings: Settings, args) -> int:
    from dunning.runners import check_policy_file

    checked = check_policy_file(args.file)
    for warning in checked.warnings:
        print(f"warning: {warning}")
    policy = checked.policy
    steps = sum(len(workflow.steps) for workflow in policy.workflows.values())
    print(f"{args.file}: {len(policy.segments)} segments, {len(policy.workflows)} workflows, {steps} steps; "
          f"{len(checked.warnings)} warnings")
    return 1 if checked.warnings and args.strict else 0


def cmd_demo(settings: Settings, args) -> int:
    from dunning.runners import make_codec
    from harness.demo import run_demo

    return run_demo(settings.prepare_data_dir() / "demo", partitions=settings.partitions,
                    database_url=settings.database_url, smtp_url=settings.smtp_url,
                    bootstrap=settings.kafka_bootstrap, codec=make_codec(settings), as_json=args.json, days=args.days)


def cmd_bench(settings: Settings, args) -> int:
    from dunning.runtime import tune_garbage_collector
    from harness.bench import run_bench

    tune_garbage_collector()  # as the worker runs: the core figure is measured in this process
    return run_bench(settings.partitions, settings.prepare_data_dir() / "bench", args)


def cmd_sample(settings: Settings, args) -> int:
    from harness.sample_ledger import sample_events
    from schemas.json_form import event_to_json

    for event in sample_events(days=args.days):
        sys.stdout.write(json.dumps(event_to_json(event), ensure_ascii=False) + "\n")
    return 0


def cmd_import_bank(settings: Settings, args) -> int:
    from connectors.bank_files import BankFileError
    from connectors.bank_import import publish_statement, read_bank_file
    from connectors.publisher import Publisher
    from dunning.runners import make_codec
    from streams.kafka.clients import ensure_topics

    bootstrap = settings.require_kafka("import-bank")
    try:
        statement = read_bank_file(args.file, args.format)
    except OSError as exc:
        raise UsageError(f"{args.file}: {exc.strerror or exc}") from None
    except BankFileError as exc:
        print(f"{args.file}: {exc}; nothing was published", file=sys.stderr)
        return 1
    for rejected in statement.rejected:
        print(f"{args.file}: {rejected.where}: {rejected.reason}", file=sys.stderr)
    ensure_topics(bootstrap, settings.partitions)
    report = publish_statement(args.file, statement, Publisher(bootstrap, make_codec(settings), settings.partitions))
    print(json.dumps(report.to_json(), ensure_ascii=False))
    return 0 if report.ok else 1


def cmd_allocate(settings: Settings, args) -> int:
    from connectors.allocations import Allocation, AllocationRefused, allocation_event
    from connectors.publisher import Publisher
    from dunning.runners import make_codec
    from projections.db import make_engine

    if args.not_ours is not None and (args.invoice or args.debtor):
        raise UsageError("--not-ours goes alone: a payment that is no debtor's is allocated to no invoice or debtor")
    if args.not_ours is None and not (args.invoice or args.debtor):
        raise UsageError("say where the payment goes: --invoice ID (repeat for several), --debtor ID (on account) "
                         "or --not-ours REASON")
    settings.require_kafka("allocate")
    settings.prepare_data_dir()
    asked = Allocation(args.payment_id, tuple(dict.fromkeys(args.invoice or ())), args.debtor, args.not_ours, args.by)
    try:
        event = allocation_event(make_engine(settings.read_model_url), asked)
    except AllocationRefused as exc:
        raise UsageError(f"{args.payment_id}: {exc}") from None
    publisher = Publisher(_connected(settings, "allocate"), make_codec(settings), settings.partitions)
    publisher.publish_all([event])
    print(json.dumps({"transaction_id": event.transaction_id, "debtor_id": event.debtor_id,
                      "invoice_ids": list(event.invoice_ids), "not_ours_reason": event.not_ours_reason,
                      "amount_minor": event.amount_minor, "currency": event.currency, "published": event.event_id},
                     ensure_ascii=False))
    return 0


def cmd_bench_matching(settings: Settings, args) -> int:
    from harness.bench_matching import run_bench_matching

    return run_bench_matching(args)


def cmd_import_invoices(settings: Settings, args) -> int:
    from connectors.invoice_files import FORMATS, OPEN_ITEM_FORMATS, InvoiceFileError
    from connectors.invoice_import import InvoiceStateError, ListingState, publish_listing, read_invoice_path
    from connectors.publisher import Publisher
    from dunning.runners import make_codec
    from schemas.codec import EncodeError

    if args.format is not None and args.format not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {args.format!r}")
    if args.term_days < 0:
        raise UsageError(f"--term-days must be 0 or more, not {args.term_days}")
    settings.require_kafka("import-invoices")
    try:
        listing = read_invoice_path(args.path, args.format, args.term_days)
    except OSError as exc:
        raise UsageError(f"{args.path}: {exc.strerror or exc}") from None
    except InvoiceFileError as exc:
        print(f"{args.path}: {exc}; nothing was published", file=sys.stderr)
        return 1
    state = None
    if listing.format in OPEN_ITEM_FORMATS:
        state = ListingState(settings.prepare_data_dir() / "invoice-imports", listing.format,
                             args.source or args.path.stem)
    elif args.source:
        raise UsageError(f"--source names the listing of an open-item export ({', '.join(OPEN_ITEM_FORMATS)}); "
                         "UBL documents are not compared with an earlier import")
    for rejected in listing.rejected:
        print(f"{rejected.where}: {rejected.reason}", file=sys.stderr)
    bootstrap = _connected(settings, "import-invoices")
    try:
        report = publish_listing(args.path, listing, Publisher(bootstrap, make_codec(settings), settings.partitions),
                                 state)
    except InvoiceStateError as exc:
        raise UsageError(str(exc)) from None
    except EncodeError as exc:  # transient: the schema registry cannot be reached
        print(f"{args.path}: schema registry: {exc.reason}; nothing was published", file=sys.stderr)
        return 1
    for missing in report.no_longer_listed:
        print(f"{args.path}: invoice {missing['invoice_id']} (debtor {missing['debtor_id']}) was listed by the last "
              "import and is not now: left as it is, look into it", file=sys.stderr)
    if report.listing_not_saved:
        print(f"{args.path}: {report.listing_not_saved}; the next import compares with the listing before",
              file=sys.stderr)
    print(json.dumps(report.to_json(), ensure_ascii=False))
    return 0 if report.ok else 1


def cmd_poll_psd2(settings: Settings, args) -> int:
    import signal
    import threading

    from connectors.psd2_poll import Account, Backoff, Psd2Client, Psd2Error, Psd2Poller, StateFile
    from connectors.publisher import Publisher
    from dunning.runners import make_codec

    base_url, account_id, consent_id, token = settings.require_psd2()
    interval = settings.psd2_poll_seconds if args.interval is None else args.interval
    if not interval > 0:
        raise UsageError("--interval must be more than 0 seconds")
    bootstrap = _connected(settings, "poll-psd2")  # before the bank: a read of it may be one of four a day
    stop = threading.Event()

    def stopping(*_) -> None:  # the first Ctrl-C ends the poll after its page, a second one at once
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, stopping)
    signal.signal(signal.SIGTERM, stopping)
    state_file = StateFile(settings.prepare_data_dir() / "psd2", account_id)
    client = Psd2Client(Account(base_url, account_id, consent_id, token),
                        Backoff(budget=settings.psd2_retry_seconds), stop=stop)
    publisher = Publisher(bootstrap, make_codec(settings), settings.partitions)
    def rejected(where: str, reason: str) -> None:
        print(f"poll-psd2: {where}: {reason}", file=sys.stderr)

    date_from = args.date_from
    try:
        with client, state_file.locked():
            poller = Psd2Poller(client, publisher, state_file, on_rejected=rejected)
            while True:
                report = poller.poll(date_from)
                date_from = None  # from the state from the second poll on
                print(json.dumps(report.to_json(), ensure_ascii=False), flush=True)
                if report.refused:
                    raise UsageError(report.error)
                if report.error:
                    print(f"dunning poll-psd2: {report.error}", file=sys.stderr, flush=True)
                if args.once:
                    return 130 if report.stopped else 0 if report.ok else 1
                if stop.is_set() or stop.wait(interval):
                    return 0
    except Psd2Error as exc:  # before a poll began: the state file, no start date
        raise UsageError(str(exc)) from None


def cmd_reference(settings: Settings, args) -> int:
    from streams.core.references import describe, reference_for

    if args.check:
        valid, what = describe(args.value)
        print(f"{args.value}: {'valid' if valid else 'not valid'}: {what}")
        return 0 if valid else 1
    try:
        print(reference_for(args.value, args.scheme))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return 0


# ----------------------------------------------------------------------------- parsing


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, got {text}")
    return value


def _utc_datetime(text: str):
    from datetime import datetime, timezone

    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _epilog(command: str) -> str:
    defaults = {name: (default, meaning) for name, default, meaning in variables()}
    lines = []
    if READS[command]:
        lines.append("environment:")
        for name in READS[command]:
            default, meaning = defaults[name]
            lines.append(f"  {name:<26} {meaning}" + (f" (default: {default})" if default else ""))
    lines.append(f"example:\n  {EXAMPLES[command]}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dunning", description="Event-driven credit management.",
                                     allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"dunning {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=description or help, epilog=_epilog(name),
                              allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter)

    demo = command("demo", "run everything embedded on the sample ledger and print a summary",
                   "Starts a broker, the worker, the sink and the projector as separate processes, runs the sample "
                   "ledger through them and prints a summary read back from the read models. Logs go to files "
                   "under DATA_DIR/demo/.")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.add_argument("--days", type=_positive_int, default=90, help="business days to run (default 90)")
    demo.set_defaults(func=cmd_demo)

    simulate = command("simulate", "run the core on a JSON-lines file, no broker")
    simulate.add_argument("file", type=Path, help="events, one JSON object per line")
    simulate.add_argument("--policy", type=Path, help="policy YAML (default: POLICY_FILE)")
    simulate.add_argument("--snapshots", action="store_true", help="also print final debtor snapshots")
    simulate.set_defaults(func=cmd_simulate)

    check = command("check-policy", "check a credit policy file and report its warnings",
                    "Checks the policy as every process that loads it does: unknown keys (with the nearest known "
                    "one), enumerated values, templates in every shipped language; warns about a segment that can "
                    "match no debtor and a workflow no segment uses. Exit status 0: valid; 1: valid with warnings "
                    "and --strict; 2: invalid.")
    check.add_argument("file", type=Path, help="the policy YAML")
    check.add_argument("--strict", action="store_true", help="exit 1 when there are warnings")
    check.set_defaults(func=cmd_check_policy)

    command("worker", "the Faust stream worker (ledger, bank and matching agents)").set_defaults(func=cmd_worker)
    command("sink", "the channel sink: sends e-mail, records the other channels' tasks").set_defaults(func=cmd_sink)
    command("project", "the read-model projector").set_defaults(func=cmd_project)

    broker = command("broker", "run an embedded Kafka-compatible broker until stopped",
                     "Runs the embedded broker (topics in memory only) and prints KAFKA_BOOTSTRAP and KAFKA_PROFILE "
                     "lines to export, so that separately started parts share it. Stops with Ctrl-C or SIGTERM.")
    broker.add_argument("--port", type=_port, default=0, help="port to listen on (default: a free one)")
    broker.set_defaults(func=cmd_broker)

    clock = command("clock", "publish DayStarted ticks")
    clock.add_argument("--start", type=date.fromisoformat, help="first business date (default: follow the calendar)")
    clock.add_argument("--days", type=_positive_int, default=1)
    clock.add_argument("--interval", type=float, default=1.0, help="seconds between ticks with --start")
    clock.set_defaults(func=cmd_clock)

    publish = command(
        "publish", "publish a JSON-lines file of input events",
        "Publishes the input events of FILE, one JSON object per line, each to its topic. Every bad "
        "line is reported on stderr with its line number and field. By default the whole file is "
        "checked first and NOTHING is published when any line is bad; --skip-invalid publishes the "
        "valid lines. A line may have at most 1 MiB. A record counts once the broker confirmed it. "
        "A DayStarted line goes out only once the worker has processed every line before it (a day "
        "starts after all of the day before is applied, so the outcome is that of dunning simulate); "
        "--no-wait publishes it at once. "
        "stdout: a JSON report (lines_published, records_delivered, lines_rejected, rejected_lines, "
        "records_failed, ...). Exit status 0: every line published; 1: a line rejected or a record "
        "not delivered; 2: usage error, FILE unreadable or KAFKA_BOOTSTRAP not set.")
    publish.add_argument("file", type=Path, help="events, one JSON object per line (a pipe such as /dev/stdin works)")
    publish.add_argument("--skip-invalid", action="store_true",
                         help="publish the valid lines even when some are bad (default: publish nothing then)")
    publish.add_argument("--no-wait", action="store_true",
                         help="publish DayStarted lines at once, without waiting for the worker")
    publish.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                         help="a record the broker has not confirmed after this long counts as failed (default 120)")
    publish.set_defaults(func=cmd_publish)

    replay = command(
        "replay-dead-letters", "put dead-lettered records back on their topics once the cause is fixed",
        "Reads dunning.dead-letters up to its current end and puts the original record of every "
        "letter that matches all filters given back on its source topic and partition. Events have "
        "stable ids: replaying a record twice changes nothing. stdout: a JSON report (letters, matched, "
        "replayed, by_topic).")
    replay.add_argument("--topic", help="only letters from this source topic, e.g. dunning.ledger")
    replay.add_argument("--reason", help="only letters whose reason contains this text (any case)")
    replay.add_argument("--key", help="only letters of this record key, e.g. a debtor id")
    replay.add_argument("--since", type=_utc_datetime, help="only letters written at or after (ISO 8601, UTC if no offset)")
    replay.add_argument("--until", type=_utc_datetime, help="only letters written before (ISO 8601)")
    replay.add_argument("--dry-run", action="store_true", help="count what would be replayed, replay nothing")
    replay.set_defaults(func=cmd_replay_dead_letters)

    sample = command("sample", "print the demo's sample ledger as JSON lines")
    sample.add_argument("--days", type=_positive_int, default=90)
    sample.set_defaults(func=cmd_sample)

    import_bank = command(
        "import-bank", "publish the payments of a bank statement file (camt.053, camt.054, PSD2 JSON)",
        "Reads FILE whole: a camt.053 or camt.054 statement (ISO 20022, versions 001.02 and 001.08) or a "
        "Berlin Group NextGenPSD2 transactions report (JSON), the format detected unless --format names it. "
        "Every booked transaction becomes a PaymentReceived with a stable id (the bank's reference), so "
        "importing a file twice changes nothing; debits are published marked as such and land in the "
        "unmatched queue, and a reversal of a credit takes back the payment it reverses; pending transactions wait for the statement that books them. A transaction that "
        "cannot be read is reported on stderr with its element and the reason and is not published; a file "
        "that is not a statement, or XML that declares a DTD, is refused whole. stdout: a JSON report (read, "
        "published, duplicates_skipped, pending_skipped, rejected). Exit status 0: all published; 1: a "
        "transaction or the file refused; 2: usage error.")
    import_bank.add_argument("file", type=Path, help="the statement file")
    import_bank.add_argument("--format", choices=("camt.053", "camt.054", "psd2-json"),
                             help="the file's format (default: detected from its content)")
    import_bank.set_defaults(func=cmd_import_bank)

    allocate = command(
        "allocate", "resolve a payment in the unmatched queue: to invoices, on account, or not a debtor's",
        "Looks PAYMENT_ID (the transaction id) up in the unmatched queue of the read model (DATABASE_URL) and "
        "publishes a PaymentAllocated to the bank topic: --invoice ID (repeat for several, paid in that order, the "
        "rest by the law's order), --debtor ID alone (on account: the debtor's open items, oldest first, the rest "
        "as credit; with --invoice: whose invoices, where two debtors have the same number) or --not-ours REASON "
        "(nothing is booked). The stream books it as a manual match, learns the payer's account for the next "
        "payment, and the row leaves the queue. The invoices and the debtor are checked against the read model "
        "first. stdout: what was published, as JSON. Exit status 0: published; 2: usage error or refused.")
    allocate.add_argument("payment_id", metavar="PAYMENT_ID", help="the transaction id of the queued payment")
    allocate.add_argument("--invoice", action="append", metavar="ID", help="an invoice it pays (repeatable)")
    allocate.add_argument("--debtor", metavar="ID", help="the debtor it goes to")
    allocate.add_argument("--not-ours", metavar="REASON", help="it is no debtor's payment: why")
    allocate.add_argument("--by", metavar="NAME", help="who decides, for the record")
    allocate.set_defaults(func=cmd_allocate)

    bench_matching = command(
        "bench-matching", "measure the matching cascade on a generated, labelled set of bank lines",
        "Generates DEBTORS debtors with open invoices and LINES labelled bank lines of one day (by reference, "
        "partial, a reference typo, the invoice number in the text or mistyped, a known account and the amount, "
        "combined payments, a group company paying, unrelated credits, refunds), runs them through the core and "
        "prints the automatic matches, their precision, the automatic-match rate over the lines that belong to a "
        "debtor and the lines per second. Exit status 0: the targets are met (precision 99.9 %, automatic "
        "matches 90 %, 5,000 lines/s, nothing lost); 1: not.")
    bench_matching.add_argument("--debtors", type=_positive_int, default=2_000)
    bench_matching.add_argument("--lines", type=_positive_int, default=10_000)
    bench_matching.add_argument("--seed", type=int, default=42)
    bench_matching.add_argument("--json", action="store_true")
    bench_matching.set_defaults(func=cmd_bench_matching)

    import_invoices = command(
        "import-invoices", "publish the debtors, invoices and credit notes of UBL documents or an open-item export",
        "Reads PATH whole: a folder of UBL 2.1 / Peppol BIS Billing 3.0 Invoice and CreditNote documents (.xml), "
        "one such document, or the CSV open-item export of Exact Online (ReceivablesList), Twinfield (browse "
        "100), Moneybird (sales invoices) or e-Boekhouden (GetOpenPosten), the format detected unless --format "
        "names it. Each debtor is registered once, then each invoice and credit note is published with a stable "
        "id, so importing the same files twice changes nothing. An open-item export's OPEN amounts are "
        "published, a negative one as a credit note; the invoices it lists are kept per source under "
        "DATA_DIR/invoice-imports/, and an invoice the last import listed and this one does not is reported "
        "(no_longer_listed), never closed. A document or row that cannot be read is reported on stderr with "
        "its file, element or line and the reason and is not published; a file that is neither, not UTF-8, or "
        "XML that declares a DTD is refused whole. stdout: a JSON report (debtors_published, "
        "invoices_published, credit_notes_published, duplicates_skipped, rejected, no_longer_listed, ...). "
        "Exit status 0: all published; 1: a document, row or file refused, or a record not delivered; 2: usage "
        "error.")
    import_invoices.add_argument("path", type=Path, metavar="FILE|DIR", help="the export file, or a folder of UBL .xml")
    import_invoices.add_argument("--format", metavar="FORMAT",
                                 help="ubl, exact, twinfield, moneybird or eboekhouden (default: detected)")
    import_invoices.add_argument("--source", help="whose listing an open-item export continues (default: the file's "
                                 "name without extension; give one when the name carries a date)")
    import_invoices.add_argument("--term-days", type=int, default=30, metavar="DAYS",
                                 help="days from invoice date to due date where the export has no due date "
                                 "(e-Boekhouden; default 30)")
    import_invoices.set_defaults(func=cmd_import_invoices)

    poll_psd2 = command(
        "poll-psd2", "poll a Berlin Group PSD2 account for booked transactions and publish them",
        "Asks PSD2_BASE_URL/v1/accounts/PSD2_ACCOUNT_ID/transactions?bookingStatus=booked&dateFrom=D (Consent-ID, "
        "Bearer token), follows _links.next to the last page and publishes every booked transaction as a "
        "PaymentReceived, with the same ids as import-bank gives the same JSON; pending ones wait until they are "
        "booked. Progress is kept in DATA_DIR/psd2/ACCOUNT.json, written once the broker confirmed: a poll stopped "
        "anywhere is followed by one that publishes exactly the rest. 429, 5xx and no answer are asked again with "
        "backoff for PSD2_RETRY_SECONDS; another 4xx (401: consent expired) ends the command with the bank's message. "
        "Without --once it polls every --interval seconds until Ctrl-C or SIGTERM. stdout: a JSON report per poll "
        "(pages, read, published, duplicates_skipped, pending_skipped, rejected). Exit status 0: all published; 1: "
        "a transaction rejected, not delivered, or the bank unreachable (--once); 2: usage error, a setting missing, "
        "the bank refused.")
    poll_psd2.add_argument("--date-from", type=date.fromisoformat, metavar="YYYY-MM-DD",
                           help="first booking date to read (needed for the first poll; later polls go on from the "
                                "state file)")
    poll_psd2.add_argument("--once", action="store_true", help="poll once, print the report and end")
    poll_psd2.add_argument("--interval", type=float, metavar="SECONDS",
                           help="seconds between polls (default: PSD2_POLL_SECONDS)")
    poll_psd2.set_defaults(func=cmd_poll_psd2)

    reference = command(
        "reference", "make (or check) the payment reference for an invoice number",
        "Prints the payment reference to put on an invoice: a Dutch betalingskenmerk (check digit and "
        "length code) for an invoice number of 7 to 12 or 15 digits, otherwise an ISO 11649 RF creditor "
        "reference of its letters and digits (at most 21). With --check, says whether VALUE is a valid "
        "reference and which kind (exit status 0: valid, 1: not).")
    reference.add_argument("value", metavar="INVOICE_NUMBER", help="the invoice number (with --check: a reference)")
    reference.add_argument("--scheme", choices=("auto", "betalingskenmerk", "rf"), default="auto",
                           help="auto (default): a betalingskenmerk where the number allows one, else RF")
    reference.add_argument("--check", action="store_true", help="check VALUE as a payment reference instead")
    reference.set_defaults(func=cmd_reference)

    bench = command("bench", "measure throughput, latency and memory")
    bench.add_argument("--json", action="store_true")
    bench.add_argument("--events", type=_positive_int, default=100_000, help="events for the end-to-end run")
    bench.add_argument("--core-events", type=_positive_int, default=200_000)
    bench.add_argument("--memory-debtors", type=_positive_int, default=100_000)
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prog = f"dunning {args.command}"
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return USAGE_ERROR
    try:
        log_file = None
        if args.command == "demo":  # the terminal gets the summary; the logs go to files
            import shutil

            shutil.rmtree(settings.data_dir / "demo", ignore_errors=True)
            log_file = settings.prepare_data_dir() / "demo" / "demo.log"
        configure_logging(settings.log_level, process=f"dunning-{args.command}", log_file=log_file)
        return args.func(settings, args) or 0
    except (UsageError, SettingsError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except BrokenPipeError:
        # The reader went away (``dunning sample | head``): nothing left to say to it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
