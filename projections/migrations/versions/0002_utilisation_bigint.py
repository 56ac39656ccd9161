"""Credit utilisation in 64 bits: a balance far past a small limit (EUR 215,000 against a
limit of EUR 1) is more than 2^31 basis points, which the 32-bit column refused.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = (("debtors", True), ("limit_events", False))


def upgrade() -> None:
    for table, nullable in COLUMNS:
        with op.batch_alter_table(table) as batch:  # SQLite rebuilds the table; PostgreSQL alters the column
            batch.alter_column("utilisation_bp", type_=sa.BigInteger(), existing_type=sa.Integer(),
                               existing_nullable=nullable)


def downgrade() -> None:
    for table, nullable in COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("utilisation_bp", type_=sa.Integer(), existing_type=sa.BigInteger(),
                               existing_nullable=nullable)
