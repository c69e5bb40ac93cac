"""gpu pool: the hardware each worker reports (CPU flags, GPU, runtime versions)

Revision ID: e3a9c7d51f20
Revises: b7c4e2a91d03
Create Date: 2026-12-05 17:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e3a9c7d51f20"
down_revision = "b7c4e2a91d03"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hardware", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("gpu_name", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("tensorrt_version", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_column("tensorrt_version")
        batch_op.drop_column("gpu_name")
        batch_op.drop_column("hardware")
