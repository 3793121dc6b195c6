"""An SSDP responder on loopback: answers an M-SEARCH for the devices it announces.

IAMMETER meters announce themselves with SSDP (``ssdpEnabled`` in ``/api/admin/status`` of the
vendor's local API); a reply's ``LOCATION`` is the device's UPnP-style description (the meters'
public ``GET /info.xml``). Unicast on 127.0.0.1 only: tests send their M-SEARCH straight to
``responder.port`` (no multicast, nothing leaves the machine).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

LISTEN_HOST: Final = "127.0.0.1"
ROOT_DEVICE: Final = "upnp:rootdevice"
_ALL: Final = "ssdp:all"


@dataclass(frozen=True, slots=True)
class Announcement:
    """One device: where its description is, its UPnP name and type."""

    location: str
    udn: str
    device_type: str

    def reply(self, search_target: str) -> bytes:
        """The answer to an M-SEARCH for ``search_target``."""
        lines = (
            "HTTP/1.1 200 OK",
            "CACHE-CONTROL: max-age=1800",
            "EXT:",
            f"LOCATION: {self.location}",
            "SERVER: FreeRTOS UPnP/1.0 IAMMETER/1.0",
            f"ST: {search_target}",
            f"USN: {self.udn}::{search_target}",
        )
        return ("\r\n".join(lines) + "\r\n\r\n").encode()


def search_target(datagram: bytes) -> str | None:
    """The ``ST`` of an M-SEARCH datagram, None for anything else."""
    head, *headers = datagram.decode("ascii", errors="replace").split("\r\n")
    if not head.upper().startswith("M-SEARCH * HTTP/1.1"):
        return None
    for header in headers:
        name, _, value = header.partition(":")
        if name.strip().upper() == "ST":
            return value.strip()
    return None


class SsdpResponder(asyncio.DatagramProtocol):
    """Answers every M-SEARCH for all devices, root devices or a type a device has."""

    def __init__(self, devices: Callable[[], Iterable[Announcement]]) -> None:
        """Announce what ``devices`` gives at the time of each search."""
        self._devices = devices
        self._transport: asyncio.DatagramTransport | None = None
        self.searches = 0
        self.port = 0

    async def start(self, port: int = 0) -> int:
        """Listen on 127.0.0.1:``port`` (UDP; 0 picks a free one) and return the port."""
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: self, local_addr=(LISTEN_HOST, port)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self.port

    def stop(self) -> None:
        """Stop listening."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        """Reply once per device that the search's target names."""
        target = search_target(data)
        if target is None or self._transport is None:
            return
        self.searches += 1
        for device in self._devices():
            if target in (_ALL, ROOT_DEVICE, device.device_type):
                answer = device.device_type if target == _ALL else target
                self._transport.sendto(device.reply(answer), addr)
