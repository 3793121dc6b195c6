"""SSDP discovery of an IAMMETER meter, end to end on loopback.

The simulator's responder answers an M-SEARCH as a meter does; the test then does what Home
Assistant's SSDP does with the answer (fetch the description at ``LOCATION``, match it against
the manifest) and hands the result to the real config flow, which reads the meter and adds it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from xml.etree import ElementTree as ET

from aiohttp import ClientSession
from homeassistant.config_entries import SOURCE_SSDP
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.ssdp import SsdpServiceInfo
from homeassistant.loader import async_get_integration
import pytest

from custom_components.meter_hub.const import CONF_SERIAL, DOMAIN
from simulator.iammeter_local import FakeIamMeter
from simulator.ssdp import SsdpResponder

_UPNP = "{urn:schemas-upnp-org:device-1-0}"
M_SEARCH = (
    b"M-SEARCH * HTTP/1.1\r\n"
    b"HOST: 239.255.255.250:1900\r\n"
    b'MAN: "ssdp:discover"\r\n'
    b"MX: 1\r\n"
    b"ST: ssdp:all\r\n\r\n"
)


class _Replies(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.replies.put_nowait(data)


async def _m_search(port: int, expected: int) -> list[dict[str, str]]:
    """Send an M-SEARCH to 127.0.0.1:``port``; the headers of the ``expected`` replies."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_Replies, local_addr=("127.0.0.1", 0))
    try:
        transport.sendto(M_SEARCH, ("127.0.0.1", port))
        replies = [await asyncio.wait_for(protocol.replies.get(), 5) for _ in range(expected)]
    finally:
        transport.close()
    headers = []
    for reply in replies:
        status, *lines = reply.decode().split("\r\n")
        assert status == "HTTP/1.1 200 OK"
        pairs = (line.partition(":") for line in lines if line)
        headers.append({name.strip().lower(): value.strip() for name, _, value in pairs})
    return headers


async def _service_info(headers: dict[str, str]) -> SsdpServiceInfo:
    """What Home Assistant's SSDP makes of a reply: its headers and the described device."""
    async with (
        ClientSession() as session,
        session.get(headers["location"]) as answer,
    ):
        # the simulator's own description, not untrusted input
        root = ET.fromstring(await answer.text())  # noqa: S314
    device = root.find(f"{_UPNP}device")
    assert device is not None
    upnp = {child.tag.removeprefix(_UPNP): child.text or "" for child in device}
    return SsdpServiceInfo(
        ssdp_usn=headers["usn"],
        ssdp_st=headers["st"],
        ssdp_location=headers["location"],
        ssdp_headers=headers,
        upnp=upnp,
    )


@pytest.fixture
async def meters(socket_enabled: None) -> AsyncIterator[list[FakeIamMeter]]:
    started = [
        FakeIamMeter("WEM3080", serial="51A3080A"),
        FakeIamMeter("WEM3080T-NEM", serial="53C3080C"),
    ]
    for meter in started:
        await meter.start()
    yield started
    for meter in started:
        await meter.stop()


async def test_a_meter_found_over_ssdp_is_added_through_the_flow(
    hass: HomeAssistant, meters: list[FakeIamMeter]
) -> None:
    responder = SsdpResponder(lambda: [meter.announcement() for meter in meters])
    port = await responder.start()
    try:
        replies = await _m_search(port, expected=len(meters))
    finally:
        responder.stop()
    assert [reply["location"] for reply in replies] == [
        f"http://{meter.host}/info.xml" for meter in meters
    ]
    info = await _service_info(replies[1])
    # the manifest's matcher is what makes Home Assistant start the flow
    matchers = (await async_get_integration(hass, DOMAIN)).ssdp or []
    assert any(
        all(info.upnp.get(key) == value for key, value in matcher.items()) for matcher in matchers
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_SSDP}, data=info
    )
    assert result["step_id"] == "iammeter_discovery_confirm"
    assert result["description_placeholders"]["serial"] == "53C3080C"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_SERIAL] == "53C3080C"
    await hass.async_block_till_done()


async def test_the_responder_ignores_other_searches_and_datagrams(
    meters: list[FakeIamMeter],
) -> None:
    responder = SsdpResponder(lambda: [meter.announcement() for meter in meters])
    port = await responder.start()
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_Replies, local_addr=("127.0.0.1", 0))
    try:
        transport.sendto(b"NOTIFY * HTTP/1.1\r\n\r\n", ("127.0.0.1", port))
        transport.sendto(M_SEARCH.replace(b"ssdp:all", b"urn:other:device:1"), ("127.0.0.1", port))
        transport.sendto(M_SEARCH.replace(b"ssdp:all", b"upnp:rootdevice"), ("127.0.0.1", port))
        reply = await asyncio.wait_for(protocol.replies.get(), 5)
        assert b"ST: upnp:rootdevice\r\n" in reply
        await asyncio.sleep(0.1)
        assert protocol.replies.qsize() == len(meters) - 1
        assert responder.searches == 2
    finally:
        transport.close()
        responder.stop()
