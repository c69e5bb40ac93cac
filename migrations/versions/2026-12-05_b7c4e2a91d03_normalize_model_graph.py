"""normalize: the normalized graph techniques receive and the record of what normalizing changed

Revision ID: b7c4e2a91d03
Revises: d41f6c2e8a57
Create Date: 2026-12-05 09:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = 'b7c4e2a91d03'
down_revision = 'd41f6c2e8a57'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('normalized_artifact_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('normalization', sa.JSON(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_models_normalized_artifact_id_artifacts'), 'artifacts', ['normalized_artifact_id'], ['id']
        )


def downgrade() -> None:
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_models_normalized_artifact_id_artifacts'), type_='foreignkey')
        batch_op.drop_column('normalization')
        batch_op.drop_column('normalized_artifact_id')
