"""Webhook deliveries through the real API and worker: own queue, coarse records, refusal at delivery."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from typing import Any

import pytest

from modelpress import Client
from service import queue
from service.cli.serve import worker_command
from service.queue import DELIVER_WEBHOOK_TASK, WEBHOOK_QUEUE, make_celery
from service.settings import Settings, get_settings
from service.webhooks import job_finished
from tests.client.test_webhooks import Receiver, deliveries, run
from tests.fixtures.infrastructure import ROOT

RECORD_KEYS = {"delivery_id", "attempt", "event", "at", "outcome", "ok", "status_code", "retry_in_s"}


@pytest.fixture
def hook() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


def test_a_closed_port_is_recorded_as_one_coarse_class(client: Client, ready_model: dict[str, Any]) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]

    job = run(client, ready_model["id"], f"http://127.0.0.1:{closed}/hook")
    [record, *_] = deliveries(client, job["id"], 1)

    assert record["outcome"] == "connection-failed" and record["ok"] is False
    assert record["status_code"] is None and record["retry_in_s"] == 0.5
    assert set(record) == RECORD_KEYS
    text = json.dumps(client.get_job(job["id"]).raw["webhook_deliveries"]).lower()
    assert not any(word in text for word in ("errno", "refused", "connecterror", "111"))


def test_a_name_resolving_to_loopback_is_refused_at_delivery_when_not_allowed(
    client: Client, ready_model: dict[str, Any], hook: Receiver
) -> None:
    port = hook.url.split(":")[2].split("/")[0]
    job = run(client, ready_model["id"], f"http://localhost:{port}/hook")
    hook.wait_for(1)  # allowed by the test environment's list: delivered once
    deliveries(client, job["id"], 1)
    from worker import webhooks  # the delivery code itself, run here with a default (empty) allow-list

    retry = webhooks.deliver(uuid.UUID(job["id"]), Settings(webhook_allowed_networks=()), attempt=2)

    [delivered, refused] = deliveries(client, job["id"], 2)
    assert delivered["outcome"] == "delivered"
    assert refused["outcome"] == "refused-address" and refused["status_code"] is None
    assert retry is None and refused["retry_in_s"] is None  # the policy said no: nothing to retry
    assert len(hook.received) == 1


def test_deliveries_are_published_on_the_webhooks_queue(
    client: Client,
    ready_model: dict[str, Any],
    hook: Receiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = run(client, ready_model["id"], hook.url)
    hook.wait_for(1)
    # The embedded broker (files in a folder) holds the message for this test to read.
    broker = make_celery(Settings(home=tmp_path, broker_url="", database_url=get_settings().database_url))
    monkeypatch.setattr(queue, "get_celery", lambda: broker)

    assert job_finished(uuid.UUID(job["id"]))

    with broker.connection_for_read() as connection:
        message = connection.SimpleQueue(WEBHOOK_QUEUE).get(timeout=5)
        assert message.headers["task"] == DELIVER_WEBHOOK_TASK
        assert job["id"] in message.headers["argsrepr"]
        with pytest.raises(Empty):
            connection.SimpleQueue("cpu").get(timeout=0.5)


def test_the_delivery_task_declares_its_queue_limits_and_retries() -> None:
    script = (
        "import json; from worker.tasks import deliver_webhook as t; "
        "print(json.dumps([t.queue, t.soft_time_limit, t.time_limit, t.max_retries, t.acks_late]))"
    )
    output = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, check=True)
    queue_name, soft, hard, retries, acks_late = json.loads(output.stdout.splitlines()[-1])
    settings = get_settings()

    assert queue_name == "webhooks"
    assert settings.webhook_timeout_s < soft < hard <= settings.webhook_timeout_s + 60
    assert retries == settings.webhook_max_attempts - 1 and acks_late is True


def test_workers_started_by_serve_and_the_tests_consume_the_webhooks_queue() -> None:
    command = worker_command(hostname="probe@%h", beat_schedule=None)

    assert "webhooks" in command[command.index("-Q") + 1].split(",")
