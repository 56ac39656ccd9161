"""Which workflow steps are due today, and the actions they produce.

Rules, per open invoice of a debtor that follows a workflow:
- a step fires when the invoice is that many days past its due date (negative offsets
  fire before it); steps fire in order, at most one per invoice per business date, so an
  invoice imported late walks through them rather than skipping the statutory letter;
- reminders before the due date are skipped once the invoice is due;
- the disputed part of an invoice is not dunned, and an invoice covered by a running
  promise to pay is not dunned at all;
- all invoices reaching the same step on the same day share one action, which fires
  only if their total reaches the workflow's minimum amount.
"""

from __future__ import annotations

import hashlib
from datetime import date

from streams.core.collection_costs import statutory_collection_costs
from streams.core.events import ActionItem, DunningActionDue
from streams.core.policy import Workflow
from streams.core.state import DebtorState, Item
from streams.core.terms import term_ends_on


def action_id_for(debtor_id: str, workflow: str, step: int, invoice_ids: list[str]) -> str:
    """Deterministic: the same invoices reaching the same step always give the same id."""
    key = "|".join((debtor_id, workflow, str(step), ",".join(sorted(invoice_ids))))
    return "act-" + hashlib.sha1(key.encode()).hexdigest()[:20]


def dunnable_minor(state: DebtorState, item: Item) -> int:
    """What may be asked for now: the open amount less what is disputed."""
    return item.open_minor - state.disputed_minor(item.invoice_id)


def is_promised(state: DebtorState, invoice_id: str) -> bool:
    return any(p.covers(invoice_id) for p in state.promises)


NEVER = date.max.toordinal() + 1  # a quiet-until for items with no step left to move


def term_runs_until(item: Item, workflow: Workflow) -> date | None:
    """The last day of the term the item's last step gave the debtor, if it gave one."""
    if not item.dunning_step or item.last_step_date is None:
        return None
    step = workflow.steps[item.dunning_step - 1]
    if not step.term_days:
        return None
    return term_ends_on(item.last_step_date, step.channel, step.term_days)


def next_move(item: Item, workflow: Workflow, today: date) -> int:
    """The first date (ordinal) from ``today`` on which the item's step could move, by the
    dates alone: when it reaches the offset of its next step (skipping a reminder meant for
    before its due date is such a move too), but not twice on one day, and not before the
    term the last step gave has run out."""
    position = item.dunning_step
    if position >= len(workflow.offsets):
        return NEVER
    at = item.due_date.toordinal() + workflow.offsets[position]
    if item.last_step_date == today:
        at = max(at, today.toordinal() + 1)
    term = term_runs_until(item, workflow)
    if term is not None:
        at = max(at, term.toordinal() + 1)
    return at


def due_actions(state: DebtorState, workflow: Workflow, today: date, outputs: list) -> None:
    """Append the actions due today to ``outputs`` and move the invoices' steps on
    ``state`` (a copy the ledger made: its items are replaced, not changed). Also notes
    on ``state`` until when nothing can move (``steps_quiet_until``): items held by a
    dispute or a promise do not count, as what releases them makes the ledger look at
    every item anyway."""
    steps = workflow.steps
    offsets = workflow.offsets
    n_steps = len(offsets)
    today_ord = today.toordinal()
    tomorrow = today_ord + 1
    quiet = NEVER
    moved: dict[str, Item] = {}
    firing: dict[int, list[tuple[Item, int]]] = {}

    for item in state.items.values():
        position = item.dunning_step
        if position >= n_steps:
            continue
        if item.last_step_date == today:
            quiet = min(quiet, next_move(item, workflow, today))
            continue
        due = item.due_date.toordinal()
        days = today_ord - due
        while position < n_steps and offsets[position] < 0 <= days:
            position += 1  # a reminder before the due date makes no sense after it
        fires = position < n_steps and days >= offsets[position]
        if fires:
            term = term_runs_until(item, workflow)
            if term is not None and today <= term:  # the term the last step gave has not run out
                quiet = min(quiet, term.toordinal() + 1)
                continue
        if not fires and position == item.dunning_step:
            quiet = min(quiet, due + offsets[position])  # a lower bound of next_move, on dates alone
            continue
        amount = dunnable_minor(state, item)
        if amount <= 0 or is_promised(state, item.invoice_id):
            continue
        if position != item.dunning_step:
            item = moved[item.invoice_id] = item.at_step(position, item.last_step_date)
        if fires:
            firing.setdefault(position, []).append((item, amount))
        elif position < n_steps:
            quiet = min(quiet, due + offsets[position])

    debtor = state.debtor
    assert debtor is not None
    for position in sorted(firing):
        group = firing[position]
        total = sum(amount for _, amount in group)
        if total < workflow.min_amount_minor:
            quiet = tomorrow  # together with invoices reaching this step later, it may do
            continue
        step = steps[position]
        action_items = tuple(
            ActionItem(
                invoice_id=item.invoice_id,
                due_date=item.due_date,
                open_minor=amount,
                days_overdue=(today - item.due_date).days,
                payment_reference=item.payment_reference,
            )
            for item, amount in group
        )
        outputs.append(
            DunningActionDue(
                action_id=action_id_for(
                    state.debtor_id, workflow.name, position + 1, [i.invoice_id for i in action_items]
                ),
                debtor_id=state.debtor_id,
                business_date=today,
                workflow=workflow.name,
                step=position + 1,
                step_name=step.name,
                channel=step.channel,
                template=step.template,
                tone=step.tone,
                language=debtor.language,
                debtor_name=debtor.name,
                debtor_kind=debtor.kind,
                currency=debtor.currency,
                total_minor=total,
                items=action_items,
                email=debtor.email,
                phone=debtor.phone,
                collection_costs_minor=statutory_collection_costs(total) if step.collection_costs else 0,
                term_days=step.term_days,
            )
        )
        for item, _ in group:
            moved[item.invoice_id] = item = item.at_step(position + 1, today)
            quiet = min(quiet, next_move(item, workflow, today))

    if moved:
        state.items = {key: moved.get(key, item) for key, item in state.items.items()}
    state.steps_quiet_until = (workflow, quiet)
