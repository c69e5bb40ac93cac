"""Garbage collection frees store objects no artifact row names, on both backends."""

from __future__ import annotations

import os
import time
import uuid

from service.artifacts.service import add_output, collect_garbage
from service.db import new_session
from service.storage import ArtifactStore
from service.tenants import service as tenants_service


def _put(store: ArtifactStore, content: bytes) -> str:
    writer = store.writer()
    writer.write(content)
    return writer.commit().sha256


def test_only_unreferenced_objects_past_the_grace_period_are_deleted(
    store: ArtifactStore, database: str
) -> None:
    referenced = store.writer()
    referenced.write(os.urandom(500))
    kept = referenced.commit()
    orphan = _put(store, os.urandom(500))
    with new_session() as session:
        key = tenants_service.create_key(session=session, tenant_name=f"gc-{uuid.uuid4().hex[:8]}")
        tenant = tenants_service.authenticate(session=session, key=key)
        add_output(session=session, tenant_id=tenant, stored=kept, filename="model.onnx")
        session.commit()
    time.sleep(1.1)  # older than a zero grace period at S3's one-second resolution

    with new_session() as session:
        assert collect_garbage(session=session, store=store, grace_s=3600) == 0  # all are recent
        assert collect_garbage(session=session, store=store, grace_s=0) == 1

    assert not store.exists(orphan)
    assert store.exists(kept.sha256)
