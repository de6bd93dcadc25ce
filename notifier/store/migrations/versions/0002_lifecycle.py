"""Alert lifecycle: who acknowledged, and a timeline of every step.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("acknowledged_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("acknowledged_at", sa.DateTime(), nullable=True))
    op.create_table(
        "alert_timeline",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(32), nullable=False),
        sa.Column("occurrence", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("event_key", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert_timeline"),
    )
    op.create_index("ix_alert_timeline_alert_id", "alert_timeline", ["alert_id"])


def downgrade() -> None:
    op.drop_table("alert_timeline")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("acknowledged_at")
        batch.drop_column("acknowledged_by")
