"""jobs: job_log_lines (the structured log lines a worker records per job and step)

Revision ID: d41f6c2e8a57
Revises: 7c1e2a9b4d10
Create Date: 2026-12-05 12:15:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "d41f6c2e8a57"
down_revision = "7c1e2a9b4d10"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_log_lines",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_log_lines_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_log_lines")),
        sa.UniqueConstraint("job_id", "seq", name=op.f("uq_job_log_lines_job_id")),
    )


def downgrade() -> None:
    op.drop_table("job_log_lines")
