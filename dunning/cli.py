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

    serve_metrics(settings.metrics_port)
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

    serve_metrics(settings.metrics_port)
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

    serve_metrics(settings.metrics_port)
    with bootstrap_servers(settings.kafka_bootstrap) as bootstrap:
        ensure_topics(bootstrap, settings.partitions)
        publisher = Publisher(bootstrap, Codec.from_env(), settings.partitions)
        if args.start:
            run_range(publisher, args.start, args.days, args.interval)
        else:
            run_calendar(publisher)
    return 0


def cmd_publish(settings: Settings, args) -> int:
    from connectors.publisher import Publisher, read_events
    from dunning.embedded import bootstrap_servers
    from dunning.kafka_io import ensure_topics
    from schemas.codec import Codec

    events, errors = read_events(args.file)
    for error in errors:
        print(f"{args.file}: {error}", file=sys.stderr)
    with bootstrap_servers(settings.kafka_bootstrap) as bootstrap:
        ensure_topics(bootstrap, settings.partitions)
        count = Publisher(bootstrap, Codec.from_env(), settings.partitions).publish_all(events)
    print(json.dumps({"published": count, "rejected_lines": [e.line for e in errors]}))
    return 1 if errors else 0


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

    publish = sub.add_parser("publish", help="publish a JSON-lines file of input events")
    publish.add_argument("file", type=Path)
    publish.set_defaults(func=cmd_publish)

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
