"""The webhook address policy, on the check functions alone: nothing here opens a connection."""

from __future__ import annotations

import socket
import uuid
from ipaddress import IPv4Address, ip_address, ip_network

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service.settings import Settings, get_settings
from service.webhooks.addresses import ipv4_literal, is_allowed, literal_address, submit_refusal
from tests.fixtures.api import new_key

LOOPBACK_ENCODINGS = [
    "127.0.0.1",
    "2130706433",  # decimal
    "0x7f000001",  # hex
    "0X7F000001",
    "0177.0.0.1",  # octal
    "0x7f.0.0.1",
    "0x7f.1",
    "127.1",  # short forms
    "127.0.1",
    "0177.1",
    "127.0.0.1.",  # trailing dot
    "127.255.255.254",
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[::ffff:7f00:1]",
    "[::127.0.0.1]",  # IPv4-compatible (deprecated)
    "[2002:7f00:1::]",  # 6to4 around loopback
    "[64:ff9b::7f00:1]",  # NAT64 around loopback
]
OTHER_INTERNAL = [
    "0.0.0.0",
    "0",
    "[::]",
    "10.0.0.1",
    "012.0.0.1",  # octal 10.0.0.1
    "167772161",  # decimal 10.0.0.1
    "10.1",
    "172.16.0.1",
    "192.168.1.1",
    "0xc0a80101",
    "169.254.169.254",  # cloud metadata
    "0xa9fea9fe",
    "[fe80::1]",
    "[fe80::1%eth0]",
    "[::ffff:169.254.169.254]",
    "[::ffff:10.0.0.1]",
    "100.64.0.1",  # shared address space
    "192.0.0.8",
    "198.18.0.1",  # benchmarking
    "192.0.2.1",  # documentation
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "[ff02::1]",
    "[ff0e::1]",
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "[fc00::1]",  # unique local
    "[fd12:3456::1]",
    "[fec0::1]",  # site-local
    "[2001:db8::1]",  # documentation
    "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",  # Teredo
    "[2002:a00:1::1]",  # 6to4 around 10.0.0.1
    "[64:ff9b:1::a00:1]",  # local-use NAT64
    "[100::1]",  # discard-only
]
PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "134744072",
    "[2606:4700:4700::1111]",
    "[::ffff:8.8.8.8]",
    "[64:ff9b::808:808]",
]


@pytest.mark.parametrize("host", LOOPBACK_ENCODINGS + OTHER_INTERNAL)
def test_every_encoding_of_an_internal_address_is_refused(host: str) -> None:
    address = literal_address(host)

    assert address is not None, host
    assert not is_allowed(address)
    assert submit_refusal(host) is not None


@pytest.mark.parametrize("host", PUBLIC)
def test_public_addresses_pass(host: str) -> None:
    address = literal_address(host)

    assert address is not None and is_allowed(address)
    assert submit_refusal(host) is None


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.1", "10.1", "0", "1.2.3", "0xc0.0250.1.1"],
)
def test_literal_forms_read_as_inet_aton_reads_them(host: str) -> None:
    # inet_aton only parses text; it is the reference for what the C resolver would dial.
    assert ipv4_literal(host) == IPv4Address(socket.inet_aton(host))


@pytest.mark.parametrize(
    "host",
    ["1_0.0.0.1", "4294967296", "1.2.3.4.5", "0x7g.0.0.1", "08.0.0.1", "256.1.1.1", "\u0661.0.0.1", ""],
)
def test_non_literals_are_names(host: str) -> None:
    assert ipv4_literal(host) is None


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "api.localhost", "metadata.google.internal"])
def test_plainly_internal_names_are_refused_at_submit(host: str) -> None:
    assert submit_refusal(host) is not None


@pytest.mark.parametrize("host", ["printer", "nas.local", "router.lan", "db.home.arpa"])
def test_names_that_resolve_only_inside_a_network_are_refused_at_submit(host: str) -> None:
    assert submit_refusal(host) is not None
    assert submit_refusal(host, (ip_network("10.0.0.0/8"),)) is None  # the delivery check decides


def test_the_allow_list_admits_only_its_networks() -> None:
    allowed = (ip_network("127.0.0.0/8"), ip_network("::1/128"))

    assert is_allowed(ip_address("127.0.0.1"), allowed)
    assert is_allowed(ip_address("::ffff:127.0.0.1"), allowed)  # dialled as 127.0.0.1
    assert is_allowed(ip_address("::1"), allowed)
    assert not is_allowed(ip_address("10.0.0.1"), allowed)
    assert not is_allowed(ip_address("0.0.0.0"), allowed)  # on Linux it reaches loopback: not in the list
    assert not is_allowed(ip_address("169.254.169.254"), allowed)
    assert submit_refusal("localhost", allowed) is None
    assert submit_refusal("[::ffff:127.0.0.1]", allowed) is None


def test_the_allow_list_setting_reads_cidr_lists_and_refuses_typos() -> None:
    settings = Settings(webhook_allowed_networks="10.0.0.0/8, fd00::/8 127.0.0.1/32")

    assert settings.webhook_allowed_networks == (
        ip_network("10.0.0.0/8"),
        ip_network("fd00::/8"),
        ip_network("127.0.0.1/32"),
    )
    assert Settings().model_fields["webhook_allowed_networks"].default == ()
    with pytest.raises(ValidationError, match="host bits set"):
        Settings(webhook_allowed_networks="10.1.2.3/8")


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/hook",
        "http://0x7f000001/",
        "http://0177.0.0.1:8080/",
        "http://127.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0:9000/",
        "https://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://%6c%6f%63%61%6c%68%6f%73%74/",  # percent-encoded localhost
        "http://localhost./",
        "http://[fe80::1%25eth0]/",
        "http://metadata.google.internal/",
    ],
)
def test_submitting_an_internal_callback_is_a_422(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    # The test environment allows 127.0.0.0/8 and ::1 (its receivers live there): this API
    # process runs the policy without it, as a default deployment does.
    monkeypatch.setattr(get_settings(), "webhook_allowed_networks", ())
    body = {"model_id": str(uuid.uuid4()), "steps": [{"technique": "quantize.dynamic"}], "callback_url": url}

    response = app_client.post("/v1/jobs", headers={"Authorization": f"Bearer {new_key()}"}, json=body)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    [error] = response.json()["errors"]
    assert "callback_url" in error["loc"]
    assert any(reason in error["msg"] for reason in ("non-public address", "host", "invalid IPv6"))
