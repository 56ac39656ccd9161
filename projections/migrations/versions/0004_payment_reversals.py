"""Payments the bank took back (PaymentReversed): one row each, with the invoices it had paid.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_reversals",
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("debtor_id", sa.String(64), nullable=False),
        sa.Column("transaction_id", sa.String(128), nullable=False),
        sa.Column("reversed_transaction_id", sa.String(128), nullable=False),
        sa.Column("booking_date", sa.Date(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("invoice_ids", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("credit_minor", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_payment_reversals")),
    )
    op.create_index(op.f("ix_payment_reversals_debtor_id"), "payment_reversals", ["debtor_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_payment_reversals_debtor_id"), table_name="payment_reversals")
    op.drop_table("payment_reversals")
