"""The initial read models.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "debtors",
        sa.Column("debtor_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("segment", sa.String(64), nullable=False),
        sa.Column("workflow", sa.String(64), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("balance_minor", sa.BigInteger(), nullable=False),
        sa.Column("overdue_minor", sa.BigInteger(), nullable=False),
        sa.Column("credit_minor", sa.BigInteger(), nullable=False),
        sa.Column("aging_not_due_minor", sa.BigInteger(), nullable=False),
        sa.Column("aging_1_30_minor", sa.BigInteger(), nullable=False),
        sa.Column("aging_31_60_minor", sa.BigInteger(), nullable=False),
        sa.Column("aging_61_90_minor", sa.BigInteger(), nullable=False),
        sa.Column("aging_over_90_minor", sa.BigInteger(), nullable=False),
        sa.Column("credit_limit_minor", sa.BigInteger(), nullable=True),
        sa.Column("utilisation_bp", sa.Integer(), nullable=True),
        sa.Column("limit_state", sa.String(16), nullable=False),
        sa.Column("email", sa.String(255), nullable=True),
        sa.Column("phone", sa.String(64), nullable=True),
        sa.Column("branch", sa.String(64), nullable=True),
        sa.Column("salesperson", sa.String(128), nullable=True),
        sa.Column("business_date", sa.Date(), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("debtor_id", name=op.f("pk_debtors")),
    )
    op.create_index(op.f("ix_debtors_overdue_minor"), "debtors", ["overdue_minor"])

    op.create_table(
        "open_items",
        sa.Column("debtor_id", sa.String(64), nullable=False),
        sa.Column("invoice_id", sa.String(64), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("paid_minor", sa.BigInteger(), nullable=False),
        sa.Column("credited_minor", sa.BigInteger(), nullable=False),
        sa.Column("disputed_minor", sa.BigInteger(), nullable=False),
        sa.Column("open_minor", sa.BigInteger(), nullable=False),
        sa.Column("dunning_step", sa.Integer(), nullable=False),
        sa.Column("paused", sa.String(16), nullable=True),
        sa.Column("payment_reference", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("debtor_id", "invoice_id", name=op.f("pk_open_items")),
    )

    op.create_table(
        "actions",
        sa.Column("action_id", sa.String(128), nullable=False),
        sa.Column("debtor_id", sa.String(64), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=True),
        sa.Column("workflow", sa.String(64), nullable=True),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("step_name", sa.String(64), nullable=True),
        sa.Column("channel", sa.String(16), nullable=True),
        sa.Column("template", sa.String(128), nullable=True),
        sa.Column("tone", sa.String(32), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("total_minor", sa.BigInteger(), nullable=True),
        sa.Column("invoice_ids", sa.JSON(), nullable=True),
        sa.Column("delivery_status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("delivery_detail", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("action_id", name=op.f("pk_actions")),
    )
    op.create_index(op.f("ix_actions_debtor_id"), "actions", ["debtor_id"])

    op.create_table(
        "tasks",
        sa.Column("action_id", sa.String(128), nullable=False),
        sa.Column("debtor_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("debtor_name", sa.String(255), nullable=False),
        sa.Column("phone", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), server_default="open", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("action_id", name=op.f("pk_tasks")),
    )
    op.create_index(op.f("ix_tasks_debtor_id"), "tasks", ["debtor_id"])

    op.create_table(
        "disputes",
        sa.Column("dispute_id", sa.String(64), nullable=False),
        sa.Column("debtor_id", sa.String(64), nullable=False),
        sa.Column("invoice_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("dispute_id", name=op.f("pk_disputes")),
    )
    op.create_index(op.f("ix_disputes_debtor_id"), "disputes", ["debtor_id"])

    op.create_table(
        "promises",
        sa.Column("promise_id", sa.String(64), nullable=False),
        sa.Column("debtor_id", sa.String(64), nullable=False),
        sa.Column("made_on", sa.Date(), nullable=True),
        sa.Column("promised_date", sa.Date(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("paid_minor", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("promise_id", name=op.f("pk_promises")),
    )
    op.create_index(op.f("ix_promises_debtor_id"), "promises", ["debtor_id"])

    op.create_table(
        "limit_events",
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("debtor_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=True),
        sa.Column("credit_limit_minor", sa.BigInteger(), nullable=False),
        sa.Column("exposure_minor", sa.BigInteger(), nullable=False),
        sa.Column("utilisation_bp", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_limit_events")),
    )
    op.create_index(op.f("ix_limit_events_debtor_id"), "limit_events", ["debtor_id"])

    op.create_table(
        "unmatched_payments",
        sa.Column("transaction_id", sa.String(128), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("booking_date", sa.Date(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("payer_iban", sa.String(34), nullable=True),
        sa.Column("payer_name", sa.String(255), nullable=True),
        sa.Column("structured_reference", sa.String(64), nullable=True),
        sa.Column("unstructured_remittance", sa.Text(), nullable=True),
        sa.Column("end_to_end_id", sa.String(64), nullable=True),
        sa.Column("debtor_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("transaction_id", name=op.f("pk_unmatched_payments")),
    )

    op.create_table(
        "outbox",
        sa.Column("action_id", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("message_id", sa.String(255), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("action_id", name=op.f("pk_outbox")),
    )

    op.create_table(
        "projection_offsets",
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("topic", "partition", name=op.f("pk_projection_offsets")),
    )


def downgrade() -> None:
    for table in (
        "projection_offsets",
        "outbox",
        "unmatched_payments",
        "limit_events",
        "promises",
        "disputes",
        "tasks",
        "actions",
        "open_items",
        "debtors",
    ):
        op.drop_table(table)  # its indexes go with it
