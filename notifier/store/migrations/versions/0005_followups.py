"""Follow-ups: notification details, longer kinds, timers by alert, stakeholder receipts, and
frozen plans stored once (content-addressed) instead of in every timer row.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

import json

import sqlalchemy as sa
from alembic import op

from notifier.escalation import plan_key

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notifications", sa.Column("details", sa.JSON(), nullable=True))
    with op.batch_alter_table("notifications") as batch:
        batch.alter_column(
            "kind", type_=sa.String(32), existing_type=sa.String(16), existing_nullable=False
        )
    plans = op.create_table(
        "plans",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_plans"),
    )
    op.add_column("timers", sa.Column("plan_id", sa.String(32), nullable=True))
    bind = op.get_bind()
    keys: dict[str, object] = {}
    for timer_id, raw in bind.execute(sa.text("SELECT id, plan FROM timers")).all():
        body = json.loads(raw) if isinstance(raw, str) else raw
        key = plan_key(body)
        keys.setdefault(key, body)
        bind.execute(
            sa.text("UPDATE timers SET plan_id = :key WHERE id = :id"), {"key": key, "id": timer_id}
        )
    if keys:
        op.bulk_insert(plans, [{"id": key, "body": body} for key, body in keys.items()])
    # Batch mode: SQLite cannot alter a column in place (alembic rebuilds the table there).
    with op.batch_alter_table("timers") as batch:
        batch.alter_column(
            "kind", type_=sa.String(32), existing_type=sa.String(16), existing_nullable=False
        )
        batch.alter_column("plan_id", existing_type=sa.String(32), nullable=False)
        batch.drop_column("plan")
    op.create_index("ix_timers_alert_id", "timers", ["alert_id", "occurrence"])
    op.create_index(
        "ix_notifications_order", "notifications", ["alert_id", "status", "created_at"]
    )
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
    op.drop_index("ix_notifications_order", "notifications")
    op.drop_table("receipts")
    op.add_column("timers", sa.Column("plan", sa.JSON(), nullable=True))
    op.execute("UPDATE timers SET plan = (SELECT body FROM plans WHERE plans.id = timers.plan_id)")
    with op.batch_alter_table("timers") as batch:
        batch.drop_column("plan_id")
    op.drop_table("plans")
    op.drop_index("ix_timers_alert_id", "timers")
    op.drop_column("notifications", "details")
