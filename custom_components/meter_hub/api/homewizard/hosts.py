"""The address a user types or a device announces, normalised (API v1: http, API v2: https)."""

from __future__ import annotations

import ipaddress
import re
from typing import Final

from .errors import InvalidHost

_HOSTNAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*\.?")


_NOT_IN_HOST: Final = (
    ("@", "must not contain credentials (user@)"),
    ("/", "must not contain a path"),
    ("?", "must not contain a query"),
    ("#", "must not contain a fragment"),
)


def normalise_host(text: str) -> str:
    """Return ``host`` or ``host:port`` (IPv6 in brackets, no port when it is 80) from user input.

    Accepts an IP address, a hostname, ``host:port``, ``[ipv6]:port`` or ``http://host[:port]``,
    with an optional trailing ``/``. Raises ``InvalidHost`` with the reason; never does I/O.
    """
    text = text.strip()
    scheme, sep, rest = text.partition("://")
    if sep:
        if scheme.lower() != "http":
            raise InvalidHost(f"unsupported scheme {scheme!r}: HomeWizard API v1 uses http://")
        text = rest
    text = text.removesuffix("/")
    if not text:
        raise InvalidHost("the host is empty")
    for char, reason in _NOT_IN_HOST:
        if char in text:
            raise InvalidHost(f"the host {reason}")

    host, port = text, None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or ":" not in host or (rest and not rest.startswith(":")):
            raise InvalidHost(f"{text!r} is not a valid [IPv6]:port")
        port = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if port is not None and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise InvalidHost(f"invalid port {port!r}: expected a number from 1 to 65535")
    host = _normalise_address(host)
    return host if port is None or int(port) == 80 else f"{host}:{int(port)}"


def _normalise_address(host: str) -> str:
    """Return an IP address in canonical form (IPv6 in brackets) or a lower-case hostname."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        if isinstance(address, ipaddress.IPv4Address):
            return str(address)
        if address.scope_id:
            raise InvalidHost("IPv6 zone ids (%) are not supported")
        return f"[{address}]"
    if ":" in host:
        raise InvalidHost(f"{host!r} is not a valid IPv6 address")
    host = host.lower()
    if host.replace(".", "").isdigit() or not _HOSTNAME.fullmatch(host):
        raise InvalidHost(f"{host!r} is not a valid IP address or hostname")
    return host


def v2_host(host: str) -> str:
    """The address of API v2 (port 443) of the device that has API v1 at ``host``."""
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.partition(":")[0]
