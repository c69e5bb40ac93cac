"""Overload is answered at once: past the admitted requests, a 503 problem with Retry-After."""

from __future__ import annotations

import asyncio

import httpx
from starlette.types import Receive, Scope, Send

from service.admission import AdmissionLimit
from service.main import create_app
from service.settings import Settings


async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
    """An endpoint that takes half a second."""
    await asyncio.sleep(0.5)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _run_concurrently(app: AdmissionLimit, paths: list[str]) -> list[httpx.Response]:
    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return list(await asyncio.gather(*(client.get(path) for path in paths)))

    return asyncio.run(main())


def test_requests_past_the_limit_are_shed_quickly() -> None:
    app = AdmissionLimit(slow_app, limit=2, wait_s=0.1)
    answers = _run_concurrently(app, ["/v1/jobs"] * 5)
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200, 200, 503, 503, 503]
    shed = next(answer for answer in answers if answer.status_code == 503)
    assert shed.headers["Retry-After"] == "1"
    assert shed.headers["Content-Type"] == "application/problem+json"
    assert shed.json()["type"] == "https://modelpress.dev/problems/overloaded"
    served = next(answer for answer in answers if answer.status_code == 200)
    assert "queue;dur=" in served.headers["Server-Timing"]


def test_waiting_requests_are_served_when_a_slot_frees_in_time() -> None:
    app = AdmissionLimit(slow_app, limit=1, wait_s=5.0)
    assert [a.status_code for a in _run_concurrently(app, ["/v1/jobs"] * 3)] == [200, 200, 200]


def test_probes_are_never_shed() -> None:
    app = AdmissionLimit(slow_app, limit=1, wait_s=0.05)
    assert [a.status_code for a in _run_concurrently(app, ["/healthz"] * 3)] == [200, 200, 200]


def test_the_app_admits_as_many_requests_as_settings_say() -> None:
    app = create_app(Settings(max_concurrent_requests=7, queue_wait_s=0.25))
    limits = [m.kwargs for m in app.user_middleware if m.cls is AdmissionLimit]
    assert limits == [{"limit": 7, "wait_s": 0.25}]
