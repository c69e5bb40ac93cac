"""The cheap request path: cached key checks with a revocation window, ETag polling, cached documents."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.artifacts.orm import Artifact, ArtifactKind
from service.catalog import CATALOG, TechniqueSpec
from service.catalog import router as catalog_routes
from service.db import new_session, utcnow
from service.jobs.orm import Job, JobStep
from service.models.orm import Model
from service.tenants import service as tenants_service
from service.tenants.key_cache import KeyCache
from service.tenants.orm import ApiKey
from tests.fixtures.api import Api, new_key

PROBLEMS = "https://modelpress.dev/problems/"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_key_cache_trusts_a_key_for_its_window_only() -> None:
    clock = FakeClock()
    cache = KeyCache(ttl_s=5.0, clock=clock)
    tenant = uuid.uuid4()
    cache.put("h1", tenant)
    clock.now += 4.9
    assert cache.get("h1") == tenant
    clock.now += 0.2
    assert cache.get("h1") is None  # a revocation made elsewhere is seen at most 5 s late


def test_key_cache_forgets_at_once_and_stays_bounded() -> None:
    cache = KeyCache(ttl_s=60.0, max_entries=2, clock=FakeClock())
    for name in ("a", "b", "c"):
        cache.put(name, uuid.uuid4())
    assert cache.get("a") is None and cache.get("c") is not None
    cache.forget(["c"])
    assert cache.get("c") is None and cache.get("b") is not None


def test_a_key_checked_recently_costs_no_query(
    app_client: TestClient, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = Api(app_client, new_key())
    assert api.get("/v1/jobs").status_code == 200
    lookups: list[str] = []
    authenticate = tenants_service.authenticate

    def counting(*, session: Session, key: str) -> uuid.UUID:
        lookups.append(key)
        return authenticate(session=session, key=key)

    monkeypatch.setattr(tenants_service, "authenticate", counting)
    for _ in range(3):
        assert api.get("/v1/jobs").status_code == 200
    assert lookups == []
    assert Api(app_client, new_key()).get("/v1/jobs").status_code == 200
    assert len(lookups) == 1  # a key not seen yet is looked up


def test_a_key_revoked_in_this_process_is_refused_at_once(app_client: TestClient, database: str) -> None:
    key = new_key()
    api = Api(app_client, key)
    assert api.get("/v1/jobs").status_code == 200
    with new_session() as session:
        tenants_service.revoke_key(session=session, prefix=key[:10])
    answer = api.get("/v1/jobs")
    assert answer.status_code == 401, answer.text
    assert answer.json()["type"] == PROBLEMS + "unauthorized"


def test_a_key_revoked_elsewhere_is_refused_once_the_window_ends(
    app_client: TestClient, database: str
) -> None:
    key = new_key()
    api = Api(app_client, key)
    assert api.get("/v1/jobs").status_code == 200
    with new_session() as session:  # as another process would: no cache of this one is told
        session.execute(
            update(ApiKey).where(ApiKey.key_hash == tenants_service.hash_key(key)).values(revoked_at=utcnow())
        )
        session.commit()
    assert api.get("/v1/jobs").status_code == 200  # still within the window
    tenants_service.key_cache().forget()  # what the window's end does to the entry
    assert api.get("/v1/jobs").status_code == 401


@pytest.fixture
def queued_job(app_client: TestClient, database: str) -> Iterator[tuple[Api, uuid.UUID]]:
    """A tenant and one queued job, written directly (no worker picks it up)."""
    key = new_key()
    with new_session() as session:
        tenant_id = session.scalar(
            select(ApiKey.tenant_id).where(ApiKey.key_hash == tenants_service.hash_key(key))
        )
        assert tenant_id is not None
        upload = Artifact(
            tenant_id=tenant_id,
            kind=ArtifactKind.UPLOAD,
            sha256="0" * 64,
            size_bytes=1,
            media_type="application/octet-stream",
            filename="m.onnx",
        )
        session.add(upload)
        session.flush()
        model = Model(
            tenant_id=tenant_id, name="m", size_bytes=1, sha256="0" * 64, upload_artifact_id=upload.id
        )
        session.add(model)
        session.flush()
        job = Job(
            tenant_id=tenant_id, model_id=model.id, steps=[JobStep(index=0, technique="quantize.dynamic")]
        )
        session.add(job)
        session.commit()
        yield Api(app_client, key), job.id


def test_an_unchanged_job_answers_304(queued_job: tuple[Api, uuid.UUID]) -> None:
    api, job_id = queued_job
    first = api.get(f"/v1/jobs/{job_id}")
    assert first.status_code == 200 and first.json()["status"] == "queued"
    etag = first.headers["ETag"]
    assert first.headers["Retry-After"] == "5"

    again = api.get(f"/v1/jobs/{job_id}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == etag and again.headers["Retry-After"] == "5"
    assert api.get(f"/v1/jobs/{job_id}", headers={"If-None-Match": f'"x", W/{etag}'}).status_code == 304


def test_a_changed_job_answers_200_with_a_new_etag(queued_job: tuple[Api, uuid.UUID]) -> None:
    api, job_id = queued_job
    etag = api.get(f"/v1/jobs/{job_id}").headers["ETag"]
    with new_session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(status="running", progress=0.5))
        session.commit()
    changed = api.get(f"/v1/jobs/{job_id}", headers={"If-None-Match": etag})
    assert changed.status_code == 200, changed.text
    assert changed.json()["progress"] == 0.5 and changed.headers["ETag"] != etag
    assert changed.headers["Retry-After"] == "2"
    with new_session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(status="succeeded", progress=1.0))
        session.commit()
    assert "Retry-After" not in api.get(f"/v1/jobs/{job_id}").headers  # a finished job never changes


def test_static_documents_are_built_once(app_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    described: list[str] = []
    describe = TechniqueSpec.describe

    def counting(spec: TechniqueSpec) -> dict[str, Any]:
        described.append(spec.name)
        return describe(spec)

    monkeypatch.setattr(TechniqueSpec, "describe", counting)
    catalog_routes.catalog_body.cache_clear()
    answers = [app_client.get("/v1/techniques") for _ in range(3)]
    assert all(a.status_code == 200 and a.json()["items"] for a in answers)
    assert sorted(described) == sorted(CATALOG)  # each technique described once, not per request
    document = app_client.get("/openapi.json")
    assert document.status_code == 200
    assert document.json() == app_client.app.openapi()  # type: ignore[attr-defined]
