"""A fake HomeWizard device speaking the local API v2 (HTTPS, token by button press) on 127.0.0.1.

Each profile is a folder of ``payloads/homewizard_v2/<profile>/`` with the bodies of ``/api``
(``device.json``), ``/api/measurement``, ``/api/system`` and, on meters, ``/api/batteries``. The
certificate is issued by a ``SimulatorAuthority`` for ``appliance/<type>/<serial>``, as the
HomeWizard CA does for real devices.

API v1 stays on the same device, as the vendor describes: pass the device's v1 fake as ``v1``,
and ``api_v1_enabled`` of ``/api/system`` (``PUT`` sets it) switches it.

The button: ``press()`` (or ``POST /_sim/press`` with ``start(control=True)``) opens the window in
which ``POST /api/user`` creates a user; outside it the device answers 403
``user:creation-not-enabled``. ``max_users`` bounds the user store (403 ``user:no-storage``),
``revoke()`` removes a user (its token then gets 401 ``user:unauthorized``).

The WebSocket ``/api/ws``: the device asks for the token (``authorization_requested``), closes
the socket when none comes within ``authorization_deadline`` seconds, then sends each subscribed
topic at once and ``measurement`` again every ``push_interval`` seconds (1 s by default, as a
DSMR 5 meter does), and at once after ``push()``. ``drop_sockets()`` cuts every open socket (a
reboot or a Wi-Fi drop); ``hang_upgrade`` makes the device accept the connection but never answer
the upgrade. Faults of the fault matrix: ``hang_authorization`` (the socket opens, the token is
never asked for), ``mute`` (sockets stay open, nothing is sent), ``silent`` (a Wi-Fi drop: nothing
is sent and every request and upgrade waits, no socket is closed), ``send_raw(text, count)`` (any
text on every authorised socket).

The writes (v2 docs: system.mdx, batteries.mdx): ``PUT /api/system`` (cloud connection, status
light, API v1), ``PUT /api/batteries`` (``battery_group.py``), ``PUT /api/system/identify``
(counted in ``identified``) and ``PUT /api/system/reboot`` (counted in ``reboots``: the sockets
drop and every request gets 503 for ``reboot_seconds``, then the uptime starts again), each where
the product has it. A changed ``system`` or ``batteries`` is pushed at once on the sockets
subscribed to it, as the device does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import contextlib
import copy
from dataclasses import dataclass
from functools import partial
import json
from pathlib import Path
import re
import secrets
import time
from typing import Any, Final

from aiohttp import WSMsgType, web

from .battery_group import BatteryGroup
from .homewizard import LISTEN_HOST, FakeHomeWizard
from .tls import SimulatorAuthority

PAYLOADS: Final = Path(__file__).parent / "payloads" / "homewizard_v2"
PRESS_PATH: Final = "/_sim/press"
# How long after a press the device accepts ``POST /api/user``: 30 s, the vendor says.
BUTTON_WINDOW: Final = 30.0
# Product type -> the type in the certificate name (the vendor's legacy names).
CERTIFICATE_TYPES: Final = {
    "HWE-P1": "p1dongle",
    "HWE-KWH1": "energymeter",
    "HWE-KWH3": "energymeter",
    "HWE-BAT": "battery",
}
_USER_NAME: Final = re.compile(r"local/[a-zA-Z0-9\-_/\\# ]{1,40}")
WEBSOCKET_PATH: Final = "/api/ws"
# The vendor: the token must come within 40 s of the connection.
AUTHORIZATION_DEADLINE: Final = 40.0
PUSH_INTERVAL: Final = 1.0
REBOOT_SECONDS: Final = 3.0
# What each product lets a user write (system.mdx): the kWh meters have no status light and no
# identify; the battery's cloud connection is read-only and it cannot be rebooted.
SYSTEM_WRITABLE: Final = {
    "HWE-P1": frozenset({"cloud_enabled", "status_led_brightness_pct"}),
    "HWE-KWH1": frozenset({"cloud_enabled"}),
    "HWE-KWH3": frozenset({"cloud_enabled"}),
    "HWE-BAT": frozenset({"status_led_brightness_pct"}),
}
NO_IDENTIFY: Final = frozenset({"HWE-KWH1", "HWE-KWH3"})
NO_REBOOT: Final = frozenset({"HWE-BAT"})


@dataclass(frozen=True, slots=True)
class ProfileV2:
    """The bodies a v2 device of one kind serves (shared: copy before changing them)."""

    name: str
    device: dict[str, Any]
    measurement: dict[str, Any]
    system: dict[str, Any]
    batteries: dict[str, Any] | None


def _load_profiles() -> dict[str, ProfileV2]:
    def read(path: Path) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return body

    return {
        folder.name: ProfileV2(
            folder.name,
            read(folder / "device.json"),
            read(folder / "measurement.json"),
            read(folder / "system.json"),
            read(folder / "batteries.json") if (folder / "batteries.json").exists() else None,
        )
        for folder in sorted(PAYLOADS.iterdir())
        if folder.is_dir()
    }


# Read once at import, outside any event loop.
PROFILES_V2: Final = _load_profiles()


def _error(status: int, code: str) -> web.Response:
    return web.json_response({"error": code}, status=status)


class FakeHomeWizardV2:
    """One fake v2 device; its bodies and its user store are free to change.

    ``device``, ``measurement``, ``system`` and ``batteries`` are the bodies it serves; ``users``
    maps user names to tokens.
    ``common_name`` overrides the certificate's name (a device that is not the one expected);
    ``fail_with`` (status, body) is the answer to every request while set. ``request_count``
    counts requests per path.
    """

    def __init__(
        self,
        authority: SimulatorAuthority,
        profile: str = "HWE-P1",
        *,
        max_users: int = 10,
        button_window: float = BUTTON_WINDOW,
        common_name: str | None = None,
        v1: FakeHomeWizard | None = None,
        push_interval: float = PUSH_INTERVAL,
    ) -> None:
        """Serve a copy of ``profile`` with a certificate of ``authority``; ``v1`` is its API v1.

        ``push_interval`` is the time between two ``measurement`` messages on the WebSocket.
        """
        source = PROFILES_V2[profile]
        self.profile = profile
        self.device: dict[str, Any] = copy.deepcopy(source.device)
        self.measurement: dict[str, Any] = copy.deepcopy(source.measurement)
        self.system: dict[str, Any] = copy.deepcopy(source.system)
        self.batteries: dict[str, Any] | None = copy.deepcopy(source.batteries)
        self.battery_group = (
            None if self.batteries is None else BatteryGroup(self.batteries, self._battery_modes())
        )
        self.identified = 0
        self.reboots = 0
        self.reboot_seconds = REBOOT_SECONDS
        self._rebooting_until = 0.0
        # How often each topic changed: a socket sends a topic whose count moved.
        self._topic_changes: dict[str, int] = {}
        self.users: dict[str, str] = {}
        self.max_users = max_users
        self.button_window = button_window
        self.request_count: dict[str, int] = {}
        self.fail_with: tuple[int, bytes] | None = None
        self.server_hostname: Final = (
            f"appliance/{CERTIFICATE_TYPES[self.device['product_type']]}/{self.device['serial']}"
        )
        self.v1 = v1
        self._authority = authority
        self._common_name = common_name or self.server_hostname
        self._pressed_at: float | None = None
        self._runner: web.AppRunner | None = None
        self._port = 0
        self.push_interval = push_interval
        self.authorization_deadline = AUTHORIZATION_DEADLINE
        self.hang_upgrade = False
        self.hang_authorization = False
        self.mute = False
        self.silent = False
        # The authorised sockets (``send_raw``).
        self._authorised: set[web.WebSocketResponse] = set()
        # Messages sent on the WebSocket, all sockets together.
        self.pushed = 0
        # The connections of the open sockets (cut to drop them).
        self._sockets: set[asyncio.BaseTransport] = set()
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        # The handlers of the open sockets: cancelled on stop (a frozen test clock would let
        # aiohttp's shutdown wait for them for ever).
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>`` once started."""
        return f"{LISTEN_HOST}:{self._port}"

    @property
    def serial(self) -> str:
        """The device's serial."""
        serial: str = self.device["serial"]
        return serial

    async def start(self, port: int = 0, *, control: bool = False) -> int:
        """Listen with HTTPS on 127.0.0.1 (``port`` 0 picks a free one) and return the port.

        ``control`` adds the simulator's button ``POST /_sim/press``.
        """
        self._stopping.clear()
        app = web.Application()
        if control:
            app.router.add_post(PRESS_PATH, self._press)
        app.router.add_get(WEBSOCKET_PATH, self._websocket)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        ssl_context = self._authority.server_context(self._common_name)
        await web.TCPSite(self._runner, LISTEN_HOST, port, ssl_context=ssl_context).start()
        self._port = self._runner.addresses[0][1]
        return self._port

    async def stop(self) -> None:
        """Stop listening."""
        self._stopping.set()
        self.drop_sockets()
        for handler in self._handlers:
            handler.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def press(self) -> None:
        """Press the button: ``POST /api/user`` creates users for ``button_window`` seconds."""
        self._pressed_at = time.monotonic()

    def revoke(self, name: str) -> None:
        """Remove user ``name`` (as the app does): its token is refused from now on."""
        self.users.pop(name, None)

    def push(self) -> None:
        """Send ``measurement`` on every socket now (a value changed), not at the next tick."""
        self._changed.set()

    def changed(self, topic: str) -> None:
        """Send ``topic`` now on the sockets subscribed to it (a setting changed)."""
        self._topic_changes[topic] = self._topic_changes.get(topic, 0) + 1
        self._changed.set()

    def _battery_modes(self) -> tuple[str, ...]:
        """The modes of the device's API version: ``predictive`` from 2.3.0."""
        major, minor = (int(part) for part in self.device["api_version"].split(".")[:2])
        legacy = ("zero", "to_full", "standby")
        return (*legacy, "predictive") if (major, minor) >= (2, 3) else legacy

    def _rebooting(self) -> bool:
        return time.monotonic() < self._rebooting_until

    def send_raw(self, text: str, count: int = 1) -> None:
        """Send ``text`` as it is, ``count`` times, on every authorised socket."""

        async def send(socket: web.WebSocketResponse) -> None:
            for _ in range(count):
                await socket.send_str(text)

        for socket in self._authorised:
            task = asyncio.get_running_loop().create_task(send(socket))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    async def _while(self, flag: str) -> None:
        """Wait while attribute ``flag`` is set (or until the device stops)."""
        while getattr(self, flag) and not self._stopping.is_set():  # noqa: ASYNC110 - plain flags
            await asyncio.sleep(0.05)

    def drop_sockets(self) -> None:
        """Cut every open WebSocket, as a reboot or a Wi-Fi drop does (no closing handshake)."""
        for transport in self._sockets:
            transport.close()
        self._sockets.clear()

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        """``/api/ws``: authorise within the deadline, then push the subscribed topics."""
        self.request_count[request.path] = self.request_count.get(request.path, 0) + 1
        if (task := asyncio.current_task()) is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        await self._while("hang_upgrade")
        await self._while("silent")
        if self._stopping.is_set() or self._rebooting():
            # A reconnect while the device shuts down or reboots.
            return _error(503, "request:unavailable")
        socket = web.WebSocketResponse(max_msg_size=64 * 1024)
        if (transport := request.transport) is not None:
            self._sockets.add(transport)
        try:
            await socket.prepare(request)
            await self._while("hang_authorization")
            await socket.send_json(
                {"type": "authorization_requested", "data": {"api_version": "2.0.0"}}
            )
            async with asyncio.timeout(self.authorization_deadline):
                message = await socket.receive_json()
            if (
                not isinstance(message, dict)
                or message.get("type") != "authorization"
                or message.get("data") not in self.users.values()
            ):
                await socket.send_json({"type": "error", "data": {"message": "user:unauthorized"}})
                return socket
            await socket.send_json({"type": "authorized"})
            self._authorised.add(socket)
            topics: set[str] = set()
            pusher = asyncio.create_task(self._push_loop(socket, topics))
            try:
                async for message in socket:
                    if message.type is WSMsgType.TEXT:
                        await self._command(socket, message.json(), topics)
            finally:
                self._authorised.discard(socket)
                pusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pusher
        except (TimeoutError, ValueError, TypeError, ConnectionError):
            pass
        finally:
            if transport is not None:
                self._sockets.discard(transport)
                transport.close()
        return socket

    def _topics(self) -> dict[str, dict[str, Any] | None]:
        if self.v1 is not None:
            self.system["api_v1_enabled"] = self.v1.api_enabled
        return {
            "device": self.device,
            "measurement": self.measurement,
            "system": self.system,
            "batteries": self.batteries,
        }

    async def _send(self, socket: web.WebSocketResponse, topic: str) -> None:
        if self.mute or self.silent:
            return
        body = self._topics().get(topic)
        if body is None:
            await socket.send_json({"type": "error", "data": {"message": "request:not-found"}})
            return
        self.pushed += 1
        await socket.send_json({"type": topic, "data": body})

    async def _command(
        self, socket: web.WebSocketResponse, message: object, topics: set[str]
    ) -> None:
        """``subscribe`` / ``unsubscribe`` a topic, or ask for one topic's data once."""
        if not isinstance(message, dict) or not isinstance(kind := message.get("type"), str):
            await socket.send_json({"type": "error", "data": {"message": "json:invalid"}})
        elif kind == "subscribe" and isinstance(topic := message.get("data"), str):
            subscribed = set(self._topics()) if topic == "*" else {topic}
            topics |= subscribed
            for name in sorted(subscribed):
                await self._send(socket, name)
        elif kind == "unsubscribe":
            topics.discard(str(message.get("data")))
        else:
            await self._send(socket, kind)

    async def _push_loop(self, socket: web.WebSocketResponse, topics: set[str]) -> None:
        """Send ``measurement`` every ``push_interval`` seconds, or at once after ``push()``.

        A topic that ``changed()`` goes first.
        """
        sent = dict(self._topic_changes)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.push_interval):
                    await self._changed.wait()
            self._changed.clear()
            changes = {t for t, n in self._topic_changes.items() if sent.get(t) != n}
            sent = dict(self._topic_changes)
            for topic in sorted(changes & topics):
                await self._send(socket, topic)
            if "measurement" in topics:
                await self._send(socket, "measurement")

    async def _press(self, _request: web.Request) -> web.Response:
        self.press()
        return web.Response(status=204)

    def _button_window_open(self) -> bool:
        return (
            self._pressed_at is not None
            and time.monotonic() - self._pressed_at <= self.button_window
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.request_count[path] = self.request_count.get(path, 0) + 1
        await self._while("silent")
        if self.fail_with is not None:
            status, body = self.fail_with
            return web.Response(status=status, body=body, content_type="application/json")
        if self._rebooting():
            return _error(503, "request:unavailable")
        # No header: the latest version (v2 here), as the vendor's versioning page says.
        if request.headers.get("X-Api-Version", "2") != "2":
            return _error(400, "request:api-version-not-supported")
        if path == "/api/user" and request.method == "POST":
            return await self._create_user(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.users.values():
            return _error(401, "user:unauthorized")
        if request.method == "PUT" and (write := self._writes().get(path)) is not None:
            return await write(request)
        if self.v1 is not None:
            self.system["api_v1_enabled"] = self.v1.api_enabled
        bodies = {
            "/api": self.device,
            "/api/measurement": self.measurement,
            "/api/system": self.system,
            "/api/batteries": self.batteries,
        }
        body = bodies.get(path)
        if body is None or request.method != "GET":
            return _error(404, "request:not-found")
        return web.json_response(body)

    def _writes(self) -> dict[str, Callable[[web.Request], Awaitable[web.Response]]]:
        """The handler of each ``PUT`` path this product has."""
        product = self.device["product_type"]
        writes: dict[str, Callable[[web.Request], Awaitable[web.Response]]] = {
            "/api/system": self._set_system
        }
        if product not in NO_IDENTIFY:
            writes["/api/system/identify"] = self._identify
        if product not in NO_REBOOT:
            writes["/api/system/reboot"] = self._reboot
        if self.battery_group is not None:
            writes["/api/batteries"] = partial(self._set_batteries, self.battery_group)
        return writes

    async def _set_system(self, request: web.Request) -> web.Response:
        """``PUT /api/system``: the settings a user may set (API v1 only where there is one)."""
        try:
            changes = await request.json()
        except ValueError:
            return _error(400, "request:invalid-json")
        writable = set(SYSTEM_WRITABLE[self.device["product_type"]])
        if self.v1 is not None:
            writable.add("api_v1_enabled")
        if not isinstance(changes, dict) or not changes.keys() & writable:
            return _error(400, "json:no-parameters-recognized")
        for key in sorted(changes.keys() & writable):
            value = changes[key]
            valid = (
                isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 100
                if key == "status_led_brightness_pct"
                else isinstance(value, bool)
            )
            if not valid:
                return _error(400, f"json:parameter-invalid-type:{key}")
        for key in changes.keys() & writable:
            self.system[key] = changes[key]
        if self.v1 is not None:
            self.v1.api_enabled = bool(self.system["api_v1_enabled"])
        self.changed("system")
        return web.json_response(self.system)

    async def _set_batteries(self, group: BatteryGroup, request: web.Request) -> web.Response:
        """``PUT /api/batteries``: the mode, the permissions, charge to full."""
        try:
            changes = await request.json()
        except ValueError:
            return _error(400, "request:invalid-json")
        if (error := group.change(changes)) is not None:
            return _error(400, error)
        self.changed("batteries")
        return web.json_response(group.body)

    async def _identify(self, _request: web.Request) -> web.Response:
        """``PUT /api/system/identify``: the status light blinks (counted)."""
        self.identified += 1
        return web.Response(status=204)

    async def _reboot(self, _request: web.Request) -> web.Response:
        """``PUT /api/system/reboot``: answer, then drop the sockets and be away a moment."""
        self.reboots += 1
        self._rebooting_until = time.monotonic() + self.reboot_seconds
        self.system["uptime_s"] = 0
        asyncio.get_running_loop().call_soon(self.drop_sockets)
        return web.Response(status=204)

    async def _create_user(self, request: web.Request) -> web.Response:
        try:
            name = (await request.json()).get("name")
        except ValueError:
            return _error(400, "request:invalid-json")
        if not isinstance(name, str) or not _USER_NAME.fullmatch(name):
            return _error(400, "user:name-invalid")
        if not self._button_window_open():
            return _error(403, "user:creation-not-enabled")
        if name not in self.users and len(self.users) >= self.max_users:
            return _error(403, "user:no-storage")
        # Reusing a name issues a new token and invalidates the old one.
        self.users[name] = secrets.token_hex(16).upper()
        return web.json_response({"name": name, "token": self.users[name]})
