"""Signed webhook deliveries on job completion and cancellation, retried with backoff."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from modelpress import Client, ProblemError
from service.webhooks import verify
from tests.client.conftest import LiveServer
from tests.fixtures.api import new_key


class Receiver:
    """A real HTTP endpoint on loopback that records deliveries and fails the first `failures`."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"headers": dict(self.headers), "body": body})
                failing = len(receiver.received) <= receiver.failures
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/modelpress"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"got {len(self.received)} of {count} deliveries"
            time.sleep(0.1)
        return self.received


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.server.shutdown()


@pytest.fixture
def flaky_receiver() -> Iterator[Receiver]:
    hook = Receiver(failures=2)
    yield hook
    hook.server.shutdown()


def run(client: Client, model_id: str, callback_url: str) -> dict[str, Any]:
    job = client.create_job(
        {
            "model_id": model_id,
            "steps": [{"technique": "quantize.dynamic"}],
            "callback_url": callback_url,
            "evaluation": {"batch_sizes": [1]},
        }
    )
    finished = client.wait(job.id, interval=0.3, timeout=120)
    assert finished.finished, finished
    return finished.raw


def deliveries(client: Client, job_id: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while len(records := client.get_job(job_id).raw["webhook_deliveries"]) < count:
        assert time.monotonic() < deadline, records
        time.sleep(0.1)
    return records


def test_finished_job_is_posted_signed(
    client: Client, ready_model: dict[str, Any], receiver: Receiver
) -> None:
    job = run(client, ready_model["id"], receiver.url)
    [delivery] = receiver.wait_for(1)
    secret = client.webhook_secret().secret
    [record] = deliveries(client, job["id"], 1)

    headers = {key.lower(): value for key, value in delivery["headers"].items()}
    assert verify(secret, delivery["body"], headers["x-modelpress-signature"])
    assert not verify(secret, delivery["body"] + b" ", headers["x-modelpress-signature"])
    assert headers["x-modelpress-event"] == "job.succeeded"
    assert headers["content-type"] == "application/json"
    document = json.loads(delivery["body"])
    assert document["id"] == job["id"] and document["status"] == "succeeded"
    assert document["comparison"] == job["comparison"]
    assert record["outcome"] == "delivered" and record["status_code"] == 204
    assert record["attempt"] == 1 and record["ok"] is True
    assert record["delivery_id"] == headers["x-modelpress-delivery"]


def test_failed_deliveries_are_retried_with_backoff_and_recorded(
    client: Client, ready_model: dict[str, Any], flaky_receiver: Receiver
) -> None:
    job = run(client, ready_model["id"], flaky_receiver.url)
    received = flaky_receiver.wait_for(3)
    records = deliveries(client, job["id"], 3)
    secret = client.webhook_secret().secret

    assert [r["status_code"] for r in records] == [500, 500, 204]
    assert [r["attempt"] for r in records] == [1, 2, 3]
    assert len({r["delivery_id"] for r in records}) == 1
    assert [r["outcome"] for r in records] == ["http-500", "http-500", "delivered"]
    assert len({r["body"] for r in received}) == 1  # every retry carries the same bytes
    assert all(verify(secret, r["body"], r["headers"]["X-ModelPress-Signature"]) for r in received)
    times = [datetime.fromisoformat(r["at"]) for r in records]
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(times, times[1:], strict=False)]
    assert gaps[0] >= 0.5 and gaps[1] >= 1.0  # 0.5 s then 1 s: exponential from the configured base
    assert [r["retry_in_s"] for r in records[:2]] == [0.5, 1.0]


def test_cancelling_a_queued_job_notifies(client: Client, mlp_onnx: Path, receiver: Receiver) -> None:
    model = client.upload_model(mlp_onnx)
    job = client.create_job(
        {"model_id": model.id, "steps": [{"technique": "quantize.dynamic"}], "callback_url": receiver.url}
    )

    assert client.cancel_job(job.id).status == "cancelled"
    [delivery] = receiver.wait_for(1)
    assert delivery["headers"]["X-ModelPress-Event"] == "job.cancelled"
    assert json.loads(delivery["body"])["status"] == "cancelled"


def test_jobs_without_callback_get_no_deliveries(client: Client, finished_job: dict[str, Any]) -> None:
    assert client.get_job(finished_job["id"]).raw["webhook_deliveries"] == []
    assert finished_job["callback_url"] is None


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "not a url", "file:///etc/passwd", "http://"])
def test_callback_url_must_be_http(client: Client, ready_model: dict[str, Any], url: str) -> None:
    with pytest.raises(ProblemError) as error:
        client.create_job(
            {"model_id": ready_model["id"], "steps": [{"technique": "quantize.dynamic"}], "callback_url": url}
        )

    assert error.value.status == 422
    assert "callback_url" in json.dumps(error.value.document["errors"])


def test_secret_rotation_changes_the_signing_key(live_server: LiveServer) -> None:
    with Client(live_server.url, new_key()) as own:
        before = own.webhook_secret().secret
        rotated = own.request("POST", "/v1/webhook-secret/rotate").json()["secret"]
        assert rotated != before and own.webhook_secret().secret == rotated
