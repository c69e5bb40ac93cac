"""One webhook POST: resolve, check every address, dial the checked one, all within one deadline."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpcore
import httpx
from pydantic_core import Url

from service.webhooks.addresses import IPAddress, IPNetwork, is_allowed, literal_address
from service.webhooks.outcomes import CONNECTION_FAILED, REFUSED_ADDRESS, TIMEOUT, http_outcome
from worker.webhook_stream import PinnedBackend


@dataclass(frozen=True)
class PostResult:
    """What a delivery attempt may record: a coarse outcome and, when answered, the HTTP status."""

    outcome: str
    status_code: int | None = None


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout_s: float,
    allowed: Sequence[IPNetwork] = (),
    ssl_context: ssl.SSLContext | None = None,
) -> PostResult:
    """POST `body` to `url`, refusing non-public addresses; redirects are answers, never followed."""
    deadline = time.monotonic() + timeout_s
    try:
        # The API's URL parser first, so 0177.0.0.1 or 2130706433 reads here as it did at submit.
        target = httpx.URL(str(Url(url)))
    except (ValueError, httpx.InvalidURL):
        return PostResult(REFUSED_ADDRESS)  # only rows stored before validation can get here
    if target.scheme not in ("http", "https"):
        return PostResult(REFUSED_ADDRESS)
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        addresses = resolve(target.raw_host.decode("ascii"), port, deadline)
    except TimeoutError:
        return PostResult(TIMEOUT)
    except OSError:
        return PostResult(CONNECTION_FAILED)
    if not addresses or not all(is_allowed(address, allowed) for address in addresses):
        return PostResult(REFUSED_ADDRESS)
    request_url = httpcore.URL(
        scheme=target.raw_scheme, host=target.raw_host, port=target.port, target=target.raw_path
    )
    pool = httpcore.ConnectionPool(
        ssl_context=ssl_context or ssl.create_default_context(),
        network_backend=PinnedBackend(addresses, deadline),
        retries=0,
    )
    try:
        with (
            pool,
            pool.stream(
                "POST",
                request_url,
                headers=[*headers.items(), ("Host", target.netloc.decode("ascii"))],
                content=body,
            ) as response,
        ):
            status = response.status  # the body is never read: a receiver cannot make us download
    except (httpcore.TimeoutException, TimeoutError):
        return PostResult(TIMEOUT)
    except (httpcore.NetworkError, httpcore.ProtocolError, OSError):
        # Past the deadline any failure is the deadline's doing (a socket cut mid-handshake, say).
        return PostResult(TIMEOUT if time.monotonic() >= deadline else CONNECTION_FAILED)
    return PostResult(http_outcome(status), status)


def resolve(host: str, port: int, deadline: float) -> list[IPAddress]:
    """Every address `host` stands for: its literal value, or all that DNS answers before the deadline."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    answers: list[list[IPAddress] | OSError] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            answers.append(list(dict.fromkeys(_address(str(info[4][0])) for info in infos)))
        except OSError as exc:
            answers.append(exc)

    # getaddrinfo takes no timeout: a daemon thread lets the deadline win; the lookup ends by itself.
    thread = threading.Thread(target=lookup, name="webhook-dns", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if not answers:
        raise TimeoutError
    answer = answers[0]
    if isinstance(answer, OSError):
        raise answer
    return answer


def _address(text: str) -> IPAddress:
    """An address getaddrinfo returned, without the zone suffix ipaddress would keep."""
    parsed = literal_address(text.split("%", 1)[0])
    if parsed is None:
        raise OSError(f"unparseable address from the resolver: {text!r}")
    return parsed
