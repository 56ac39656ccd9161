"""The unmatched queue keeps the matching cascade's candidates, reasons of any length (the
cascade's name the debtors and invoices it considered) and whether the money went out (a
debit or a reversal is never allocated to an invoice).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("unmatched_payments") as batch:  # SQLite rebuilds the table
        batch.alter_column("reason", type_=sa.Text(), existing_type=sa.String(255), existing_nullable=False)
        batch.add_column(sa.Column("candidates", sa.Text(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("direction", sa.String(8), nullable=False, server_default="credit"))
        batch.add_column(sa.Column("reversal", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("unmatched_payments") as batch:
        batch.drop_column("reversal")
        batch.drop_column("direction")
        batch.drop_column("candidates")
        batch.alter_column("reason", type_=sa.String(255), existing_type=sa.Text(), existing_nullable=False)
