"""The WebSocket of the HomeWizard API v2 (``/api/ws``): readings pushed as the device sends them.

One ``PushStream.run`` is one connection: TLS as for the client's requests (the HomeWizard CA, the
device's name), the token sent when the device asks for it, then ``measurement``, ``system`` and,
on meters that control batteries, ``batteries`` subscribed. Every message is parsed by the same
functions as the REST answers and merged into one ``Reading``, so a pushed reading is the reading
a poll would have produced. Pure asyncio and aiohttp, no Home Assistant imports.

Bounds: a message is at most ``MAX_BODY`` bytes (aiohttp closes the socket otherwise); the device
must ask for the token, and answer it, within ``handshake_timeout``; a socket silent for
``silence_limit`` seconds is taken as dead (a Wi-Fi drop closes nothing). Messages are handled one
at a time as they are read, each after the event loop's other work, so a slow consumer slows the
reading of the socket (aiohttp's reader pauses the transport) instead of queueing messages, and a
burst never holds the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

import aiohttp

from custom_components.meter_hub.api.model import Reading, Value
from custom_components.meter_hub.api.transport import decode_json, loggable

from .errors import CannotConnect, InvalidPayload, Unauthorized
from .models import BATTERY_CONTROLLERS, HomeWizardDevice
from .v2_client import MAX_BODY, HomeWizardV2Client
from .v2_parser import parse_batteries, parse_measurement, parse_system

# The devices whose firmware has the WebSocket (the vendor's table): P1 meter, kWh meters, battery.
PUSH_PRODUCTS: Final = frozenset(
    {"HWE-P1", "HWE-KWH1", "HWE-KWH3", "SDM230-wifi", "SDM630-wifi", "HWE-BAT"}
)


WEBSOCKET_PATH: Final = "/api/ws"


# The device closes a socket whose token has not come within 40 s; it asks for it at once.
HANDSHAKE_TIMEOUT: Final = 10.0


# A DSMR 5 meter sends every second, DSMR 4 every 10 s: 30 s of silence is a dead link.
SILENCE_LIMIT: Final = 30.0


def supports_push(product_type: str) -> bool:
    """Whether a v2 device of ``product_type`` offers the WebSocket."""
    return product_type in PUSH_PRODUCTS


class PushStream:
    """One WebSocket connection to a v2 device, from authorisation to the socket's end."""

    def __init__(
        self,
        client: HomeWizardV2Client,
        device: HomeWizardDevice,
        *,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        silence_limit: float = SILENCE_LIMIT,
    ) -> None:
        """Push the readings of ``device`` (as ``client.device()`` read it) through ``client``."""
        self._client = client
        self._device = device
        self._handshake_timeout = handshake_timeout
        self._silence_limit = silence_limit
        # The device answers each subscription with the topic's data, in order: system and
        # batteries first, so that the first reading of a connection already has them (else the
        # entities of their values would go unavailable for a moment at every reconnect).
        self.topics: Final = (
            "system",
            *(("batteries",) if device.product_type in BATTERY_CONTROLLERS else ()),
            "measurement",
        )
        # The last message of each topic, parsed: a reading needs a measurement; system and
        # batteries come once at the subscription and then only when they change.
        self._measurement: Reading | None = None
        self._extra: dict[str, dict[str, Value]] = {}

    async def run(self, on_reading: Callable[[Reading], None]) -> None:
        """Connect and call ``on_reading`` with each new reading until the socket ends.

        Returns never: raises ``CannotConnect`` when the socket cannot be opened or ends,
        ``Unauthorized`` when the device refuses the token, ``UntrustedDevice`` for a certificate
        that is not the device's.
        """
        async with await self._client.open_websocket(WEBSOCKET_PATH, MAX_BODY) as socket:
            await self._authorise(socket)
            for topic in self.topics:
                await socket.send_json({"type": "subscribe", "data": topic})
            while True:
                kind, data = await self._receive(socket, self._silence_limit)
                if (reading := self._take(kind, data)) is not None:
                    on_reading(reading)
                # Messages already read return without a pause: the loop's other work goes
                # first, so that a burst of them cannot hold the loop.
                await asyncio.sleep(0)

    async def _authorise(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        kind, _ = await self._receive(socket, self._handshake_timeout)
        if kind != "authorization_requested":
            raise InvalidPayload(f"the WebSocket opened with {loggable(kind, 40)}")
        await socket.send_json({"type": "authorization", "data": self._client.token})
        kind, _ = await self._receive(socket, self._handshake_timeout)
        if kind != "authorized":
            raise Unauthorized(f"{self._client.host} refuses the token on the WebSocket")

    async def _receive(
        self, socket: aiohttp.ClientWebSocketResponse, within: float
    ) -> tuple[str, Any]:
        """The next message's type and data; ``CannotConnect`` when the socket ends or is silent."""
        try:
            message = await socket.receive(within)
        except TimeoutError:
            raise CannotConnect(f"the WebSocket was silent for {within:g} s") from None
        if message.type is not aiohttp.WSMsgType.TEXT:
            # CLOSE, CLOSED, ERROR (a message over the size limit); a device sends text only.
            raise CannotConnect(f"the WebSocket ended ({message.type.name})")
        try:
            payload = decode_json(message.data.encode())
        except ValueError as err:
            raise InvalidPayload(f"a WebSocket message is not JSON: {loggable(err)}") from None
        if not isinstance(payload, dict) or not isinstance(kind := payload.get("type"), str):
            raise InvalidPayload("a WebSocket message without a type")
        if kind == "error":
            error = payload.get("data")
            message_text = error.get("message") if isinstance(error, dict) else None
            if message_text == "user:unauthorized":
                raise Unauthorized(f"{self._client.host} refuses the token on the WebSocket")
        return kind, payload.get("data")

    def _take(self, kind: str, data: object) -> Reading | None:
        """Keep a topic's message; the reading to publish, if there is one."""
        if kind == "measurement":
            self._measurement = parse_measurement(data, tz=self._client.tz)
        elif kind == "system":
            self._extra[kind] = parse_system(data)
        elif kind == "batteries":
            self._extra[kind] = parse_batteries(data)
        else:
            # ``error`` (a topic this firmware lacks), ``device``: nothing to publish.
            return None
        self._client.remember_payload(kind, data)
        if self._measurement is None:
            return None
        values = dict(self._measurement.values)
        for extra in self._extra.values():
            values.update(extra)
        return Reading(values=values, externals=dict(self._measurement.externals))
