"""Webhook POSTs against receivers on loopback: refusal before any connection, no redirects, one deadline."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest

from service.webhooks.outcomes import WebhookDelivery
from worker.webhook_post import post

LOOPBACK = (ip_network("127.0.0.0/8"), ip_network("::1/128"))


class Counting(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 counting the TCP connections it accepts and the requests it answers."""

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.connections = 0
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                server.requests.append(dict(self.headers))
                answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def get_request(self) -> tuple[socket.socket, Any]:
        self.connections += 1
        return super().get_request()


def _no_content(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(204)
    handler.end_headers()


@pytest.fixture
def receiver() -> Iterator[Counting]:
    server = Counting(_no_content)
    yield server
    server.shutdown()


def _slow_peer(first_bytes: bytes, then: bytes, every_s: float) -> tuple[int, threading.Event]:
    """A TCP peer on 127.0.0.1 that reads the request, then sends `then` one byte every `every_s`."""
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection, listener:
            connection.recv(65536)
            connection.sendall(first_bytes)
            for byte in then:
                try:
                    connection.send(bytes([byte]))
                except OSError:
                    break
                time.sleep(every_s)
            done.set()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], done


@pytest.mark.parametrize(
    "host",
    ["localhost", "127.0.0.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "[::ffff:127.0.0.1]"],
)
def test_loopback_in_any_form_is_refused_before_connecting(receiver: Counting, host: str) -> None:
    refused = post(f"http://{host}:{receiver.port}/hook", b"{}", {}, timeout_s=5)
    allowed = post(f"http://{host}:{receiver.port}/hook", b"{}", {}, timeout_s=5, allowed=LOOPBACK)

    assert refused.outcome == "refused-address" and refused.status_code is None
    # Allowed, the same URL is delivered: the refusal was the policy, and only it touched nothing.
    assert allowed.outcome == "delivered" and allowed.status_code == 204
    assert receiver.connections == 1


def test_a_name_is_dialled_at_the_address_checked_with_its_host_header(receiver: Counting) -> None:
    result = post(
        f"http://localhost:{receiver.port}/hook?x=1", b"{}", {"X-Test": "1"}, timeout_s=5, allowed=LOOPBACK
    )

    assert result.outcome == "delivered"
    [headers] = receiver.requests
    assert headers["Host"] == f"localhost:{receiver.port}" and headers["X-Test"] == "1"


def test_redirects_are_recorded_never_followed(receiver: Counting) -> None:
    def redirect(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", f"http://127.0.0.1:{receiver.port}/elsewhere")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    redirecting = Counting(redirect)
    try:
        result = post(f"http://127.0.0.1:{redirecting.port}/hook", b"{}", {}, timeout_s=5, allowed=LOOPBACK)
    finally:
        redirecting.shutdown()

    assert result.outcome == "http-302" and result.status_code == 302
    assert len(redirecting.requests) == 1
    assert receiver.connections == 0


def test_a_trickling_receiver_is_cut_at_the_total_deadline() -> None:
    # Each byte comes well inside any per-read timeout; the whole answer would take about 20 s.
    port, finished = _slow_peer(b"", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", every_s=0.5)
    started = time.monotonic()

    result = post(f"http://127.0.0.1:{port}/hook", b"{}", {}, timeout_s=1.5, allowed=LOOPBACK)

    elapsed = time.monotonic() - started
    assert result.outcome == "timeout" and result.status_code is None
    assert 1.4 <= elapsed < 5, elapsed  # loose: the machine is shared
    assert not finished.is_set()


def test_a_trickled_tls_handshake_is_cut_at_the_total_deadline() -> None:
    # A TLS record header announcing 16 KiB, then its body a byte at a time.
    port, finished = _slow_peer(b"\x16\x03\x03\x40\x00", b"\x00" * 200, every_s=0.2)
    started = time.monotonic()

    result = post(f"https://localhost:{port}/hook", b"{}", {}, timeout_s=1.5, allowed=LOOPBACK)

    assert result.outcome == "timeout"
    assert 1.4 <= time.monotonic() - started < 5
    assert not finished.is_set()


@pytest.fixture(scope="module")
def localhost_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate naming only DNS:localhost."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_verifies_the_url_name_while_dialling_the_checked_address(
    localhost_certificate: tuple[Path, Path],
) -> None:
    cert, key = localhost_certificate
    server = Counting(_no_content)
    names: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)  # type: ignore[assignment,func-returns-value]
    server.socket = context.wrap_socket(server.socket, server_side=True)
    trusting = ssl.create_default_context(cafile=str(cert))
    try:
        by_name = post(
            f"https://localhost:{server.port}/hook",
            b"{}",
            {},
            timeout_s=5,
            allowed=LOOPBACK,
            ssl_context=trusting,
        )
        by_address = post(
            f"https://127.0.0.1:{server.port}/hook",
            b"{}",
            {},
            timeout_s=5,
            allowed=LOOPBACK,
            ssl_context=trusting,
        )
        untrusted = post(f"https://localhost:{server.port}/hook", b"{}", {}, timeout_s=5, allowed=LOOPBACK)
    finally:
        server.shutdown()

    assert by_name.outcome == "delivered" and names[0] == "localhost"
    assert by_address.outcome == "connection-failed"  # the certificate does not name 127.0.0.1
    assert untrusted.outcome == "connection-failed"
    assert len(server.requests) == 1


def test_failures_are_one_coarse_class_whatever_the_socket_said() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    refused = post(f"http://127.0.0.1:{closed_port}/", b"{}", {}, timeout_s=5, allowed=LOOPBACK)
    unknown = post("http://no-such-host.invalid/", b"{}", {}, timeout_s=5, allowed=LOOPBACK)

    assert refused.outcome == unknown.outcome == "connection-failed"


def test_records_from_before_outcomes_lose_their_socket_text() -> None:
    legacy = {
        "delivery_id": "d1",
        "attempt": 1,
        "event": "job.succeeded",
        "at": "2026-12-01T00:00:00+00:00",
        "status_code": None,
        "error": "ConnectError: [Errno 111] Connection refused",
        "duration_ms": 0.4,
        "ok": False,
    }

    shown = WebhookDelivery.model_validate(legacy).model_dump()

    assert shown["outcome"] == "connection-failed" and shown["ok"] is False
    assert "error" not in shown and "duration_ms" not in shown
    assert "Errno" not in str(shown)
    answered = WebhookDelivery.model_validate({**legacy, "status_code": 503, "error": "HTTP 503"})
    assert answered.outcome == "http-503"
