"""A real Home Assistant in this process, on an event loop whose clock the benchmark can move.

``VirtualClock`` (``bench/clock.py``) shifts both clocks Home Assistant reads: the event loop's
monotonic time (every timer, the coordinators' schedules) and the wall clock (``time.time``,
``dt_util.utcnow``), by the same offset. ``jump(seconds)`` moves both forward at once, so a
simulated week takes minutes while every timer, rolling window and stored timestamp sees a
consistent week.

``async_start_hass`` builds the same ``HomeAssistant`` object the real bootstrap builds (registries,
restore state and config entries loaded from ``config_dir/.storage``), without the default
integrations, the HTTP server or the recorder.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
import concurrent.futures
import contextlib
from dataclasses import dataclass
from datetime import datetime
import json
import logging
from pathlib import Path
import subprocess
import sys
import threading
from typing import Any

from aiohttp import ThreadedResolver, web
from homeassistant import bootstrap, config_entries, loader
from homeassistant.components.network.network import async_get_network
from homeassistant.core import CoreState, HomeAssistant
from homeassistant.helpers import aiohttp_client
from homeassistant.setup import async_setup_component
from homeassistant.util.async_ import _SHUTDOWN_RUN_CALLBACK_THREADSAFE
from homeassistant.util.unit_system import METRIC_SYSTEM

from simulator.homewizard import LISTEN_HOST, FakeHomeWizard

from .clock import VirtualClock, activate

_LOGGER = logging.getLogger(__name__)


class _PlainResolver(ThreadedResolver):
    """DNS through the system resolver: Home Assistant's default one also starts zeroconf.

    Home Assistant's shared session resolves ``.local`` names over mDNS, which opens multicast
    sockets on every interface. The benchmarks only talk to 127.0.0.1 (an address, never resolved),
    so they use aiohttp's plain resolver, as Home Assistant's own test harness does.
    """

    async def real_close(self) -> None:
        """Called by Home Assistant when it closes."""
        await self.close()


def _use_plain_resolver() -> None:
    aiohttp_client._async_make_resolver = lambda hass: _PlainResolver()  # type: ignore[assignment,return-value]  # noqa: SLF001


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` is the virtual clock's monotonic time."""

    def __init__(self, clock: VirtualClock) -> None:
        """Run timers on ``clock``."""
        super().__init__()
        self.clock = clock

    def time(self) -> float:
        """The virtual monotonic clock."""
        return self.clock.monotonic()


def run[T](main: Callable[[VirtualClock], Coroutine[Any, Any, T]], start: datetime | None) -> T:
    """Run ``main(clock)`` on a fresh virtual-clock loop with a thread pool like Home Assistant's."""
    clock = VirtualClock(start)
    activate(clock)
    _use_plain_resolver()
    loop = VirtualClockLoop(clock)
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=8))
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main(clock))
    finally:
        activate(None)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        asyncio.set_event_loop(None)
        loop.close()


def next_timer(loop: asyncio.AbstractEventLoop) -> float | None:
    """When the earliest pending timer of ``loop`` is due (loop time), or None."""
    scheduled: list[asyncio.TimerHandle] = loop._scheduled  # type: ignore[attr-defined]  # noqa: SLF001
    whens = [handle.when() for handle in scheduled if not handle.cancelled()]
    return min(whens) if whens else None


async def async_start_hass(
    config_dir: Path,
    *,
    before_start: Callable[[HomeAssistant], Coroutine[Any, Any, None]] | None = None,
    time_zone: str = "Europe/Amsterdam",
) -> HomeAssistant:
    """A started Home Assistant on ``config_dir``, loaded from its storage like a real start.

    ``before_start`` sets up integrations at the point where the bootstrap does (before the
    start events that, for example, make the recorder compile statistics).
    """
    loop = asyncio.get_running_loop()
    if hasattr(loop, _SHUTDOWN_RUN_CALLBACK_THREADSAFE):  # left by the previous instance's stop
        delattr(loop, _SHUTDOWN_RUN_CALLBACK_THREADSAFE)
    await asyncio.to_thread(config_dir.mkdir, parents=True, exist_ok=True)
    hass = HomeAssistant(str(config_dir))
    loader.async_setup(hass)
    hass.config.skip_pip = True
    hass.config.skip_pip_packages = []
    hass.config.units = METRIC_SYSTEM
    hass.config.latitude, hass.config.longitude, hass.config.elevation = 52.37, 4.89, 0
    hass.config.location_name = "Meter Hub bench"
    await hass.config.async_set_time_zone(time_zone)
    hass.config_entries = config_entries.ConfigEntries(hass, {})
    await loader.async_get_custom_components(hass)
    await bootstrap.async_load_base_functionality(hass)
    if not await async_setup_component(hass, "homeassistant", {}):
        raise RuntimeError("cannot set up homeassistant")
    # Home Assistant's shared aiohttp session reads the network adapters that a real start loads
    # with the network integration; load them without the integration's HTTP and websocket API.
    await async_get_network(hass)
    if before_start is not None:
        await before_start(hass)
    await hass.async_start()
    if hass.state is not CoreState.running:
        raise RuntimeError(f"Home Assistant did not start: {hass.state}")
    return hass


async def async_stop_hass(hass: HomeAssistant) -> None:
    """Stop Home Assistant as a restart would (final writes of every store included).

    A real stop ends the process; here the loop goes on, so the timers the stopped instance left
    (a coordinator's next poll, its stores' delayed writes) are cancelled as the process exit
    would. Everything else the benchmarks run is in other threads.
    """
    await hass.async_stop()
    loop = asyncio.get_running_loop()
    for handle in list(loop._scheduled):  # type: ignore[attr-defined]  # noqa: SLF001
        handle.cancel()


class LoopThread:
    """An event loop in a thread of its own, for the fakes the benchmark talks to."""

    def __init__(self, name: str) -> None:
        """Start the thread and its loop."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call[T](self, func: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``func()`` in the thread's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(func(), self._loop).result(timeout=60)

    async def async_call[T](self, func: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """``call`` without blocking the caller's loop."""
        future = asyncio.run_coroutine_threadsafe(func(), self._loop)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Stop the loop and the thread."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


# --- a fake HomeWizard device in its own thread --------------------------------------------------

# A real P1 meter also answers /api/v1/system, which Home Assistant's integration reads every poll.
SYSTEM_BODY = {"cloud_enabled": True}


class BenchHomeWizard(FakeHomeWizard):
    """The fake HWE-P1 of the simulator, plus ``/api/v1/system`` as a real P1 serves it."""

    async def start(self, port: int = 0) -> int:
        """Listen on 127.0.0.1 with the simulator's routes and ``/api/v1/system``."""
        app = web.Application()
        app.router.add_get("/api", self._handle)
        app.router.add_get("/api/v1/data", self._handle)
        app.router.add_get("/api/v1/system", self._system)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, LISTEN_HOST, port).start()
        self._port = self._runner.addresses[0][1]
        self._release = asyncio.Event()
        return self._port

    async def _system(self, request: web.Request) -> web.StreamResponse:
        self.request_count[request.path] += 1
        return web.json_response(SYSTEM_BODY)


class DeviceThread:
    """Fake devices served by their own event loop in their own thread (see ``DeviceProcess``)."""

    def __init__(self) -> None:
        """Start the thread and its loop."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fake-devices", daemon=True
        )
        self._thread.start()
        self.devices: list[BenchHomeWizard] = []

    def call[T](self, func: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``func()`` in the devices' thread and return its result."""
        return asyncio.run_coroutine_threadsafe(func(), self._loop).result(timeout=30)

    def add(
        self, profile: str = "HWE-P1", *, seed: int = 0, serial: str | None = None
    ) -> BenchHomeWizard:
        """Start one more fake device (``serial`` overrides the profile's)."""

        async def start() -> BenchHomeWizard:
            device = BenchHomeWizard(profile, seed=seed)
            if serial is not None:
                # Another device: its own serial and its own gas and water meters.
                device.device["serial"] = serial
                tag = serial.encode().hex()
                for meter in device.data.get("external", ()):
                    meter["unique_id"] = f"{meter['unique_id']}{tag}"
                if "gas_unique_id" in device.data:
                    device.data["gas_unique_id"] = f"{device.data['gas_unique_id']}{tag}"
            await device.start()
            return device

        device = self.call(start)
        self.devices.append(device)
        return device

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass on every device: values move like a real meter's."""

        async def advance_all() -> None:
            for device in self.devices:
                device.advance(seconds)

        self.call(advance_all)

    def close(self) -> None:
        """Stop every device and the thread."""

        async def stop_all() -> None:
            for device in self.devices:
                await device.stop()

        self.call(stop_all)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


class DeviceProcess:
    """Fake devices in a child process (``python -m bench.devices``), driven line by line.

    Neither their CPU time (building and sending the answers) nor their memory is then in what
    the benchmark measures of the Home Assistant process, and they never hold its GIL.
    """

    # The child's module: it reads the commands on standard input.
    module = "bench.devices"

    def __init__(self) -> None:
        """Start the child process."""
        self._proc = subprocess.Popen(  # noqa: S603 - our own module, same interpreter
            [sys.executable, "-m", self.module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            cwd=Path(__file__).resolve().parent.parent,
        )

    def _ask(self, line: str) -> str:
        if self._proc.stdin is None or self._proc.stdout is None:
            raise RuntimeError("fake devices: no pipes")
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()
        answer = self._proc.stdout.readline().strip()
        if not answer.startswith("ok"):
            raise RuntimeError(f"fake devices: {line!r} -> {answer!r}")
        return answer[3:]

    def add(
        self, profile: str = "HWE-P1", *, seed: int = 0, serial: str | None = None
    ) -> DeviceInfo:
        """Start one more fake device; returns its host and the bodies it serves."""
        answer = json.loads(self._ask(f"add {profile} {seed} {serial or '-'}"))
        return DeviceInfo(host=answer["host"], device=answer["device"], index=answer["index"])

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass on every device: values move like a real meter's."""
        self._ask(f"advance {seconds}")

    def request_counts(self, device: DeviceInfo) -> dict[str, int]:
        """Requests ``device`` answered so far, per path."""
        counts: dict[str, int] = json.loads(self._ask(f"counts {device.index}"))
        return counts

    def close(self) -> None:
        """Stop the devices and the child process."""
        with contextlib.suppress(RuntimeError, OSError, ValueError):
            self._ask("quit")
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A fake device in the child process: where it listens and its ``/api`` body."""

    host: str
    device: dict[str, Any]
    index: int
