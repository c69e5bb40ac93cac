"""Uploads against a real server: 2 GiB in bounded memory; past the cap, 413 and no more reading; short
bodies refused unread keep the connection so the answer survives."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator

import pytest

from service.artifacts.orm import Artifact
from service.datasets.orm import Dataset
from service.db import new_session
from service.storage import get_store
from service.storage.local import LocalStore
from tests.chaos.live import MULTIPART, LiveApi, drop_tenant, multipart_body, rss_bytes, start_api, stop_api
from tests.chaos.streams import RssSampler, streamed_npz
from tests.figures import record
from tests.fixtures.api import new_key

MIB = 1024 * 1024
SAMPLES = 2**31 // 256  # float32 (N, 1, 8, 8): exactly 2 GiB of array data
RSS_BUDGET = 64 * MIB
SMALL_CAP = 8 * MIB
OFFERED = 512 * MIB


@pytest.fixture(scope="module")
def big_server(database: str, broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    api = start_api(
        tmp_path_factory.mktemp("stream") / "api.log", MODELPRESS_MAX_UPLOAD_BYTES=str(2**31 + MIB)
    )
    yield api
    stop_api(api)


@pytest.fixture(scope="module")
def small_server(database: str, broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    api = start_api(
        tmp_path_factory.mktemp("stream-small") / "api.log", MODELPRESS_MAX_UPLOAD_BYTES=str(SMALL_CAP)
    )
    yield api
    stop_api(api)


def test_two_gib_upload_streams_in_bounded_memory(big_server: LiveApi) -> None:
    key = new_key()
    sha = None
    try:
        with big_server.client(key, timeout=600) as client:
            warm = client.post("/v1/datasets", content=multipart_body(streamed_npz(16), filename="warm.npz"),
                               headers={"Content-Type": MULTIPART})  # fmt: skip
            assert warm.status_code == 201, warm.text
            baseline = rss_bytes(big_server.process.pid)
            started = time.monotonic()
            with RssSampler(big_server.process.pid) as sampler:
                response = client.post(
                    "/v1/datasets",
                    content=multipart_body(streamed_npz(SAMPLES), filename="big.npz"),
                    headers={"Content-Type": MULTIPART},
                )
            elapsed = time.monotonic() - started
        assert response.status_code == 201, response.text
        with new_session() as session:
            dataset = session.get(Dataset, response.json()["id"])
            assert dataset is not None
            artifact = session.get(Artifact, dataset.artifact_id)
            assert artifact is not None
            sha, stored = artifact.sha256, artifact.size_bytes
    finally:
        drop_tenant(key)
        _remove_object(sha)

    growth = sampler.peak - baseline
    assert response.json()["arrays"]["x"] == {"dtype": "float32", "shape": [SAMPLES, 1, 8, 8]}
    assert stored > 2**31
    assert sampler.samples > 10
    assert growth <= RSS_BUDGET, f"the API grew by {growth / MIB:.1f} MiB"
    record(
        "streaming",
        {
            "upload size, bytes": stored,
            "API RSS before, MiB": round(baseline / MIB, 1),
            "API RSS peak during upload, MiB": round(sampler.peak / MIB, 1),
            "API RSS growth, MiB (budget 64)": round(growth / MIB, 1),
            "RSS samples taken": sampler.samples,
            "upload seconds (loopback)": round(elapsed, 1),
            "throughput, MiB/s": round(stored / MIB / elapsed, 1),
        },
    )


def test_past_the_cap_the_server_answers_413_and_stops_reading(small_server: LiveApi) -> None:
    key = new_key()
    try:
        sent, after, answer = _push_until_answered(small_server, key, chunked=True)
        declared_sent, _, declared_answer = _push_until_answered(small_server, key, chunked=False)
    finally:
        drop_tenant(key)

    for head in (answer, declared_answer):
        assert head.startswith(b"HTTP/1.1 413"), head[:200]
        assert b"application/problem+json" in head and b"payload-too-large" in head
        assert b"connection: close" in head.lower()
    assert sent <= SMALL_CAP + 16 * MIB, f"{sent / MIB:.1f} MiB sent before the 413"
    assert after <= 16 * MIB, f"the server kept reading {after / MIB:.1f} MiB after answering"
    assert declared_sent == 0
    record(
        "upload_cap",
        {
            "cap, MiB": SMALL_CAP // MIB,
            "offered, MiB": OFFERED // MIB,
            "body sent before the 413 (chunked, no length), MiB": round(sent / MIB, 1),
            "body the server took after its 413, MiB": round(after / MIB, 1),
            "body sent before the 413 (Content-Length over the cap), bytes": declared_sent,
        },
    )


def test_a_short_body_refused_unread_keeps_the_connection(small_server: LiveApi) -> None:
    """Closing on unread bytes sends a TCP reset that can destroy the answer; a short rest is skipped."""
    host, port = small_server.url.removeprefix("http://").split(":")
    body = b"".join(multipart_body([], filename="tiny.npz"))
    head = (
        f"POST /v1/datasets HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer mp_not-a-key\r\n"
        f"Content-Type: {MULTIPART}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(head)
        refused = _read_response(connection)  # the app refuses the key from the headers alone
        connection.sendall(body)  # the rest of the refused request, which the server skips
        connection.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        again = _read_response(connection)
    assert refused.startswith(b"HTTP/1.1 401"), refused[:200]
    assert b"connection: close" not in refused.lower()
    assert again.startswith(b"HTTP/1.1 200"), again[:200]


def _read_response(connection: socket.socket) -> bytes:
    """One response with a Content-Length body, read off a connection that stays open."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        assert chunk, f"the server closed the connection: {data[:200]!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in lines if line.startswith(b"content-length:"))
    while len(rest) < length:
        chunk = connection.recv(65536)
        assert chunk, "the server closed the connection mid-answer"
        rest += chunk
    return head + b"\r\n\r\n" + rest


def _push_until_answered(server: LiveApi, key: str, *, chunked: bool) -> tuple[int, int, bytes]:
    """Send an oversized upload; (body bytes sent before the answer, after it, the answer's head)."""
    host, port = server.url.removeprefix("http://").split(":")
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {OFFERED}"
    head = (
        f"POST /v1/datasets HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: {MULTIPART}\r\n{length}\r\n\r\n"
    ).encode()
    body = b"".join(multipart_body([], filename="big.npz")).rsplit(b"\r\n--", 1)[0]
    piece = bytes(64 * 1024)
    frame = (b"%x\r\n" % len(piece) + piece + b"\r\n") if chunked else piece
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        if not chunked:  # a declared length over the cap is refused from the headers alone
            connection.sendall(head)
            if select.select([connection], [], [], 10)[0]:
                return 0, 0, _rest_of_answer(connection, b"")
            connection.sendall(body)
        else:
            connection.sendall(head + b"%x\r\n" % len(body) + body + b"\r\n")
        connection.setblocking(False)
        sent = after = 0
        answer = b""
        deadline = time.monotonic() + 60
        while sent + after < OFFERED and time.monotonic() < deadline:
            readable, writable, _ = select.select([connection], [connection], [], 2)
            if readable and not answer:
                answer = connection.recv(65536)
            if not writable:
                if answer:
                    break  # the server stopped reading: nothing more goes in
                continue
            try:
                written = connection.send(frame)
            except OSError:
                break  # reset or broken pipe: the server closed the connection
            if answer:
                after += written
            else:
                sent += written
        return sent, after, _rest_of_answer(connection, answer)


def _rest_of_answer(connection: socket.socket, start: bytes) -> bytes:
    """Read the response until the server closes the connection (it must: Connection: close)."""
    connection.setblocking(True)
    connection.settimeout(5)
    answer = start
    try:
        while chunk := connection.recv(65536):
            answer += chunk
    except OSError:
        pass
    return answer


def _remove_object(sha: str | None) -> None:
    store = get_store()
    if sha and isinstance(store, LocalStore):
        store.path(sha).unlink(missing_ok=True)
