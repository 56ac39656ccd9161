"""``dunning demo``: the whole platform on embedded parts, on the sample ledger.

Starts the broker, the stream worker, the channel sink and the projector as separate
processes, publishes 90 business days of the sample ledger, waits until the read models
have caught up and prints what happened, read back from the read models.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connectors.publisher import Publisher
from harness.drive import drive, wait_until_day_done
from harness.sample_ledger import sample_days
from harness.stack import Stack
from harness.watch import pipeline_watcher
from projections import queries
from projections.db import make_engine, migrate
from projections.models import Action, Debtor
from schemas.codec import Codec
from streams.core import events as ev


def wait_for_projection(engine, debtors: int, last_day, actions: int, timeout: float = 90.0) -> None:
    """The read models show every debtor on the last day and every action delivered."""
    deadline = time.monotonic() + timeout
    while True:
        with Session(engine) as session:
            caught_up = session.scalar(select(func.count()).where(Debtor.business_date >= last_day))
            delivered = session.scalar(
                select(func.count()).select_from(Action).where(Action.delivery_status != "pending", Action.step.is_not(None))
            )
        if caught_up >= debtors and delivered >= actions:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"read models not caught up after {timeout} s: {caught_up}/{debtors} debtors on {last_day}, "
                f"{delivered}/{actions} actions delivered"
            )
        time.sleep(0.2)


def summary(engine, started: float, dead_letters: int, outbox: Path | None) -> dict:
    with Session(engine) as session:
        counts = queries.action_counts(session)
        return {
            "elapsed_seconds": round(time.monotonic() - started, 1),
            "actions_by_channel_and_step": counts,
            "actions_total": sum(row["actions"] for row in counts),
            "limit_events": queries.limit_events(session),
            "promises": queries.promise_agenda(session),
            "open_disputes": queries.open_disputes(session),
            "unmatched_payments": queries.unmatched_payments(session),
            "largest_overdue": queries.largest_overdue(session, 10),
            "aging": queries.aging_totals(session),
            "call_list": len(queries.call_list(session)),
            "emails_in_outbox_folder": len(list(outbox.glob("*.eml"))) if outbox and outbox.exists() else None,
            "dead_letters": dead_letters,
        }


def run_demo(data_dir: Path, *, partitions: int, database_url: str | None, smtp_url: str | None,
             bootstrap: str | None, codec: Codec, as_json: bool = False, days: int = 90) -> int:
    """Runs the demo with its files (read models, outbox, one log per process) in
    ``data_dir``; prints the summary, and nothing else, on stdout."""
    started = time.monotonic()
    data_dir.mkdir(parents=True, exist_ok=True)
    db_url = database_url or f"sqlite:///{data_dir / 'dunning.db'}"
    env = {"DATABASE_URL": db_url}
    if smtp_url:
        env["SMTP_URL"] = smtp_url
    timeline = sample_days(days=days)
    debtor_ids = {e.debtor_id for day in timeline for e in day.ledger if isinstance(e, ev.DebtorRegistered)}

    engine = make_engine(db_url)
    migrate(engine)
    with Stack(data_dir, partitions, env, bootstrap=bootstrap) as stack:
        for role in ("worker", "sink", "project"):
            stack.start(role)
        watcher = pipeline_watcher(stack.bootstrap, codec).start()
        try:
            publisher = Publisher(stack.bootstrap, codec, partitions)
            drive(publisher, timeline, timeout=120)
            wait_until_day_done(watcher, debtor_ids, timeline[-1].date, timeout=120)
            actions = {a.action_id for a in watcher.events("DunningActionDue")}
            wait_for_projection(engine, len(debtor_ids), timeline[-1].date, len(actions))
            report = summary(engine, started, len(watcher.events("DeadLetter")),
                             None if smtp_url else data_dir / "outbox")
        finally:
            watcher.stop()
    print(json.dumps(report, indent=2, default=str) if as_json else render_summary(report, data_dir))
    return 0


def _money(minor: int | None) -> str:
    if minor is None:
        return "-"
    return f"EUR {minor / 100:>12,.2f}"


def render_summary(report: dict, data_dir: Path) -> str:
    lines = [f"Demo finished in {report['elapsed_seconds']} s (read models in {data_dir}, "
             f"logs in {data_dir}/*.log).", ""]
    lines.append(f"Dunning actions: {report['actions_total']}")
    for row in report["actions_by_channel_and_step"]:
        lines.append(f"  {row['workflow']:<12} {row['step']}. {row['step_name']:<15} {row['channel']:<11} {row['actions']:>4}")
    lines.append("")
    kinds = Counter(e["kind"] for e in report["limit_events"])
    lines.append("Credit-limit events: " + (", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none"))
    for e in report["limit_events"]:
        lines.append(f"  {e['business_date']} {e['debtor_id']} {e['kind']:<9} exposure {_money(e['exposure_minor'])}"
                     f" of limit {_money(e['credit_limit_minor'])} ({e['utilisation_bp'] / 100:.1f} %)")
    lines.append("")
    lines.append("Promises to pay: " + ", ".join(f"{status} {len(rows)}" for status, rows in report["promises"].items()))
    lines.append(f"Open disputes: {len(report['open_disputes'])}")
    lines.append(f"Unmatched payments: {len(report['unmatched_payments'])}")
    for p in report["unmatched_payments"]:
        lines.append(f"  {p['transaction_id']} {_money(p['amount_minor'])}: {p['reason']}")
    lines.append(f"Open call tasks: {report['call_list']}")
    if report["emails_in_outbox_folder"] is not None:
        lines.append(f"E-mails written to the outbox folder: {report['emails_in_outbox_folder']}")
    lines.append(f"Dead letters: {report['dead_letters']}")
    lines.append("")
    lines.append("Ten largest overdue debtors:")
    for d in report["largest_overdue"]:
        lines.append(f"  {d['debtor_id']} {d['name']:<16} {d['segment']:<11} overdue {_money(d['overdue_minor'])}"
                     f"  balance {_money(d['balance_minor'])}  limit {d['limit_state']}")
    return "\n".join(lines)
