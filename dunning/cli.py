"""``dunning``: every command of the platform.

With no KAFKA_BOOTSTRAP set, a command that needs Kafka starts the embedded broker for
its own lifetime; ``demo`` starts one broker and runs the worker, the sink and the
projector against it as separate processes.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

from dunning.config import Settings
from dunning.observability import configure_logging, serve_metrics
from dunning.runtime import tune_garbage_collector


def _policy(path: Path):
    from streams.core.policy import policy_from_yaml

    return policy_from_yaml(path.read_text(encoding="utf-8"), str(path))


def cmd_worker(settings: Settings, args) -> int:
    import faust

    from dunning.embedded import bootstrap_servers
    from dunning.kafka_io import ensure_topics
    from schemas.codec import Codec
    from streams.app import create_app

    serve_metrics(settings.metrics_port, settings.metrics_host)
    with bootstrap_servers(settings.kafka_bootstrap) as bootstrap:
        ensure_topics(bootstrap, settings.partitions)
        app = create_app(settings, bootstrap, _policy(settings.policy_file), Codec.from_env())
        tune_garbage_collector()
        worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True, override_logging=False,
                              redirect_stdouts=False)  # keep structlog's JSON lines on stderr
        worker.execute_from_commandline()
    return 0


def _run_consumer_process(settings: Settings, run) -> int:
    from dunning.embedded import bootstrap_servers
    from dunning.kafka_io import ensure_topics

    serve_metrics(settings.metrics_port, settings.metrics_host)
    with bootstrap_servers(settings.kafka_bootstrap) as bootstrap:
        ensure_topics(bootstrap, settings.partitions)
        run(settings, bootstrap)
    return 0


def cmd_sink(settings: Settings, args) -> int:
    from dunning.runners import run_sink

    return _run_consumer_process(settings, run_sink)


def cmd_project(settings: Settings, args) -> int:
    from dunning.runners import run_projector

    return _run_consumer_process(settings, run_projector)


def cmd_clock(settings: Settings, args) -> int:
    from connectors.publisher import Publisher
    from dunning.clock import run_calendar, run_range
    from dunning.embedded import bootstrap_servers
    from dunning.kafka_io import ensure_topics
    from schemas.codec import Codec

    serve_metrics(settings.metrics_port, settings.metrics_host)
    with bootstrap_servers(settings.kafka_bootstrap) as bootstrap:
        ensure_topics(bootstrap, settings.partitions)
        publisher = Publisher(bootstrap, Codec.from_env(), settings.partitions)
        if args.start:
            run_range(publisher, args.start, args.days, args.interval)
        else:
            run_calendar(publisher)
    return 0


def cmd_publish(settings: Settings, args) -> int:
    from contextlib import contextmanager

    from connectors.publisher import Publisher, open_events_file, publish_file
    from dunning.embedded import bootstrap_servers
    from dunning.kafka_io import ensure_topics, make_producer
    from schemas.codec import Codec

    if not args.timeout > 0:  # librdkafka reads 0 as "wait for ever"
        print("dunning publish: --timeout must be more than 0 seconds", file=sys.stderr)
        return 2
    codec = Codec.from_env()
    try:
        handle = open_events_file(args.file)
    except OSError as exc:
        print(f"{args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2

    @contextmanager
    def connect():
        with bootstrap_servers(settings.kafka_bootstrap) as bootstrap:
            ensure_topics(bootstrap, settings.partitions)
            producer = make_producer(bootstrap, **{"message.timeout.ms": int(args.timeout * 1000), "linger.ms": 20})
            yield Publisher(bootstrap, codec, settings.partitions, producer)

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
    from dunning.kafka_io import end_offsets, ensure_topics
    from schemas.codec import Codec
    from streams import topics

    if not settings.kafka_bootstrap:
        print("dunning replay-dead-letters: set KAFKA_BOOTSTRAP to the broker whose dead letters to replay",
              file=sys.stderr)
        return 2
    letter_filter = LetterFilter(args.topic, args.reason, args.key, args.since, args.until)
    bootstrap = settings.kafka_bootstrap
    ensure_topics(bootstrap, settings.partitions)
    ends = end_offsets(bootstrap, [topics.DEAD_LETTERS.name])
    codec = Codec.from_env()
    report = replay(bootstrap, codec, Publisher(bootstrap, codec, settings.partitions), ends, letter_filter, args.dry_run)
    print(json.dumps({**report.to_json(), "dry_run": args.dry_run}))
    return 0


def _utc_datetime(text: str):
    from datetime import datetime, timezone

    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def cmd_simulate(settings: Settings, args) -> int:
    from connectors.publisher import read_events
    from schemas.json_form import event_to_json
    from streams.core.simulate import Rejected, simulate

    events, errors = read_events(args.file)
    for error in errors:
        print(f"{args.file}: {error}", file=sys.stderr)
    if errors:
        return 1
    policy = _policy(args.policy or settings.policy_file)
    tune_garbage_collector()
    for output in simulate(events, policy, snapshots=args.snapshots):
        if isinstance(output, Rejected):
            record = {"type": "Rejected", "line": output.position, "event_id": output.event_id,
                      "field": output.field, "reason": output.reason}
        else:
            record = event_to_json(output)
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


def cmd_demo(settings: Settings, args) -> int:
    from dunning.demo import run_demo

    return run_demo(settings, as_json=args.json, days=args.days)


def cmd_bench(settings: Settings, args) -> int:
    from dunning.bench import run_bench

    tune_garbage_collector()  # as the worker runs: the core figure is measured in this process
    return run_bench(settings, args)


def cmd_sample(settings: Settings, args) -> int:
    from dunning.sample_ledger import sample_events
    from schemas.json_form import event_to_json

    for event in sample_events(days=args.days):
        sys.stdout.write(json.dumps(event_to_json(event), ensure_ascii=False) + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dunning", description="Event-driven credit management.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run everything embedded on the sample ledger and summarise")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.add_argument("--days", type=int, default=90, help="business days to run (default 90)")
    demo.set_defaults(func=cmd_demo)

    simulate = sub.add_parser("simulate", help="run the core on a JSON-lines file, no broker")
    simulate.add_argument("file", type=Path, help="events, one JSON object per line")
    simulate.add_argument("--policy", type=Path, help="policy YAML (default: the sample policy)")
    simulate.add_argument("--snapshots", action="store_true", help="also print final debtor snapshots")
    simulate.set_defaults(func=cmd_simulate)

    sub.add_parser("worker", help="the Faust stream worker").set_defaults(func=cmd_worker)
    sub.add_parser("sink", help="the channel sink (e-mail, tasks)").set_defaults(func=cmd_sink)
    sub.add_parser("project", help="the read-model projector").set_defaults(func=cmd_project)

    clock = sub.add_parser("clock", help="publish DayStarted ticks")
    clock.add_argument("--start", type=date.fromisoformat, help="first business date (default: follow the calendar)")
    clock.add_argument("--days", type=int, default=1)
    clock.add_argument("--interval", type=float, default=1.0, help="seconds between ticks with --start")
    clock.set_defaults(func=cmd_clock)

    publish = sub.add_parser(
        "publish", help="publish a JSON-lines file of input events",
        description="Publishes the input events of FILE, one JSON object per line, each to its topic. Every bad "
                    "line is reported on stderr with its line number and field. By default the whole file is "
                    "checked first and NOTHING is published when any line is bad; --skip-invalid publishes the "
                    "valid lines. A line may have at most 1 MiB. A record counts once the broker confirmed it. "
                    "stdout: a JSON report (lines_published, records_delivered, lines_rejected, rejected_lines, "
                    "records_failed, ...). Exit status 0: every line published; 1: a line rejected or a record "
                    "not delivered; 2: usage error or FILE unreadable.")
    publish.add_argument("file", type=Path, help="events, one JSON object per line (a pipe such as /dev/stdin works)")
    publish.add_argument("--skip-invalid", action="store_true",
                         help="publish the valid lines even when some are bad (default: publish nothing then)")
    publish.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                         help="a record the broker has not confirmed after this long counts as failed (default 120)")
    publish.set_defaults(func=cmd_publish)

    replay = sub.add_parser(
        "replay-dead-letters", help="put dead-lettered records back on their topics once the cause is fixed",
        description="Reads dunning.dead-letters up to its current end and puts the original record of every "
                    "letter that matches all filters given back on its source topic and partition. Events have "
                    "stable ids: replaying a record twice changes nothing. Needs KAFKA_BOOTSTRAP. stdout: a JSON "
                    "report (letters, matched, replayed, by_topic).",
        epilog="example: dunning replay-dead-letters --topic dunning.actions --reason SendDeferred --dry-run")
    replay.add_argument("--topic", help="only letters from this source topic, e.g. dunning.ledger")
    replay.add_argument("--reason", help="only letters whose reason contains this text (any case)")
    replay.add_argument("--key", help="only letters of this record key, e.g. a debtor id")
    replay.add_argument("--since", type=_utc_datetime, help="only letters written at or after (ISO 8601, UTC if no offset)")
    replay.add_argument("--until", type=_utc_datetime, help="only letters written before (ISO 8601)")
    replay.add_argument("--dry-run", action="store_true", help="count what would be replayed, replay nothing")
    replay.set_defaults(func=cmd_replay_dead_letters)

    sample = sub.add_parser("sample", help="print the demo's sample ledger as JSON lines")
    sample.add_argument("--days", type=int, default=90)
    sample.set_defaults(func=cmd_sample)

    bench = sub.add_parser("bench", help="measure throughput, latency and memory")
    bench.add_argument("--json", action="store_true")
    bench.add_argument("--events", type=int, default=100_000, help="events for the end-to-end run")
    bench.add_argument("--core-events", type=int, default=200_000)
    bench.add_argument("--memory-debtors", type=int, default=100_000)
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings.log_level, process=f"dunning-{args.command}")
    return args.func(settings, args) or 0


if __name__ == "__main__":
    sys.exit(main())
