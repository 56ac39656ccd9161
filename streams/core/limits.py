"""Credit limits: warning before, breach over, cleared below.

Exposure is the debtor's balance (never below zero). Utilisation is in basis points
(10000 = 100 %). An event is emitted only when the limit state changes.
"""

from __future__ import annotations

from streams.core.events import LimitBreached, LimitCleared, LimitWarning
from streams.core.state import LIMIT_BREACHED, LIMIT_NONE, LIMIT_OK, LIMIT_WARNING, DebtorState, evolve

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


def limit_state_of(state: DebtorState, warning_bp: int) -> str:
    if state.credit_limit_minor is None:
        return LIMIT_NONE
    if exposure_minor(state) > state.credit_limit_minor:
        return LIMIT_BREACHED
    if (utilisation_bp(state) or 0) >= warning_bp:
        return LIMIT_WARNING
    return LIMIT_OK


def limit_events(state: DebtorState, warning_bp: int) -> tuple[DebtorState, list]:
    new = limit_state_of(state, warning_bp)
    if new == state.limit_state:
        return state, []
    previous = state.limit_state
    state = evolve(state, limit_state=new)
    if new == LIMIT_NONE or (previous == LIMIT_NONE and new == LIMIT_OK):
        return state, []  # a limit set or removed while nothing is at stake
    event_type = _EVENT_FOR_STATE[new]
    return state, [
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
    ]
