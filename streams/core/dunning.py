"""Which workflow steps are due today, and the actions they produce.

Rules, per open invoice of a debtor that follows a workflow:
- a step fires when the invoice is that many days past its due date (negative offsets
  fire before it); steps fire in order, at most one per invoice per business date, so an
  invoice imported late walks through them rather than skipping the statutory letter;
- reminders before the due date are skipped once the invoice is due;
- the disputed part of an invoice is not dunned, and an invoice covered by a running
  promise to pay is not dunned at all;
- all invoices reaching the same step on the same day share one action, which fires
  only if their total reaches the workflow's minimum amount;
- a step that claims the collection costs books them: for a business when it fires (by
  the workflow's ``b2b_costs``), for a consumer once the term its 14-day letter gave has
  passed unpaid, on what is still open then (BW 6:96 lid 6; the letter's invoices
  together, their costs spread over them); a consumer is handed over to collection only
  after such a letter.
"""

from __future__ import annotations

import hashlib
from datetime import date

from streams.core.collection_costs import CostsTable, spread
from streams.core.events import ActionItem, DunningActionDue
from streams.core.policy import HANDOVER_CHANNEL, Workflow
from streams.core.state import DebtorState, Item
from streams.core.terms import term_ends_on


def action_id_for(debtor_id: str, workflow: str, step: int, invoice_ids: list[str]) -> str:
    """Deterministic: the same invoices reaching the same step always give the same id."""
    key = "|".join((debtor_id, workflow, str(step), ",".join(sorted(invoice_ids))))
    return "act-" + hashlib.sha1(key.encode()).hexdigest()[:20]


def dunnable_minor(state: DebtorState, item: Item) -> int:
    """What may be asked for now: the open amount less what is disputed."""
    return item.open_minor - state.disputed_minor(item.invoice_id)


def principal_dunnable_minor(state: DebtorState, item: Item) -> int:
    """What may be asked for now of the principal: costs are never disputed."""
    disputed = state.disputed_minor(item.invoice_id) if state.disputes else 0
    return max(0, item.principal_open_minor - disputed)


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


def letter_costs_pending(item: Item, workflow: Workflow) -> bool:
    """The item's last step was a letter that announced the collection costs, not booked yet."""
    return item.dunning_step in workflow.after_costs_step and not item.costs_minor and item.principal_open_minor > 0


def next_move(item: Item, workflow: Workflow, today: date) -> int:
    """The first date (ordinal) from ``today`` on which the item's step could move, by the
    dates alone: when it reaches the offset of its next step (skipping a reminder meant for
    before its due date is such a move too), but not twice on one day, and not before the
    term the last step gave has run out; or when the costs a letter announced become due."""
    position = item.dunning_step
    if position < len(workflow.offsets):
        at = item.due_date.toordinal() + workflow.offsets[position]
        if item.last_step_date == today:
            at = max(at, today.toordinal() + 1)
        term = term_runs_until(item, workflow)
        if term is None:
            return at
        at = max(at, term.toordinal() + 1)
    elif letter_costs_pending(item, workflow):  # the last step: nothing moves but its costs
        term = term_runs_until(item, workflow)
        return term.toordinal() + 1 if term is not None and term >= today else NEVER
    else:
        return NEVER
    if term >= today and letter_costs_pending(item, workflow):
        at = term.toordinal() + 1  # the costs fall due before the next step can move
    return at


def book_letter_costs(state: DebtorState, workflow: Workflow, today: date, table: CostsTable) -> None:
    """A consumer's 14-day letters whose term has passed: the costs they announced, booked on
    what is still open (a partial payment within the term lowers them), the brackets over the
    sum of each letter's invoices. Not while a promise holds the invoice: what ends the
    promise looks again."""
    letters: dict[tuple, list[tuple[str, int]]] = {}
    for item in state.items.values():
        if letter_costs_pending(item, workflow) and not (state.promises and is_promised(state, item.invoice_id)):
            term = term_runs_until(item, workflow)
            if term is not None and term < today:
                principal = principal_dunnable_minor(state, item)
                if principal:
                    letters.setdefault((item.dunning_step, item.last_step_date), []).append(
                        (item.invoice_id, principal))
    for principals in letters.values():
        costs = table.costs(sum(principal for _, principal in principals))
        named = sum(state.items[invoice_id].costs_named_minor for invoice_id, _ in principals)
        if named:  # never more than the letter named (a state from before it was kept: the table's)
            costs = min(costs, named)
        parts = spread(costs, principals)
        for invoice_id, part in parts.items():
            item = state.items[invoice_id]
            state.replace_item(item, item.with_costs(part))


def due_actions(state: DebtorState, workflow: Workflow, today: date, outputs: list,
                table: CostsTable) -> None:
    """Append the actions due today to ``outputs`` and move the invoices' steps on
    ``state`` (a copy the ledger made: its items are replaced, not changed). Also notes
    on ``state`` until when nothing can move (``steps_quiet_until``): items held by a
    dispute or a promise do not count, as what releases them makes the ledger look at
    every item anyway."""
    debtor = state.debtor
    assert debtor is not None
    consumer = debtor.kind == "B2C"
    if consumer and workflow.after_costs_step:
        book_letter_costs(state, workflow, today, table)
    steps = workflow.steps
    offsets = workflow.offsets
    after_costs = workflow.after_costs_step
    n_steps = len(offsets)
    today_ord = today.toordinal()
    tomorrow = today_ord + 1
    quiet = NEVER
    moved: dict[str, Item] = {}
    firing: dict[int, list[tuple[Item, int]]] = {}

    for item in state.items.values():
        position = item.dunning_step
        if position >= n_steps:
            if consumer and position in after_costs:
                quiet = min(quiet, next_move(item, workflow, today))  # the costs its letter announced
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
            if consumer and position in after_costs:
                quiet = min(quiet, next_move(item, workflow, today))  # the costs its letter announced
            continue
        amount = dunnable_minor(state, item)
        if amount <= 0 or is_promised(state, item.invoice_id):
            continue
        if fires and consumer and steps[position].channel == HANDOVER_CHANNEL and not workflow.costs_letter_before(
                position):
            continue  # never handed over without the 14-day letter (BW 6:96 lid 6): a policy warning says so
        if position != item.dunning_step:
            item = moved[item.invoice_id] = item.at_step(position, item.last_step_date)
        if fires:
            firing.setdefault(position, []).append((item, amount))
        elif position < n_steps:
            quiet = min(quiet, due + offsets[position])

    for position in sorted(firing):
        group = firing[position]
        total = sum(amount for _, amount in group)
        if total < workflow.min_amount_minor:
            quiet = tomorrow  # together with invoices reaching this step later, it may do
            continue
        step = steps[position]
        announced = 0
        if step.collection_costs and consumer:
            principals = [(item.invoice_id, principal_dunnable_minor(state, item)) for item, _ in group
                          if not item.costs_minor]
            announced = table.costs(sum(principal for _, principal in principals))
            shares = spread(announced, principals)  # what each may carry once the term has passed
            named = []
            for item, amount in group:
                if item.invoice_id in shares:
                    item = moved[item.invoice_id] = item.with_costs_named(shares[item.invoice_id])
                named.append((item, amount))
            group = named
        elif step.collection_costs:  # a business owes them from the day after the due date: booked now
            charged = []
            for item, amount in group:
                if not item.costs_minor:
                    costs = table.b2b(workflow.b2b_costs, principal_dunnable_minor(state, item))
                    if costs:
                        item = moved[item.invoice_id] = item.with_costs(costs)
                        amount += costs
                        state.open_minor += costs  # the items are replaced below
                charged.append((item, amount))
            group = charged
            total = sum(amount for _, amount in group)
        action_items = tuple(
            ActionItem(
                invoice_id=item.invoice_id,
                due_date=item.due_date,
                open_minor=amount,
                days_overdue=(today - item.due_date).days,
                payment_reference=item.payment_reference,
                principal_minor=amount - item.costs_open_minor,
                costs_minor=item.costs_open_minor,
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
                collection_costs_minor=announced + sum(item.costs_minor for item in action_items),
                term_days=step.term_days,
            )
        )
        for item, _ in group:
            moved[item.invoice_id] = item = item.at_step(position + 1, today)
            quiet = min(quiet, next_move(item, workflow, today))

    if moved:
        state.items = {key: moved.get(key, item) for key, item in state.items.items()}
    state.steps_quiet_until = (workflow, quiet)
