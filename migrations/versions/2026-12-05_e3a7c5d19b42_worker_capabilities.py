"""workers: capabilities each worker registers (e.g. the weight-only algorithms its onnxruntime offers)

Revision ID: e3a7c5d19b42
Revises: e3a9c7d51f20
Create Date: 2026-12-05 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e3a7c5d19b42"
down_revision = "e3a9c7d51f20"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("capabilities", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_column("capabilities")
