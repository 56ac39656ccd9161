"""``dunning bench``: figures, not assertions.

1. core: input events per second through the in-memory pipeline on one core (median of
   three rounds);
2. end to end: events per second through the embedded broker and one Faust worker, for
   a mix of registrations, invoices, payments (three hops: bank, matcher, ledger) and
   day ticks, from the first publish until the worker has committed every offset (each
   tick waits for what came before it, as ``dunning publish`` does). The run then checks
   its own outcome against the in-memory pipeline (every payment matched, every debtor's
   final state equal) and prints no figure at all when they differ;
3. the ceiling: raw aiokafka consumption of the same ledger records, and the ratio;
4. latency: payment published -> snapshot showing it paid, p50/p99, at a paced rate;
5. memory: peak RSS of the worker, and of a process holding 100,000 debtors with
   10 open items each the way the worker's table holds them.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

from harness import SAMPLE_POLICY
from harness.stack import Stack
from harness.watch import TopicWatcher
from schemas import topics
from schemas.codec import Codec
from streams.core import events as ev
from streams.core.pipeline import Pipeline
from streams.core.policy import policy_from_yaml
from streams.core.references import betalingskenmerk_for
from streams.kafka.clients import make_producer
from streams.kafka.progress import WorkerProgress

START = date(2025, 1, 1)


# --------------------------------------------------------------------------- workload


def workload(debtors: int, events: int, seed: int = 1, ticks: int = 3) -> list:
    """Registrations, then invoices and payments of them in a 60/40 mix, with ``ticks`` day
    ticks spread evenly through; every payment carries the reference of an earlier invoice."""
    rng = random.Random(seed)
    out: list = []
    for n in range(debtors):
        kind = "B2C" if n % 2 else "B2B"
        out.append(ev.DebtorRegistered(f"b-reg-{n}", f"B{n:06d}", f"Debtor {n}", kind,
                                       segment="smb", email=f"b{n}@example.nl", credit_limit_minor=5_000_000))
    unpaid: list[ev.InvoiceIssued] = []
    tick_every = max(1, (events - debtors) // (ticks + 1))
    day = 0
    number = 10_000_000
    while len(out) < events:
        if day < ticks and (len(out) - debtors) % tick_every == tick_every - 1:
            day += 1
            out.append(ev.DayStarted(f"b-day-{day}", START + timedelta(days=day)))
        elif unpaid and rng.random() < 0.4:
            invoice = unpaid.pop(rng.randrange(len(unpaid)))
            out.append(ev.PaymentReceived(f"b-pay-{invoice.invoice_id}", f"T{invoice.invoice_id}", START + timedelta(days=day),
                                          invoice.amount_minor, structured_reference=invoice.payment_reference))
        else:
            number += 1
            debtor = f"B{rng.randrange(debtors):06d}"
            issued = START + timedelta(days=day)
            invoice = ev.InvoiceIssued(f"b-inv-{number}", debtor, f"I{number}", issued, issued + timedelta(days=14),
                                       rng.randint(1_000, 500_000), payment_reference=betalingskenmerk_for(str(number)))
            unpaid.append(invoice)
            out.append(invoice)
    return out


def policy():
    return policy_from_yaml(SAMPLE_POLICY.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- 1. core


def bench_core(n_events: int, rounds: int = 3) -> dict:
    """The same events through a fresh pipeline ``rounds`` times; the median round is the
    figure (this machine's speed wanders by a fifth from one second to the next)."""
    events = workload(debtors=2_000, events=n_events, ticks=5)
    rates = []
    for _ in range(rounds):
        pipeline = Pipeline(policy())
        started = time.perf_counter()
        outputs = 0
        for event in events:
            outputs += len(pipeline.process(event))
        rates.append(len(events) / (time.perf_counter() - started))
    return {"events": len(events), "mix": _mix(events), "outputs": outputs,
            "events_per_second": round(statistics.median(rates)), "rounds": [round(r) for r in sorted(rates)]}


def _mix(events: list) -> dict[str, int]:
    return dict(Counter(type(e).__name__ for e in events))


# --------------------------------------------------------------------------- 2./3. end to end


def _wait_worker_ready(stack: Stack, codec: Codec, timeout: float = 120) -> None:
    """A registration goes in and its snapshot comes out: the worker has joined."""
    watcher = TopicWatcher(stack.bootstrap, codec, [topics.SNAPSHOTS.name]).start()
    producer = make_producer(stack.bootstrap)
    warm = ev.DebtorRegistered("bench-warm", "WARMUP", "Warm-up", "B2B")
    producer.produce(topics.LEDGER.name, key=b"WARMUP", value=codec.encode(topics.LEDGER.name, warm))
    producer.flush(10)
    try:
        watcher.wait_for(lambda w: any(s.debtor_id == "WARMUP" for s in w.events("DebtorSnapshot")), timeout,
                         "the worker to join")
    finally:
        watcher.stop()


def _produce_all(bootstrap: str, codec: Codec, events: list, partitions: int) -> None:
    """As ``dunning publish`` does: each tick waits until the worker has processed what
    came before it."""
    from connectors.publisher import Publisher

    Publisher(bootstrap, codec, partitions, make_producer(bootstrap, **{"linger.ms": 20}),
              before_tick=WorkerProgress(bootstrap, timeout=900)).publish_all(events)


class OutcomeDiffers(RuntimeError):
    """The streamed run did not come out as the in-memory pipeline: no figure is printed."""


def check_outcome(bootstrap: str, codec: Codec, events: list) -> dict:
    """The streamed run's outcome against the in-memory pipeline's on the same events:
    every payment matched (none waiting, none reported unmatched) and each debtor's final
    snapshot equal. Raises ``OutcomeDiffers`` naming what differs."""
    pipeline = Pipeline(policy())
    expected_unmatched = sum(1 for e in events for o in pipeline.process(e) if type(o) is ev.PaymentUnmatched)
    expected = {s.debtor_id: s for s in pipeline.snapshots()}
    waiting = sum(len(pipeline.slots[key].waiting) for key in pipeline.waiting)
    watcher = TopicWatcher(bootstrap, codec, [topics.SNAPSHOTS.name, topics.UNMATCHED.name]).start()
    try:
        watcher.wait_caught_up(300)
        latest: dict[str, ev.DebtorSnapshot] = {}
        for snap in watcher.events("DebtorSnapshot"):
            if snap.debtor_id in expected and (snap.debtor_id not in latest or snap.version > latest[snap.debtor_id].version):
                latest[snap.debtor_id] = snap
        unmatched = len(watcher.events("PaymentUnmatched"))
    finally:
        watcher.stop()
    differing = sorted(d for d, snap in expected.items() if latest.get(d) != snap)
    problems = []
    if expected_unmatched or waiting:
        problems.append(f"the workload itself leaves {expected_unmatched} payments unmatched")
    if unmatched != expected_unmatched:
        problems.append(f"{unmatched} payments reported unmatched, the in-memory pipeline {expected_unmatched}")
    if differing:
        problems.append(f"{len(differing)} of {len(expected)} debtors' final states differ from the in-memory "
                        f"pipeline's (first: {differing[0]})")
    if problems:
        raise OutcomeDiffers("; ".join(problems))
    return {"payments_matched": sum(1 for e in events if isinstance(e, ev.PaymentReceived)),
            "final_states_equal_to_simulate": len(expected)}


def _raw_aiokafka_rate(bootstrap: str, topic: str, expected: int) -> dict:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def consume() -> tuple[int, float]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            count, started = 0, time.perf_counter()
            while count < expected:
                batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                if not batches:
                    break
                count += sum(len(b) for b in batches.values())
            return count, time.perf_counter() - started
        finally:
            await consumer.stop()

    count, elapsed = asyncio.run(consume())
    return {"records": count, "seconds": round(elapsed, 3), "records_per_second": round(count / elapsed)}


def _peak_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def bench_end_to_end(partitions: int, n_events: int, data_dir: Path) -> dict:
    codec = Codec()
    events = workload(debtors=max(1_000, n_events // 20), events=n_events, ticks=2)
    ledger_records = sum(1 for e in events if not isinstance(e, (ev.PaymentReceived, ev.DayStarted)))
    ledger_records += sum(partitions for e in events if isinstance(e, ev.DayStarted))
    with Stack(data_dir, partitions, {}) as stack:
        worker = stack.start("worker")
        _wait_worker_ready(stack, codec)
        started = time.perf_counter()
        _produce_all(stack.bootstrap, codec, events, partitions)
        produced = time.perf_counter() - started
        WorkerProgress(stack.bootstrap, timeout=900)()  # every offset committed
        elapsed = time.perf_counter() - started
        outcome = check_outcome(stack.bootstrap, codec, events)
        # Payments come back to the ledger as PaymentMatched: count them in the ceiling too.
        raw = _raw_aiokafka_rate(stack.bootstrap, topics.LEDGER.name, ledger_records)
        worker_rss = _peak_rss_mib(worker.pid)
        latency = bench_latency(stack, codec, rate=500, seconds=20)
    rate = len(events) / elapsed
    return {
        "events": len(events),
        "mix": _mix(events),
        "publish_seconds": round(produced, 3),
        "seconds": round(elapsed, 3),
        "events_per_second": round(rate),
        "raw_aiokafka": raw,
        "ratio_to_raw": round(rate / raw["records_per_second"], 3),
        "worker_peak_rss_mib": worker_rss,
        "outcome": outcome,
        "payment_to_snapshot": latency,
        "note": "end of run = every offset committed (commit interval 0.2 s); each tick waits for the day before it",
    }


# --------------------------------------------------------------------------- 4. latency


def bench_latency(stack: Stack, codec: Codec, rate: int, seconds: int) -> dict:
    """Paced mix at ``rate`` events/s; each payment is timed until a snapshot no longer
    lists its invoice as open."""
    from connectors.publisher import Publisher

    publisher = Publisher(stack.bootstrap, codec, stack.partitions, make_producer(stack.bootstrap, **{"linger.ms": 0}))
    pending: dict[tuple[str, str], float] = {}
    latencies: list[float] = []
    lock = threading.Lock()

    def seen(event, received: float) -> None:
        if isinstance(event, ev.DebtorSnapshot):
            open_ids = {i.invoice_id for i in event.items}
            with lock:
                for key in [k for k in pending if k[0] == event.debtor_id and k[1] not in open_ids]:
                    latencies.append(received - pending.pop(key))

    debtors = 200
    setup = [ev.DebtorRegistered(f"l-reg-{n}", f"L{n:04d}", f"Latency {n}", "B2B", segment="smb") for n in range(debtors)]
    invoices = [
        ev.InvoiceIssued(f"l-inv-{n}", f"L{n % debtors:04d}", f"L-I{n}", START, START + timedelta(days=30), 10_000,
                         payment_reference=betalingskenmerk_for(str(30_000_000 + n)))
        for n in range(rate * seconds)
    ]
    # From the end: snapshots of earlier runs are not this measurement's, and reading them
    # first would count as latency.
    watcher = TopicWatcher(stack.bootstrap, codec, [topics.SNAPSHOTS.name], seen=seen, from_end=True).start()
    try:
        publisher.publish_all(setup)
        interval = 1.0 / rate
        next_at = time.perf_counter()
        paid = 0
        for n in range(rate * seconds):
            # Alternate invoices and payments of invoices issued a second earlier.
            if n % 2 == 0 or paid >= n // 2 - rate:
                publisher.publish(invoices[n])
            else:
                invoice = invoices[paid * 2]
                paid += 1
                with lock:
                    pending[(invoice.debtor_id, invoice.invoice_id)] = time.time()
                publisher.publish(ev.PaymentReceived(f"l-pay-{invoice.invoice_id}", f"LT{invoice.invoice_id}", START,
                                                     invoice.amount_minor, structured_reference=invoice.payment_reference))
            publisher.producer.poll(0)
            next_at += interval
            pause = next_at - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        publisher.flush()
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        watcher.stop()
    values = sorted(latencies)
    if not values:
        return {"payments": 0}
    return {
        "rate_events_per_second": rate,
        "payments": len(values),
        "unresolved": len(pending),
        "p50_ms": round(statistics.median(values) * 1000, 1),
        "p99_ms": round(values[min(len(values) - 1, int(len(values) * 0.99))] * 1000, 1),
        "max_ms": round(values[-1] * 1000, 1),
    }


# --------------------------------------------------------------------------- 5. memory


def bench_memory(debtors: int) -> dict:
    """Run in a fresh process so its peak RSS is the figure."""
    output = subprocess.run([sys.executable, "-m", "harness.bench", "memory", str(debtors)], check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output)


def _memory_child(debtors: int) -> None:
    from streams.core.state import Debtor, DebtorState, Item
    from streams.worker.state_codec import encode_state

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    table: dict[bytes, bytes] = {}  # what the worker's memory-store table holds
    for n in range(debtors):
        debtor_id = f"M{n:07d}"
        items = tuple(
            Item(f"INV-{n}-{i}", f"evt-{n}-{i}", START, START + timedelta(days=30 + i), 10_000 + i, payment_reference=betalingskenmerk_for(str(10_000_000 + n * 10 + i)))
            for i in range(10)
        )
        state = DebtorState(debtor_id, Debtor(f"Debtor {n}", "B2B", "smb", "nl", "EUR", email=f"m{n}@example.nl"),
                            credit_limit_minor=5_000_000, limit_state="ok", today=START, version=11)
        state.keep_items({item.invoice_id: item for item in items})
        table[debtor_id.encode()] = encode_state(state)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"debtors": debtors, "open_items": debtors * 10,
                      "table_bytes_mib": round(sum(len(v) + len(k) for k, v in table.items()) / 2**20, 1),
                      "peak_rss_mib": round(peak / 1024, 1), "python_baseline_mib": round(baseline / 1024, 1)}))


# --------------------------------------------------------------------------- command


def run_bench(partitions: int, data_dir: Path, args) -> int:
    report = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    report["core"] = bench_core(args.core_events)
    _say(args, "core", report["core"])
    report["memory"] = bench_memory(args.memory_debtors)
    _say(args, "memory", report["memory"])
    try:
        report["end_to_end"] = bench_end_to_end(partitions, args.events, data_dir)
    except OutcomeDiffers as exc:
        print(f"dunning bench: end to end: the streamed run differs from the in-memory pipeline, so no figure: "
              f"{exc}", file=sys.stderr)
        return 1
    _say(args, "end to end", report["end_to_end"])
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


def _say(args, name: str, figures: dict) -> None:
    if not args.json:
        print(f"{name}: {json.dumps(figures)}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "memory":
        _memory_child(int(sys.argv[2]))
