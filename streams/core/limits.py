"""Credit limits: warning before, breach over, cleared below.

Exposure is the debtor's balance (never below zero). Utilisation is in basis points
(10000 = 100 %). An event is emitted only when the limit state changes.
"""

from __future__ import annotations

from streams.core.events import LimitBreached, LimitCleared, LimitWarning
from streams.core.state import LIMIT_BREACHED, LIMIT_NONE, LIMIT_OK, LIMIT_WARNING, DebtorState

UTILISATION_CAP_BP = 1_000_000  # 10,000 %: reported for exposure against a zero limit
_EVENT_FOR_STATE = {LIMIT_OK: LimitCleared, LIMIT_WARNING: LimitWarning, LIMIT_BREACHED: LimitBreached}


def exposure_minor(state: DebtorState) -> int:
    return max(0, state.balance_minor)


def utilisation_bp(state: DebtorState) -> int | None:
    limit = state.credit_limit_minor
    if limit is None:
        return None
    exposure = exposure_minor(state)
    if limit <= 0:
        return 0 if exposure == 0 else UTILISATION_CAP_BP  # any exposure over a zero limit
    return exposure * 10_000 // limit


def update_limit_state(state: DebtorState, warning_bp: int, outputs: list) -> None:
    """Move ``state`` (a copy the ledger made) to its limit state; append the event that
    announces the change, if it is one to announce."""
    limit = state.credit_limit_minor
    if limit is None:
        new = LIMIT_NONE
    else:
        exposure = state.open_minor - state.credit_minor  # exposure_minor, less the max(0, ...)
        # warning: utilisation_bp >= warning_bp, without the division (a zero limit breached above)
        new = (LIMIT_BREACHED if exposure > limit
               else LIMIT_WARNING if limit > 0 and exposure * 10_000 >= warning_bp * limit
               else LIMIT_OK)
    previous = state.limit_state
    if new == previous:
        return
    state.limit_state = new
    if new == LIMIT_NONE or (previous == LIMIT_NONE and new == LIMIT_OK):
        return  # a limit set or removed while nothing is at stake
    event_type = _EVENT_FOR_STATE[new]
    outputs.append(
        event_type(
            event_id=f"{state.debtor_id}:limit:{state.version}:{new}",
            debtor_id=state.debtor_id,
            business_date=state.today,
            credit_limit_minor=state.credit_limit_minor,
            exposure_minor=exposure_minor(state),
            utilisation_bp=utilisation_bp(state),
            currency=state.currency,
            source=state.limit_source,
        )
    )
