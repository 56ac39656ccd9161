"""Collection costs booked on the account: the principal and the costs each debtor and open item
still owes, next to their sum (``open_minor``, ``balance_minor``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_DEBTOR_COLUMNS = ("principal_open_minor", "costs_open_minor")
_ITEM_COLUMNS = ("principal_open_minor", "costs_minor", "costs_open_minor")


def upgrade() -> None:
    # Rows written before hold principal only: their open amount is their principal.
    for name in _DEBTOR_COLUMNS:
        op.add_column("debtors", sa.Column(name, sa.BigInteger(), nullable=False, server_default="0"))
    for name in _ITEM_COLUMNS:
        op.add_column("open_items", sa.Column(name, sa.BigInteger(), nullable=False, server_default="0"))
    op.execute("UPDATE debtors SET principal_open_minor = balance_minor + credit_minor")
    op.execute("UPDATE open_items SET principal_open_minor = open_minor")


def downgrade() -> None:
    for name in _ITEM_COLUMNS:
        op.drop_column("open_items", name)
    for name in _DEBTOR_COLUMNS:
        op.drop_column("debtors", name)
