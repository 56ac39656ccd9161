"""Debtor state and the matcher's slots to bytes and back, for the Faust tables and their changelogs.

Positional JSON arrays (orjson) with dates as day ordinals: compact in memory and fast
to decode, which matters because a table holds a debtor's state as these bytes. The
first element is the format version, so a later format can still read this one.

A state larger than ``COMPRESS_ABOVE`` bytes (a debtor with hundreds of invoices) is kept
zlib-compressed behind a NUL byte, which no JSON text starts with: the state of a debtor
with 50,000 open items then takes a fifth of the bytes in its changelog record.
"""

from __future__ import annotations

import zlib
from datetime import date

import orjson

from schemas.json_form import event_from_json, event_to_json
from streams.core.cascade import Known
from streams.core.matching import Slot, Waiting
from streams.core.state import Debtor, DebtorState, Dispute, Item, Promise

FORMAT = 1
COMPRESS_ABOVE = 16 * 1024
_COMPRESSED = b"\x00"
_LEVEL = 1  # most of the size gain for a fraction of the time of the default level
_ord = date.toordinal
_day = date.fromordinal


def _opt_ord(value: date | None) -> int | None:
    return None if value is None else value.toordinal()


def _opt_day(value: int | None) -> date | None:
    return None if value is None else date.fromordinal(value)


def encode_state(state: DebtorState) -> bytes:
    raw = _encode(state)
    return _COMPRESSED + zlib.compress(raw, _LEVEL) if len(raw) > COMPRESS_ABOVE else raw


def _encode(state: DebtorState) -> bytes:
    d = state.debtor
    return orjson.dumps(
        [
            FORMAT,
            state.debtor_id,
            None
            if d is None
            else [d.name, d.kind, d.segment, d.language, d.currency, d.email, d.phone, d.intercompany, d.branch, d.salesperson],
            [
                [i.invoice_id, i.event_id, _ord(i.issue_date), _ord(i.due_date), i.amount_minor, i.paid_minor,
                 i.credited_minor, i.payment_reference, i.dunning_step, _opt_ord(i.last_step_date), i.costs_minor,
                 i.costs_paid_minor, i.costs_named_minor]
                for i in state.items.values()
            ],
            [[x.dispute_id, x.invoice_id, x.kind, x.amount_minor, _ord(x.opened_on), x.reason, x.owner] for x in state.disputes],
            [
                [p.promise_id, _ord(p.made_on), _ord(p.promised_date), p.amount_minor, list(p.invoice_ids), p.paid_minor, p.status,
                 p.reopened]
                for p in state.promises
            ],
            state.credit_minor,
            state.credit_limit_minor,
            state.limit_source,
            state.limit_state,
            _opt_ord(state.today),
            state.version,
            [[event_id, _ord(on)] for event_id, on in state.seen.items()],
            [event_to_json(probe) for probe in state.pending],
            list(state.payer_ibans),
            [[*record[:2], _ord(record[2]), *record[3:]] for record in state.payments],  # state.booked_record
        ]
    )


def decode_state(data: bytes) -> DebtorState:
    if data[:1] == _COMPRESSED:
        data = zlib.decompress(data[1:])
    fields = orjson.loads(data)
    (fmt, debtor_id, d, items, disputes, promises, credit, limit, source, limit_state, today, version, seen) = fields[:13]
    # A state written before the matching cascade has neither pending payments nor payers; one
    # written before reversals no booked payments.
    pending, payer_ibans, payments = (*fields[13:], (), (), ())[:3]
    if fmt != FORMAT:
        raise ValueError(f"state format {fmt} is not supported (expected {FORMAT})")
    state = DebtorState(
        debtor_id=debtor_id,
        debtor=None if d is None else Debtor(*d),
        disputes=tuple(Dispute(x[0], x[1], x[2], x[3], _day(x[4]), x[5], x[6]) for x in disputes),
        promises=tuple(Promise(p[0], _day(p[1]), _day(p[2]), p[3], tuple(p[4]), p[5], p[6], *p[7:]) for p in promises),
        credit_minor=credit,
        credit_limit_minor=limit,
        limit_source=source,
        limit_state=limit_state,
        today=_opt_day(today),
        version=version,
        seen={event_id: _day(on) for event_id, on in seen},
        pending=tuple(event_from_json(probe) for probe in pending),
        payer_ibans=tuple(payer_ibans),
        payments=tuple((*r[:2], _day(r[2]), *r[3:6], tuple(r[6]), *r[7:]) for r in payments),
    )
    state.keep_items(
        # an item written before costs were booked has none
        {i[0]: Item(i[0], i[1], _day(i[2]), _day(i[3]), i[4], i[5], i[6], i[7], i[8], _opt_day(i[9]), *i[10:13])
         for i in items}
    )
    return state


# --------------------------------------------------------------------------- the matcher's slots

# A slot with an invoice and no payment waiting, by far the most common, keeps the short
# form "debtor<US>invoice<US>currency"; a slot with payments waiting is <RS> + a JSON array
# [format, entry or null, [[reported, payment, contested, since], ...]], the payments in their JSON form; an
# index entry (``cascade.Known``) is <STX> + a JSON array. Ids
# are printable, so neither tag can begin the short form; a waiting slot written before the
# tag began with "[" and holds no <US> (JSON escapes it). An index entry's array is flat:
# debtor, invoice ("" for an account), debtor, invoice, ...
_SEPARATOR = "\x1f"
_WAITING = b"\x1e"
_KNOWN = b"\x02"


def encode_slot(slot: Slot | Known) -> bytes:
    if type(slot) is Known:
        return _KNOWN + orjson.dumps(tuple(slot))
    entry = None if slot.debtor_id is None else [slot.debtor_id, slot.invoice_id, slot.currency]
    if not slot.waiting and entry is not None:
        return _SEPARATOR.join(entry).encode()
    return _WAITING + orjson.dumps([FORMAT, entry, [[w.reported, event_to_json(w.payment), w.contested,
                                                     _opt_ord(w.since)]
                                                    for w in slot.waiting]])


def slot_has_waiting(data: bytes) -> bool:
    head = data[:1]
    return head == _WAITING or (head == b"[" and b"\x1f" not in data)


def decode_slot(data: bytes) -> Slot | Known:
    head = data[:1]
    if head == _KNOWN:
        return tuple(orjson.loads(data[1:]))
    if not slot_has_waiting(data):
        return Slot(*data.decode().split(_SEPARATOR))
    fmt, entry, waiting = orjson.loads(data[1:] if head == _WAITING else data)
    if fmt != FORMAT:
        raise ValueError(f"slot format {fmt} is not supported (expected {FORMAT})")
    return Slot(*(entry or (None, None, None)),
                waiting=tuple(Waiting(event_from_json(w[1]), w[0], w[2] if len(w) > 2 else False,
                                      _opt_day(w[3]) if len(w) > 3 else None) for w in waiting))
