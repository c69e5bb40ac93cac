"""Which addresses a webhook may reach: public unicast only, unless an operator allows a network."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

# Ranges that `is_global` lets through on some Python versions but no receiver lives in.
_NON_PUBLIC_V4 = tuple(
    IPv4Network(text)
    for text in ("0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.88.99.0/24", "198.18.0.0/15")
)
_NAT64 = IPv6Network("64:ff9b::/96")  # the gateway dials the IPv4 address in the low 32 bits
_IPV4_COMPATIBLE = IPv6Network("::/96")  # deprecated ::a.b.c.d
_NON_PUBLIC_V6 = tuple(IPv6Network(text) for text in ("::/8", "64:ff9b:1::/48", "2001::/23", "fec0::/10"))
_INET_ATON_PART = re.compile(r"0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*", re.ASCII)
# Names that only ever resolve inside a network (RFC 6761, 6762, 8375 (home.arpa), ICANN's .internal).
_INTERNAL_SUFFIXES = ("localhost", "local", "localdomain", "internal", "intranet", "lan", "arpa")


def ipv4_literal(host: str) -> IPv4Address | None:
    """The address inet_aton reads from `host` (127.1, 2130706433, 0x7f000001, 0177.0.0.1), or None."""
    parts = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = [_inet_aton_part(part) for part in parts]
    if any(value is None for value in values):
        return None
    numbers = [value for value in values if value is not None]
    *leading, last = numbers
    if any(value > 255 for value in leading) or last >= 256 ** (5 - len(numbers)):
        return None
    packed = 0
    for value in leading:
        packed = packed << 8 | value
    return IPv4Address(packed << 8 * (5 - len(numbers)) | last)


def _inet_aton_part(part: str) -> int | None:
    """One dotted part: 0x-prefixed hex, 0-prefixed octal or decimal, as inet_aton reads it."""
    lowered = part.lower()
    if not _INET_ATON_PART.fullmatch(lowered):
        return None  # int() alone would also take "1_0", " 1" and non-ASCII digits
    if lowered.startswith("0x"):
        return int(lowered[2:] or "0", 16)
    return int(lowered, 8) if lowered.startswith("0") else int(lowered)


def literal_address(host: str) -> IPAddress | None:
    """The IP address written in a URL's host ([::1], 127.0.0.1, 0x7f.1, ...), or None for a name."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        return ipv4_literal(bare)


def embedded_ipv4(address: IPv6Address) -> list[IPv4Address]:
    """The IPv4 addresses an IPv6 transition form carries (mapped, compatible, 6to4, Teredo, NAT64)."""
    found: list[IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        found.append(IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address, checked with every `ipaddress` property."""
    if isinstance(address, IPv6Address):
        if any(not is_public(inner) for inner in embedded_ipv4(address)):
            return False
        if address.ipv4_mapped is not None or address in _NAT64:
            return True  # what is dialled is the embedded IPv4 address, just found public
        if address.is_site_local or any(address in network for network in _NON_PUBLIC_V6):
            return False
    elif any(address in network for network in _NON_PUBLIC_V4):
        return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def is_allowed(address: IPAddress, allowed: Sequence[IPNetwork] = ()) -> bool:
    """True when a webhook may connect to `address`: public, or inside a network the operator allows."""
    dialled = address.ipv4_mapped if isinstance(address, IPv6Address) and address.ipv4_mapped else address
    if any(dialled in network for network in allowed):
        return True
    return is_public(address)


def submit_refusal(host: str, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why a callback host is refused when a job is submitted, or None; delivery checks again after DNS."""
    address = literal_address(host)
    if address is not None:
        return None if is_allowed(address, allowed) else "the callback URL points at a non-public address"
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        loopback = IPv4Address("127.0.0.1")
        return None if is_allowed(loopback, allowed) else "the callback URL names a loopback host"
    internal = "." not in name or any(name == s or name.endswith("." + s) for s in _INTERNAL_SUFFIXES)
    if internal and not allowed:
        return "the callback URL names a host that only resolves inside a private network"
    return None
