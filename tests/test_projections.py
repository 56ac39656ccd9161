"""Read models: migrations, the projector and the queries, on SQLite and on PostgreSQL."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from projections import queries
from projections.db import alembic_config, make_engine, migrate
from projections.models import Action, Base, Debtor, Dispute, OpenItem, Promise, Task
from projections.projector import Projector
from sinks import registry
from streams.core import events as ev
from tests.support import postgres_database

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
DAY = date(2024, 3, 1)

# --------------------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def postgres_url():
    """A throw-away PostgreSQL database for this test run, dropped at the end."""
    with postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A database of each kind: a new SQLite file, or this run's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'read-models.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(database_url):
    """A migrated database with empty read models."""
    migrate(database_url)
    engine = make_engine(database_url)
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
    yield engine
    engine.dispose()


@pytest.fixture
def projector(engine):
    return Projector(engine, registry.task_channels())


@pytest.fixture
def session(engine):
    with Session(engine) as session:
        yield session


# --------------------------------------------------------------------------- events


def snapshot(debtor_id: str = "D1", version: int = 1, **changes) -> ev.DebtorSnapshot:
    base = ev.DebtorSnapshot(
        event_id=f"snap-{debtor_id}-{version}",
        debtor_id=debtor_id,
        version=version,
        business_date=DAY,
        name=f"Debtor {debtor_id}",
        kind="B2B",
        segment="smb",
        workflow="b2b-standard",
        currency="EUR",
        balance_minor=0,
        overdue_minor=0,
        credit_minor=0,
        aging_not_due_minor=0,
        aging_1_30_minor=0,
        aging_31_60_minor=0,
        aging_61_90_minor=0,
        aging_over_90_minor=0,
        credit_limit_minor=None,
        utilisation_bp=None,
        limit_state="none",
        email=f"{debtor_id.lower()}@example.nl",
        phone="+31201234567",
    )
    return replace(base, **changes)


def item(invoice_id: str, open_minor: int, amount_minor: int = 10_000, **changes) -> ev.SnapshotItem:
    base = ev.SnapshotItem(
        invoice_id=invoice_id,
        issue_date=date(2024, 1, 1),
        due_date=date(2024, 1, 31),
        amount_minor=amount_minor,
        paid_minor=amount_minor - open_minor,
        credited_minor=0,
        disputed_minor=0,
        open_minor=open_minor,
        dunning_step=1,
        payment_reference=f"RF18{invoice_id}",
    )
    return replace(base, **changes)


def dispute(dispute_id: str, invoice_id: str, amount_minor: int = 5_000) -> ev.SnapshotDispute:
    return ev.SnapshotDispute(
        dispute_id=dispute_id,
        invoice_id=invoice_id,
        kind="dispute",
        amount_minor=amount_minor,
        opened_on=date(2024, 2, 10),
        reason="goods damaged",
        owner="anna",
    )


def promise(promise_id: str, status: str = "running", paid_minor: int = 0) -> ev.SnapshotPromise:
    return ev.SnapshotPromise(
        promise_id=promise_id,
        made_on=date(2024, 2, 20),
        promised_date=date(2024, 3, 5),
        amount_minor=8_000,
        paid_minor=paid_minor,
        status=status,
    )


def action(action_id: str = "A1", debtor_id: str = "D1", channel: str = "email", step: int = 1, **changes):
    base = ev.DunningActionDue(
        action_id=action_id,
        debtor_id=debtor_id,
        business_date=DAY,
        workflow="b2b-standard",
        step=step,
        step_name=f"step-{step}",
        channel=channel,
        template=f"reminder-{step}",
        tone="friendly",
        language="nl",
        debtor_name=f"Debtor {debtor_id}",
        debtor_kind="B2B",
        currency="EUR",
        total_minor=12_500,
        items=(
            ev.ActionItem("INV-1", date(2024, 1, 31), 10_000, 30),
            ev.ActionItem("INV-2", date(2024, 2, 10), 2_500, 20),
        ),
        email="d1@example.nl",
        phone="+31201234567",
    )
    return replace(base, **changes)


def delivery(
    action_id: str = "A1", status: str = "sent", at: datetime | None = None, detail: str | None = None
):
    return ev.DeliveryResult(
        event_id=f"dlv-{action_id}-{status}",
        action_id=action_id,
        debtor_id="D1",
        channel="email",
        status=status,
        attempted_at=at or datetime(2024, 3, 1, 9, 0, tzinfo=UTC),
        detail=detail,
    )


def promise_outcome(kind: type, promise_id: str = "P1", paid_minor: int = 8_000):
    return kind(
        event_id=f"{kind.__name__}-{promise_id}",
        debtor_id="D1",
        promise_id=promise_id,
        promised_date=date(2024, 3, 5),
        amount_minor=8_000,
        paid_minor=paid_minor,
        currency="EUR",
        business_date=date(2024, 3, 6),
    )


def limit_alert(kind: type, event_id: str, business_date: date, utilisation_bp: int):
    return kind(
        event_id=event_id,
        debtor_id="D1",
        business_date=business_date,
        credit_limit_minor=100_000,
        exposure_minor=utilisation_bp * 10,
        utilisation_bp=utilisation_bp,
        currency="EUR",
        source="insurer",
    )


def unmatched(transaction_id: str = "TX1", booking_date: date = DAY) -> ev.PaymentUnmatched:
    return ev.PaymentUnmatched(
        event_id=f"unm-{transaction_id}",
        transaction_id=transaction_id,
        booking_date=booking_date,
        amount_minor=4_321,
        currency="EUR",
        reason="no open invoice matches the reference",
        payer_iban="NL91ABNA0417164300",
        payer_name="J. Jansen",
        unstructured_remittance="factuur 2024-17",
    )


def rows_of(session: Session, model: type) -> list[dict]:
    table = model.__table__
    statement = select(table).order_by(*table.primary_key.columns)
    return [dict(row) for row in session.execute(statement).mappings()]


# --------------------------------------------------------------------------- migrations


def test_migrate_creates_every_table_at_alembic_head(database_url):
    _downgrade_to_nothing(database_url)
    migrate(database_url)
    migrate(database_url)  # a second run has nothing to do and must not fail
    engine = make_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        engine.dispose()
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    assert {"debtors", "open_items", "actions", "tasks", "outbox", "projection_offsets"} <= tables
    assert stored == ScriptDirectory.from_config(alembic_config()).get_current_head()


def _downgrade_to_nothing(url: str) -> None:
    engine = make_engine(url)
    config = alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()


def test_make_engine_creates_the_folder_of_a_sqlite_file(tmp_path):
    target = tmp_path / "deeper" / "still" / "read.db"
    migrate(f"sqlite:///{target}")
    assert target.is_file()


# --------------------------------------------------------------------------- snapshots


def test_a_utilisation_past_32_bits_is_stored(projector, session):
    """EUR 215,000 owed against a limit of EUR 1: 2^31 basis points and more."""
    projector.apply_batch([snapshot(version=1, credit_limit_minor=100, utilisation_bp=21_500_000 * 10_000 // 100,
                                    limit_state="breached")])
    assert session.get(Debtor, "D1").utilisation_bp == 2_150_000_000 > 2**31


def test_snapshot_upserts_debtor_and_ignores_stale_versions(projector, session):
    projector.apply_batch([snapshot(version=2, overdue_minor=500, limit_state="ok")])
    # A redelivered equal version and an older one both carry other figures: ignored.
    projector.apply_batch([snapshot(version=2, overdue_minor=999), snapshot(version=1, overdue_minor=111)])
    stored = session.get(Debtor, "D1")
    assert (stored.version, stored.overdue_minor, stored.limit_state) == (2, 500, "ok")

    projector.apply_batch([snapshot(version=3, overdue_minor=700, name="Renamed BV")])
    session.rollback()  # a new read transaction sees the batch (SQLite reads a snapshot)
    stored = session.get(Debtor, "D1")
    assert (stored.version, stored.overdue_minor, stored.name) == (3, 700, "Renamed BV")
    assert stored.business_date == DAY


def test_highest_version_in_one_batch_wins_whatever_the_order(projector, session):
    projector.apply_batch([snapshot(version=5, balance_minor=5), snapshot(version=4, balance_minor=4)])
    assert session.get(Debtor, "D1").balance_minor == 5


def test_newer_snapshot_replaces_open_items_and_disputes(projector, session):
    first = snapshot(
        version=1,
        items=(item("INV-1", 10_000), item("INV-2", 0), item("INV-3", 4_000)),
        disputes=(dispute("DS-1", "INV-1"),),
    )
    projector.apply_batch([first])
    assert [row["invoice_id"] for row in rows_of(session, OpenItem)] == [
        "INV-1",
        "INV-3",
    ]  # settled INV-2 left out
    assert [row["dispute_id"] for row in rows_of(session, Dispute)] == ["DS-1"]

    second = snapshot(
        version=2,
        items=(item("INV-3", 1_500, paused="dispute"),),
        disputes=(dispute("DS-2", "INV-3", 1_500),),
    )
    projector.apply_batch([second, first])  # the stale one after it changes nothing
    session.rollback()
    items = rows_of(session, OpenItem)
    assert [(row["invoice_id"], row["open_minor"], row["paused"]) for row in items] == [
        ("INV-3", 1_500, "dispute")
    ]
    assert [row["dispute_id"] for row in rows_of(session, Dispute)] == ["DS-2"]

    disputes = queries.open_disputes(session)
    assert [(row["dispute_id"], row["debtor_name"], row["amount_minor"]) for row in disputes] == [
        ("DS-2", "Debtor D1", 1_500)
    ]


def test_snapshot_of_one_debtor_leaves_other_debtors_items(projector, session):
    projector.apply_batch(
        [snapshot("D1", 1, items=(item("A", 100),)), snapshot("D2", 1, items=(item("B", 200),))]
    )
    projector.apply_batch([snapshot("D1", 2, items=())])
    assert [(row["debtor_id"], row["invoice_id"]) for row in rows_of(session, OpenItem)] == [("D2", "B")]


# --------------------------------------------------------------------------- actions and tasks


def test_action_then_delivery_result(projector, session):
    projector.apply_batch([action("A1", channel="email")])
    [logged] = queries.actions_log(session)
    assert logged["delivery_status"] == "pending"
    assert logged["invoice_ids"] == ["INV-1", "INV-2"]
    assert rows_of(session, Task) == []  # e-mail is the sink's work, not a task

    sent_at = datetime(2024, 3, 1, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    projector.apply_batch([delivery("A1", "sent", sent_at, "250 OK")])
    # An older failed attempt delivered late does not overwrite the newer success.
    projector.apply_batch([delivery("A1", "failed", sent_at - timedelta(minutes=5), "timeout")])
    session.rollback()
    [logged] = queries.actions_log(session, debtor_id="D1")
    assert (logged["delivery_status"], logged["delivery_detail"]) == ("sent", "250 OK")
    assert logged["delivered_at"] == sent_at
    assert logged["delivered_at"].tzinfo is not None
    assert queries.actions_log(session, debtor_id="nobody") == []


def test_delivery_result_before_its_action_is_kept(projector, session):
    projector.apply_batch([delivery("A9", "failed", detail="mailbox full")])
    projector.apply_batch([action("A9", step=2)])
    [logged] = queries.actions_log(session)
    assert (logged["delivery_status"], logged["delivery_detail"]) == ("failed", "mailbox full")
    assert (logged["workflow"], logged["step"], logged["total_minor"]) == ("b2b-standard", 2, 12_500)


def test_call_tasks_show_on_the_call_list_until_closed(projector, session):
    projector.apply_batch(
        [
            action("A-mail", channel="email"),
            action("A-sms", channel="sms"),
            action("A-call-small", channel="call", total_minor=1_000),
            action("A-call-big", channel="call", total_minor=90_000),
        ]
    )
    assert {row["action_id"] for row in rows_of(session, Task)} == {"A-sms", "A-call-small", "A-call-big"}
    calls = queries.call_list(session)
    assert [row["action_id"] for row in calls] == ["A-call-big", "A-call-small"]
    assert calls[0]["status"] == "open" and calls[0]["phone"] == "+31201234567"
    assert calls[0]["created_at"] is not None

    session.execute(update(Task).where(Task.action_id == "A-call-big").values(status="done"))
    session.commit()
    projector.apply_batch([action("A-call-big", channel="call", total_minor=90_000)])  # redelivered
    assert [row["action_id"] for row in queries.call_list(session)] == ["A-call-small"]


def test_action_counts_group_by_workflow_step(projector, session):
    projector.apply_batch(
        [
            action("A1", channel="email", step=1),
            action("A2", debtor_id="D2", channel="email", step=1),
            action("A3", channel="call", step=3),
        ]
    )
    projector.apply_batch([delivery("A-unknown")])  # a bare delivery row is no action yet
    assert queries.action_counts(session) == [
        {"workflow": "b2b-standard", "step": 1, "step_name": "step-1", "channel": "email", "actions": 2},
        {"workflow": "b2b-standard", "step": 3, "step_name": "step-3", "channel": "call", "actions": 1},
    ]


# --------------------------------------------------------------------------- promises, limits, payments


def test_promise_outcome_is_not_reverted_by_an_older_snapshot(projector, session):
    projector.apply_batch([snapshot(version=1, promises=(promise("P1"), promise("P2")))])
    projector.apply_batch([promise_outcome(ev.PromiseKept, "P1"), promise_outcome(ev.PromiseBroken, "P2", 0)])
    # The snapshot that still saw both running arrives after the alerts.
    projector.apply_batch([snapshot(version=2, promises=(promise("P1"), promise("P2"), promise("P3")))])

    agenda = queries.promise_agenda(session)
    assert [row["promise_id"] for row in agenda["kept"]] == ["P1"]
    assert [row["promise_id"] for row in agenda["broken"]] == ["P2"]
    assert [row["promise_id"] for row in agenda["running"]] == ["P3"]
    assert agenda["kept"][0]["paid_minor"] == 8_000
    assert agenda["kept"][0]["made_on"] == date(2024, 2, 20)


def test_promise_outcome_before_any_snapshot_is_recorded(projector, session):
    projector.apply_batch([promise_outcome(ev.PromiseBroken, "P7", paid_minor=1_000)])
    stored = session.get(Promise, "P7")
    assert (stored.status, stored.paid_minor, stored.made_on) == ("broken", 1_000, None)
    projector.apply_batch([snapshot(version=1, promises=(promise("P7", "broken", 1_000),))])
    session.rollback()  # a new read transaction sees the batch (SQLite reads a snapshot)
    assert session.get(Promise, "P7").made_on == date(2024, 2, 20)


def test_limit_events_listed_newest_first(projector, session):
    projector.apply_batch(
        [
            limit_alert(ev.LimitWarning, "L1", date(2024, 3, 1), 8_500),
            limit_alert(ev.LimitBreached, "L2", date(2024, 3, 4), 10_400),
            limit_alert(ev.LimitCleared, "L3", date(2024, 3, 9), 7_000),
        ]
    )
    listed = queries.limit_events(session)
    assert [(row["event_id"], row["kind"]) for row in listed] == [
        ("L3", "cleared"),
        ("L2", "breached"),
        ("L1", "warning"),
    ]
    assert listed[1]["utilisation_bp"] == 10_400


def test_unmatched_payment_is_listed(projector, session):
    projector.apply_batch(
        [unmatched("TX1", date(2024, 3, 1)), unmatched("TX2", date(2024, 3, 2)), action("A1")]
    )
    listed = queries.unmatched_payments(session)
    assert [row["transaction_id"] for row in listed] == ["TX2", "TX1"]
    assert listed[0]["amount_minor"] == 4_321
    assert listed[0]["payer_iban"] == "NL91ABNA0417164300"
    assert listed[0]["debtor_id"] is None


def test_a_reversal_is_listed_once_with_the_invoices_its_payment_had_paid(projector, session):
    reversed_ = ev.PaymentReversed("reversed:bank-TX9", "D-1", "TX9", "TX1", date(2024, 3, 5), 8_000, "EUR",
                                   ("INV-1", "INV-2"), 1_000, "the same amount; it came from the same account")
    older = ev.PaymentReversed("reversed:bank-TX8", "D-2", "TX8", "TX2", date(2024, 3, 1), 500, "EUR")
    projector.apply_batch([reversed_, older, action("A1")])
    projector.apply_batch([reversed_])  # redelivered
    listed = queries.payment_reversals(session)
    assert [(r["transaction_id"], r["reversed_transaction_id"], r["invoice_ids"]) for r in listed] == [
        ("TX9", "TX1", ["INV-1", "INV-2"]), ("TX8", "TX2", [])]
    assert (listed[0]["amount_minor"], listed[0]["credit_minor"], listed[0]["reason"]) == (
        8_000, 1_000, "the same amount; it came from the same account")
    assert [r["event_id"] for r in queries.payment_reversals(session, "D-2")] == ["reversed:bank-TX8"]


def test_a_payment_matched_after_all_leaves_the_unmatched_queue(projector, session):
    projector.apply_batch([unmatched("TX1"), unmatched("TX2")])
    resolved = ev.PaymentResolved("resolved:p-TX1", "TX1", "matched", "D1", "INV-1")
    projector.apply_batch([resolved])
    assert [row["transaction_id"] for row in queries.unmatched_payments(session)] == ["TX2"]
    projector.apply_batch([resolved])  # again: nothing changes
    projector.apply_batch([unmatched("TX3"), ev.PaymentResolved("resolved:p-TX3", "TX3", "matched")])
    assert [row["transaction_id"] for row in queries.unmatched_payments(session)] == ["TX2"]


# --------------------------------------------------------------------------- idempotence and volume


def test_applying_the_same_batch_twice_leaves_the_same_rows(projector, session):
    batch = [
        snapshot(
            version=3,
            overdue_minor=4_000,
            items=(item("INV-1", 4_000),),
            disputes=(dispute("DS-1", "INV-1"),),
            promises=(promise("P1"),),
        ),
        action("A1", channel="call"),
        delivery("A1", "recorded"),
        limit_alert(ev.LimitWarning, "L1", DAY, 9_000),
        promise_outcome(ev.PromiseKept, "P1"),
        unmatched("TX1"),
        ev.DayStarted(event_id="day-1", business_date=DAY),  # not a projected type: ignored
    ]
    models = [Debtor, OpenItem, Dispute, Promise, Action, Task]

    projector.apply_batch(batch)
    first = {model.__tablename__: rows_of(session, model) for model in models}
    first["limits"] = queries.limit_events(session)
    first["unmatched"] = queries.unmatched_payments(session)
    session.rollback()

    projector.apply_batch(batch)
    second = {model.__tablename__: rows_of(session, model) for model in models}
    second["limits"] = queries.limit_events(session)
    second["unmatched"] = queries.unmatched_payments(session)

    assert first == second
    assert all(first[name] for name in first)  # every table really got its row
    assert first["promises"][0]["status"] == "kept"
    assert first["actions"][0]["delivery_status"] == "recorded"


def test_a_failing_batch_writes_nothing(projector, session):
    bad = replace(unmatched("TX1"), amount_minor=None)  # violates NOT NULL
    with pytest.raises(IntegrityError):
        projector.apply_batch([snapshot(version=1), bad])
    assert rows_of(session, Debtor) == []


def test_offsets_are_stored_with_the_batch(projector):
    assert projector.next_offsets() == {}
    projector.apply_batch(
        [snapshot(version=1)], offsets={("dunning.snapshots", 0): 41, ("dunning.snapshots", 1): 7}
    )
    projector.apply_batch([snapshot(version=2)], offsets={("dunning.snapshots", 0): 42})
    assert projector.next_offsets() == {("dunning.snapshots", 0): 42, ("dunning.snapshots", 1): 7}


def test_a_thousand_snapshots_in_one_batch(projector, session):
    batch = [
        snapshot(
            f"D{n:04}",
            version=1,
            overdue_minor=n,
            items=(item(f"I{n}-1", n + 1), item(f"I{n}-2", 0), item(f"I{n}-3", 2 * n + 1)),
            promises=(promise(f"P{n}"),),
        )
        for n in range(1_000)
    ]
    started = time.perf_counter()
    projector.apply_batch(batch)
    elapsed = time.perf_counter() - started
    assert session.query(Debtor).count() == 1_000
    assert session.query(OpenItem).count() == 2_000
    assert session.query(Promise).count() == 1_000
    assert elapsed < 5, f"1,000 snapshots took {elapsed:.2f}s"  # bulk statements, not a query per row


# --------------------------------------------------------------------------- overview queries


def test_largest_overdue_ordering(projector, session):
    projector.apply_batch(
        [
            snapshot("D1", overdue_minor=5_000),
            snapshot("D2", overdue_minor=90_000),
            snapshot("D3", overdue_minor=0),
            snapshot("D4", overdue_minor=12_000),
            snapshot("D5", overdue_minor=12_000),
        ]
    )
    assert [row["debtor_id"] for row in queries.largest_overdue(session, n=3)] == ["D2", "D4", "D5"]
    assert [row["debtor_id"] for row in queries.largest_overdue(session)] == ["D2", "D4", "D5", "D1"]


def test_debtors_overview_orders_and_limits(projector, session):
    projector.apply_batch(
        [
            snapshot("D1", name="Zeta", balance_minor=10, overdue_minor=3),
            snapshot("D2", name="Alpha", balance_minor=30, overdue_minor=1, utilisation_bp=9_000),
            snapshot("D3", name="Mid", balance_minor=20, overdue_minor=2, utilisation_bp=11_000),
        ]
    )
    ids = lambda rows: [row["debtor_id"] for row in rows]  # noqa: E731
    assert ids(queries.debtors_overview(session)) == ["D1", "D3", "D2"]
    assert ids(queries.debtors_overview(session, order_by="balance", limit=2)) == ["D2", "D3"]
    assert ids(queries.debtors_overview(session, order_by="name")) == ["D2", "D3", "D1"]
    assert ids(queries.debtors_overview(session, order_by="utilisation")) == ["D3", "D2", "D1"]
    with pytest.raises(ValueError):
        queries.debtors_overview(session, order_by="mood")


def test_aging_totals_per_currency(projector, session):
    aging = dict(
        aging_not_due_minor=100,
        aging_1_30_minor=200,
        aging_31_60_minor=300,
        aging_61_90_minor=400,
        aging_over_90_minor=500,
    )
    projector.apply_batch(
        [
            snapshot("D1", **aging),
            snapshot("D2", **{name: value * 10 for name, value in aging.items()}),
            snapshot("D3", currency="USD", aging_over_90_minor=7),
        ]
    )
    totals = queries.aging_totals(session)
    assert totals["EUR"] == {
        "not_due": 1_100,
        "1_30": 2_200,
        "31_60": 3_300,
        "61_90": 4_400,
        "over_90": 5_500,
        "total": 16_500,
        "debtors": 2,
    }
    assert totals["USD"]["over_90"] == 7 and totals["USD"]["total"] == 7
    assert set(totals) == {"EUR", "USD"}


@pytest.mark.postgres
def test_processes_migrating_a_fresh_postgresql_database_at_once_all_succeed():
    """The sink and the projector both migrate on start; they must not trip over each other."""
    import subprocess
    import sys

    with postgres_database("dunning_migrate_race") as url:
        # Each process imports everything, says so, and migrates when told: all at once.
        code = ("import sys; from projections.db import migrate; print('ready', flush=True); "
                "sys.stdin.readline(); migrate(sys.argv[1])")
        processes = [subprocess.Popen([sys.executable, "-c", code, url], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
        for process in processes:
            assert process.stdout.readline() == b"ready\n"
        for process in processes:
            process.stdin.write(b"go\n")
            process.stdin.flush()
        failures = [p.stderr.read().decode() for p in processes if p.wait(timeout=120) != 0]
        assert failures == []
        engine = create_engine(url)
        try:
            assert "outbox" in inspect(engine).get_table_names()
        finally:
            engine.dispose()
