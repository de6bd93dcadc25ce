"""Follow-ups: notification details, longer kinds, timers by alert, stakeholder receipts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notifications", sa.Column("details", sa.JSON(), nullable=True))
    # Batch mode: SQLite cannot alter a column in place (alembic rebuilds the table there).
    for table in ("notifications", "timers"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "kind", type_=sa.String(32), existing_type=sa.String(16), existing_nullable=False
            )
    op.create_index("ix_timers_alert_id", "timers", ["alert_id", "occurrence"])
    op.create_table(
        "receipts",
        sa.Column("notification_id", sa.String(32), nullable=False),
        sa.Column("alert_id", sa.String(32), nullable=False),
        sa.Column("occurrence", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(64), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("deadline_at", sa.DateTime(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.Column("confirmed_via", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("notification_id", name="pk_receipts"),
    )
    op.create_index("ix_receipts_alert_id", "receipts", ["alert_id", "occurrence"])


def downgrade() -> None:
    op.drop_table("receipts")
    op.drop_index("ix_timers_alert_id", "timers")
    op.drop_column("notifications", "details")
