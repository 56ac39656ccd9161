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
from streams.core.state import DebtorState, Item, evolve


def action_id_for(debtor_id: str, workflow: str, step: int, invoice_ids: list[str]) -> str:
    """Deterministic: the same invoices reaching the same step always give the same id."""
    key = "|".join((debtor_id, workflow, str(step), ",".join(sorted(invoice_ids))))
    return "act-" + hashlib.sha1(key.encode()).hexdigest()[:20]


def dunnable_minor(state: DebtorState, item: Item) -> int:
    """What may be asked for now: the open amount less what is disputed."""
    return item.open_minor - state.disputed_minor(item.invoice_id)


def is_promised(state: DebtorState, invoice_id: str) -> bool:
    return any(p.covers(invoice_id) for p in state.promises)


def due_actions(
    state: DebtorState, workflow: Workflow, today: date
) -> tuple[DebtorState, list[DunningActionDue]]:
    steps = workflow.steps
    items = list(state.items)
    changed = False
    firing: dict[int, list[tuple[int, Item, int]]] = {}

    for index, item in enumerate(items):
        if item.dunning_step >= len(steps) or item.last_step_date == today:
            continue
        days = (today - item.due_date).days
        position = item.dunning_step
        while position < len(steps) and steps[position].offset_days < 0 <= days:
            position += 1  # a reminder before the due date makes no sense after it
        fires = position < len(steps) and days >= steps[position].offset_days
        if not fires and position == item.dunning_step:
            continue  # the common case, decided without looking at disputes and promises
        amount = dunnable_minor(state, item)
        if amount <= 0 or is_promised(state, item.invoice_id):
            continue
        if position != item.dunning_step:
            item = items[index] = evolve(item, dunning_step=position)
            changed = True
        if fires:
            firing.setdefault(position, []).append((index, item, amount))

    actions = []
    debtor = state.debtor
    assert debtor is not None
    for position in sorted(firing):
        group = firing[position]
        total = sum(amount for _, _, amount in group)
        if total < workflow.min_amount_minor:
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
            for _, item, amount in group
        )
        actions.append(
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
            )
        )
        for index, item, _ in group:
            items[index] = evolve(item, dunning_step=position + 1, last_step_date=today)
        changed = True

    if changed:
        state = evolve(state, items=tuple(items))
    return state, actions
