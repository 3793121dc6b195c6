"""A fake HomeWizard device (local API v1) on 127.0.0.1, for tests, the demo and benchmarks.

Each profile is a pair of JSON files in ``payloads/homewizard/<profile>/``: ``device.json`` (the
``/api`` body) and ``data.json`` (the ``/api/v1/data`` body). The devices the vendor documents them
for also serve ``/api/v1/state`` (the socket), ``/api/v1/system`` and ``/api/v1/identify``, and
take their writes: a socket switched off measures no power. Run ``python -m simulator.homewizard
--profile HWE-P1 --profile HWE-KWH3`` to serve live devices whose readings move with the clock.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
import contextlib
import copy
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import json
import logging
import math
from pathlib import Path
import random
import time
from typing import Any, Final

from aiohttp import web

from .hostile import Responder

_LOGGER = logging.getLogger(__name__)

PAYLOADS: Final = Path(__file__).parent / "payloads" / "homewizard"
LISTEN_HOST: Final = "127.0.0.1"
API_DISABLED_BODY: Final = {"error": {"id": 202, "description": "API not enabled"}}
# A fixed default clock keeps tests and benchmarks reproducible; the live simulator uses now.
DEFAULT_START: Final = datetime(2025, 1, 15, 12, 2, 30, tzinfo=UTC)
# Smart meters update gas and other external meters every 5 minutes (DSMR 5).
EXTERNAL_INTERVAL: Final = timedelta(minutes=5)

# Power range (W) per product type; the low end only applies when the device counts export.
_POWER_RANGE: Final = {
    "HWE-SKT": (0.0, 3680.0),
    "HWE-KWH1": (-7360.0, 7360.0),
    "SDM230-wifi": (-7360.0, 7360.0),
}
_DEFAULT_POWER_RANGE: Final = (-17250.0, 17250.0)
_PHASE_POWER_KEYS: Final = ("active_power_l1_w", "active_power_l2_w", "active_power_l3_w")
_MAX_FLOW_LPM: Final = 20.0
# The simulator's switch (``start(control=True)``): GET shows, POST true/false sets ``api_enabled``.
CONTROL_PATH: Final = "/_sim/api_enabled"
# Products with /api/v1/system and /api/v1/identify (all but the Energy Display), and with
# /api/v1/state (the socket).
_SYSTEM_PRODUCTS: Final = frozenset(
    {"HWE-P1", "HWE-SKT", "HWE-WTR", "HWE-KWH1", "HWE-KWH3", "SDM230-wifi", "SDM630-wifi"}
)
_STATE_PRODUCTS: Final = frozenset({"HWE-SKT"})
_STATE_FIELDS: Final = {"power_on": bool, "switch_lock": bool, "brightness": int}
_SWITCH_WORDS: Final = dict.fromkeys(("true", "on", "1", "yes"), True) | dict.fromkeys(
    ("false", "off", "0", "no"), False
)


@dataclass(frozen=True, slots=True)
class Profile:
    """The bodies a device of one kind serves (shared: copy before changing them)."""

    name: str
    device: dict[str, Any]
    data: dict[str, Any]


def _load_profiles() -> dict[str, Profile]:
    def read(path: Path) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return body

    return {
        folder.name: Profile(folder.name, read(folder / "device.json"), read(folder / "data.json"))
        for folder in sorted(PAYLOADS.iterdir())
        if folder.is_dir()
    }


# Read once at import, outside any event loop.
PROFILES: Final = _load_profiles()


def meter_timestamp(at: datetime) -> int:
    """Format a time as the meter does: the number YYMMDDhhmmss."""
    return int(at.strftime("%y%m%d%H%M%S"))


class FakeHomeWizard:
    """One fake device: ``device`` and ``data`` are the bodies it serves, free to change.

    Fault injection: ``api_enabled = False`` (403 with error 202 everywhere), ``status`` (HTTP
    status of every answer), ``body`` (raw bytes instead of the JSON), ``respond`` (a hostile
    answer of ``simulator.hostile`` to every request), ``hang`` (accept the
    request and answer only when ``release()`` is called), ``keep_alive = False`` (close the
    connection after every answer, as some HTTP servers of devices do). ``request_count`` counts
    requests per path; ``in_flight`` and ``max_in_flight`` count requests being answered at the
    same time.
    """

    def __init__(
        self,
        profile: str = "HWE-P1",
        *,
        seed: int = 0,
        start: datetime = DEFAULT_START,
        auto_advance: bool = False,
    ) -> None:
        """Serve a copy of ``profile``; ``start`` is the meter's clock, ``seed`` its randomness."""
        source = PROFILES[profile]
        self.profile = profile
        self.device: dict[str, Any] = copy.deepcopy(source.device)
        self.data: dict[str, Any] = copy.deepcopy(source.data)
        self.api_enabled = True
        self.status: int | None = None
        self.body: bytes | None = None
        self.respond: Responder | None = None
        self.hang = False
        self.keep_alive = True
        self.auto_advance = auto_advance
        self.request_count: Counter[str] = Counter()
        product = self.device["product_type"]
        # The socket's /api/v1/state and the /api/v1/system body (None: no such endpoint).
        self.state: dict[str, Any] | None = (
            {"power_on": True, "switch_lock": False, "brightness": 255}
            if product in _STATE_PRODUCTS
            else None
        )
        self.system: dict[str, Any] | None = (
            {"cloud_enabled": True} if product in _SYSTEM_PRODUCTS else None
        )
        self.identify_count = 0
        # The socket's power readings from before it was switched off.
        self._load_while_off: dict[str, float] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.now = start
        self._next_external = start.replace(
            minute=start.minute - start.minute % 5, second=0, microsecond=0
        )
        self._next_external += EXTERNAL_INTERVAL
        self._rng = random.Random(seed)
        self._carry: dict[str, float] = {}
        self._runner: web.AppRunner | None = None
        self._release = asyncio.Event()
        self._last_request = time.monotonic()
        self._port = 0

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>`` once started."""
        return f"{LISTEN_HOST}:{self._port}"

    async def start(self, port: int = 0, *, control: bool = False) -> int:
        """Listen on 127.0.0.1 (``port`` 0 picks a free one) and return the port.

        ``control`` adds the simulator's switch ``/_sim/api_enabled`` (see ``CONTROL_PATH``).
        """
        app = web.Application()
        app.router.add_get("/api", self._handle)
        app.router.add_get("/api/v1/data", self._handle)
        for path in ("/api/v1/state", "/api/v1/system"):
            app.router.add_get(path, self._handle)
            app.router.add_put(path, self._handle)
        app.router.add_put("/api/v1/identify", self._handle)
        if control:
            app.router.add_get(CONTROL_PATH, self._control)
            app.router.add_post(CONTROL_PATH, self._control)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, LISTEN_HOST, port).start()
        self._port = self._runner.addresses[0][1]
        self._release = asyncio.Event()
        self._last_request = time.monotonic()
        return self._port

    async def stop(self) -> None:
        """Release hanging requests and stop listening."""
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def release(self) -> None:
        """Stop hanging: requests that hang get a 503, later ones are answered normally."""
        self.hang = False
        self._release.set()
        self._release = asyncio.Event()

    async def _control(self, request: web.Request) -> web.Response:
        """GET: ``{"api_enabled": bool}``; POST ``true``/``false`` (or ``{"enabled": ...}``) sets it."""
        if request.method == "POST":
            text = (await request.text()).strip()
            with contextlib.suppress(ValueError):
                body = json.loads(text) if text else None
                text = str(body.get("enabled") if isinstance(body, dict) else body)
            value = request.query.get("enabled", text).strip().lower()
            if value not in _SWITCH_WORDS:
                return web.json_response(
                    {"error": "send true or false (or on/off, 1/0)"}, status=400
                )
            self.api_enabled = _SWITCH_WORDS[value]
            _LOGGER.info(
                "%s at %s: local API %s",
                self.profile,
                self.host,
                "enabled" if self.api_enabled else "disabled (403)",
            )
        return web.json_response({"api_enabled": self.api_enabled})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.request_count[request.path] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            response = await self._answer(request)
        finally:
            self.in_flight -= 1
        if not self.keep_alive:
            response.force_close()
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if self.hang:
            await self._release.wait()
            raise web.HTTPServiceUnavailable
        if not self.api_enabled:
            return web.json_response(API_DISABLED_BODY, status=403)
        if self.respond is not None:
            return await self.respond(request, self._release)
        status = self.status or 200
        if self.body is not None:
            return web.Response(body=self.body, status=status, content_type="application/json")
        if request.path == "/api":
            return web.json_response(self.device, status=status)
        if request.path != "/api/v1/data" and status == 200:
            return await self._control_endpoint(request)
        if self.auto_advance:
            now = time.monotonic()
            self.advance(now - self._last_request)
            self._last_request = now
        return web.json_response(self.data, status=status)

    async def _control_endpoint(self, request: web.Request) -> web.Response:
        """``/api/v1/state``, ``/api/v1/system``, ``/api/v1/identify``: as the vendor documents them."""
        if request.path == "/api/v1/identify":
            if self.system is None:
                raise web.HTTPNotFound
            self.identify_count += 1
            return web.json_response({"identify": "ok"})
        body = self.state if request.path == "/api/v1/state" else self.system
        if body is None:
            raise web.HTTPNotFound
        if request.method == "GET":
            return web.json_response(body)
        try:
            change = await request.json()
        except ValueError:
            return _error(2, "Body contains invalid json")
        fields = _STATE_FIELDS if body is self.state else {"cloud_enabled": bool}
        if not isinstance(change, dict) or not change:
            return _error(7, "Invalid value for parameter")
        for key, value in change.items():
            if key not in fields or type(value) is not fields[key]:
                return _error(8 if key not in fields else 7, f"Invalid value for {key}")
        new = body | change
        if body is self.state:
            if not 0 <= new["brightness"] <= 255:
                return _error(7, "Invalid value for brightness")
            if new["switch_lock"] and not new["power_on"]:
                # A locked socket stays on: switching it off needs the lock off (state.mdx).
                return _error(8, "Switch lock is on")
            if new["power_on"] != body["power_on"]:
                self._switch_load(on=new["power_on"])
        body.update(change)
        return web.json_response(change)

    def _switch_load(self, *, on: bool) -> None:
        """Off: the socket measures nothing; on: the load draws what it drew before."""
        keys = [key for key in ("active_power_w", *_PHASE_POWER_KEYS) if key in self.data]
        if on:
            self.data.update(self._load_while_off)
            return
        self._load_while_off = {key: self.data[key] for key in keys}
        self.data.update(dict.fromkeys(keys, 0.0))

    # --- moving values ----------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass: power walks, counters grow by power * time, meters tick."""
        if seconds <= 0:
            return
        self.now += timedelta(seconds=seconds)
        self._walk_power(seconds)
        self._walk_water(seconds)
        while self._next_external <= self.now:
            self._tick_externals(meter_timestamp(self._next_external))
            self._next_external += EXTERNAL_INTERVAL

    def _walk_power(self, seconds: float) -> None:
        phases = [key for key in _PHASE_POWER_KEYS if key in self.data]
        if not phases or (self.state is not None and not self.state["power_on"]):
            return
        low, high = _POWER_RANGE.get(self.device["product_type"], _DEFAULT_POWER_RANGE)
        if not any("export" in key for key in self.data):
            low = max(low, 0.0)
        step = 50.0 * math.sqrt(min(seconds, 60.0))
        for key in phases:
            power = self.data[key] + self._rng.gauss(0.0, step)
            self.data[key] = round(min(max(power, low / len(phases)), high / len(phases)), 1)
        power = round(sum(self.data[key] for key in phases), 1)
        self.data["active_power_w"] = power

        direction = "import" if power > 0 else "export"
        energy = abs(power) * seconds / 3_600_000
        self._add(f"total_power_{direction}_kwh", energy)
        self._add(f"total_power_{direction}_t{self.data.get('active_tariff', 1)}_kwh", energy)

    def _walk_water(self, seconds: float) -> None:
        if "active_liter_lpm" not in self.data:
            return
        flow = self.data["active_liter_lpm"] + self._rng.gauss(0.0, 1.0)
        self.data["active_liter_lpm"] = round(min(max(flow, 0.0), _MAX_FLOW_LPM), 1)
        self._add("total_liter_m3", self.data["active_liter_lpm"] * seconds / 60_000)

    def _tick_externals(self, stamp: int) -> None:
        gas: float | None = None
        for meter in self.data.get("external", ()):
            meter["value"] = round(meter["value"] + self._rng.uniform(0.0, 0.05), 3)
            meter["timestamp"] = stamp
            if gas is None and meter["type"] == "gas_meter":
                gas = meter["value"]
        if "total_gas_m3" in self.data:  # the legacy fields repeat the first gas meter
            if gas is None:
                gas = round(self.data["total_gas_m3"] + self._rng.uniform(0.0, 0.05), 3)
            self.data["total_gas_m3"] = gas
            self.data["gas_timestamp"] = stamp

    def _add(self, key: str, amount: float) -> None:
        """Add to a counter at the meter's resolution (3 decimals), carrying the remainder."""
        if key not in self.data:
            return
        total = self._carry.get(key, 0.0) + amount
        step = round(total, 3)
        self._carry[key] = total - step
        self.data[key] = round(self.data[key] + step, 3)


def _error(code: int, description: str) -> web.Response:
    """An error answer as the vendor documents it (error-handling.mdx)."""
    return web.json_response({"error": {"id": code, "description": description}}, status=400)


async def _serve(profiles: list[str], port: int, seed: int) -> None:
    start = datetime.now(UTC).astimezone()
    fakes = [
        FakeHomeWizard(name, seed=seed + index, start=start, auto_advance=True)
        for index, name in enumerate(profiles)
    ]
    try:
        for index, fake in enumerate(fakes):
            await fake.start(port + index if port else 0, control=True)
            _LOGGER.info("%s at http://%s", fake.profile, fake.host)
        await asyncio.Event().wait()
    finally:
        for fake in fakes:
            await fake.stop()


def main() -> None:
    """Serve fake devices until interrupted."""
    parser = argparse.ArgumentParser(description="Fake HomeWizard devices on 127.0.0.1")
    parser.add_argument(
        "--profile", action="append", choices=sorted(PROFILES), help="repeat for more devices"
    )
    parser.add_argument("--port", type=int, default=0, help="first port (default: free ports)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.profile or ["HWE-P1"], args.port, args.seed))


if __name__ == "__main__":
    main()
