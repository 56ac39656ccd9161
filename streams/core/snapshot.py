"""The debtor snapshot: the whole picture of one debtor, for projections and subscribers."""

from __future__ import annotations

from streams.core import events as ev
from streams.core.dunning import is_promised
from streams.core.limits import utilisation_bp
from streams.core.policy import Policy
from streams.core.state import DebtorState


def snapshot(state: DebtorState, policy: Policy) -> ev.DebtorSnapshot:
    debtor = state.debtor
    assert debtor is not None, "a snapshot needs a registered debtor"
    workflow = policy.workflow_for_debtor(debtor)
    not_due, d30, d60, d90, older = state.aging()
    items = []
    principal_open = costs_open = 0
    for item in state.items.values():
        open_minor = item.open_minor
        if not open_minor:
            continue
        disputed = min(state.disputed_minor(item.invoice_id), open_minor) if state.disputes else 0
        paused = (
            "dispute" if disputed >= open_minor
            else "promise" if state.promises and is_promised(state, item.invoice_id)
            else None
        )
        items.append(
            ev.SnapshotItem(
                invoice_id=item.invoice_id,
                issue_date=item.issue_date,
                due_date=item.due_date,
                amount_minor=item.amount_minor,
                paid_minor=item.paid_minor,
                credited_minor=item.credited_minor,
                disputed_minor=disputed,
                open_minor=open_minor,
                dunning_step=item.dunning_step,
                paused=paused,
                payment_reference=item.payment_reference,
                principal_open_minor=item.principal_open_minor,
                costs_minor=item.costs_minor,
                costs_open_minor=item.costs_open_minor,
            )
        )
        principal_open += item.principal_open_minor
        costs_open += item.costs_open_minor
    return ev.DebtorSnapshot(
        event_id=f"{state.debtor_id}:snapshot:{state.version}",
        debtor_id=state.debtor_id,
        version=state.version,
        business_date=state.today,
        name=debtor.name,
        kind=debtor.kind,
        segment=debtor.segment,
        workflow=workflow.name if workflow else None,
        currency=debtor.currency,
        balance_minor=state.balance_minor,
        overdue_minor=d30 + d60 + d90 + older,  # what is past its due date
        credit_minor=state.credit_minor,
        aging_not_due_minor=not_due,
        aging_1_30_minor=d30,
        aging_31_60_minor=d60,
        aging_61_90_minor=d90,
        aging_over_90_minor=older,
        credit_limit_minor=state.credit_limit_minor,
        utilisation_bp=utilisation_bp(state),
        limit_state=state.limit_state,
        items=tuple(items),
        disputes=tuple(
            ev.SnapshotDispute(d.dispute_id, d.invoice_id, d.kind, d.amount_minor, d.opened_on, d.reason, d.owner)
            for d in state.disputes
        ),
        promises=tuple(
            ev.SnapshotPromise(p.promise_id, p.made_on, p.promised_date, p.amount_minor, p.paid_minor, p.status)
            for p in state.promises
        ),
        email=debtor.email,
        phone=debtor.phone,
        branch=debtor.branch,
        salesperson=debtor.salesperson,
        principal_open_minor=principal_open,
        costs_open_minor=costs_open,
    )
