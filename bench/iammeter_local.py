"""IAMMETER on the local network: Meter Hub against Home Assistant core's ``iammeter``.

Both read the same simulated WEM3080T with net metering (``simulator/iammeter_local.py``, the
shape core reads without complaint), served by another process so that the meter's own work is
not measured; its values move with the real clock. Core's ``iammeter`` is a YAML sensor platform
whose synchronous client (the ``iammeter`` library, ``requests``) runs in Home Assistant's
executor threads, so CPU time is the whole process's (``time.process_time()``), not only the
event loop thread's. Automatic polling of Meter Hub is off (``pref_disable_polling``); each poll
is a direct ``coordinator.async_refresh()`` and ``hass.async_block_till_done()``, the two
integrations interleaved poll by poll.

The latency part runs Meter Hub as a user has it (polling on, the default interval, the real
clock) against a meter in this process: a value changes on the meter at a random moment, and the
time until the entity's new state is written is measured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from dataclasses import dataclass
from pathlib import Path
import random
import re
import subprocess
import sys
import tempfile
import time
import tracemalloc
from types import MappingProxyType
from typing import Any

from homeassistant import config_entries
from homeassistant.components.sensor import DOMAIN as SENSOR_DOMAIN
from homeassistant.const import CONF_HOST, CONF_NAME, CONF_PLATFORM, CONF_PORT
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import entity_platform, entity_registry as er
from homeassistant.helpers.entity_component import DATA_INSTANCES
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.setup import async_setup_component

from custom_components.meter_hub.const import IAMMETER_LOCAL_SCAN_INTERVAL
from simulator.iammeter_local import FakeIamMeter

from .clock import VirtualClock
from .harness import async_start_hass
from .local import _add_and_setup, _coordinator, _entities, _settle, _summary, _timed_poll, _traced

MH = "meter_hub"
CORE = "iammeter"
SHAPE = "WEM3080T-NEM"
POLL_SECONDS = IAMMETER_LOCAL_SCAN_INTERVAL.total_seconds()
_LISTENING = re.compile(r"\((\w+)\) at http://(\S+)/api/monitor")


@dataclass(frozen=True, slots=True)
class Meter:
    """A simulated meter of the meter process."""

    serial: str
    host: str

    @property
    def port(self) -> int:
        """Its TCP port."""
        return int(self.host.rpartition(":")[2])


class MeterProcess:
    """``count`` simulated meters in ``python -m simulator.iammeter_local``."""

    def __init__(self, count: int) -> None:
        """Start them and wait until each listens."""
        args = [sys.executable, "-m", "simulator.iammeter_local"]
        args += ["--shape", SHAPE] * count
        self._process = subprocess.Popen(  # noqa: S603 - our own module, same interpreter
            args, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent
        )
        self.meters: list[Meter] = []
        output = self._process.stderr
        while output is not None and len(self.meters) < count:
            line = output.readline()
            if not line:
                raise RuntimeError("the meter process ended before its meters listened")
            if found := _LISTENING.search(line):
                self.meters.append(Meter(found[1], found[2]))

    def close(self) -> None:
        """Stop the process."""
        self._process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(10)


def _entry(meter: Meter, *, polling: bool = False) -> config_entries.ConfigEntry[Any]:
    """Meter Hub's entry of ``meter``, as its config flow makes it (polled by the benchmark)."""
    return config_entries.ConfigEntry(
        data={
            "source": "local",
            "vendor": "iammeter",
            CONF_HOST: meter.host,
            "serial": meter.serial,
            "net_metering": True,
        },
        discovery_keys=MappingProxyType({}),
        domain=MH,
        minor_version=1,
        options={},
        pref_disable_polling=not polling,
        source=config_entries.SOURCE_USER,
        subentries_data=None,
        title="IAMMETER WEM3080T",
        unique_id=meter.serial,
        version=1,
    )


async def _async_setup_core(hass: HomeAssistant, meter: Meter) -> DataUpdateCoordinator[Any]:
    """Core's YAML platform for ``meter`` (``sensor: - platform: iammeter``); its coordinator."""
    if SENSOR_DOMAIN not in hass.data.get(DATA_INSTANCES, {}):
        await async_setup_component(hass, SENSOR_DOMAIN, {})
    name = f"core {meter.serial}"
    config = {CONF_PLATFORM: CORE, CONF_HOST: "127.0.0.1", CONF_PORT: meter.port, CONF_NAME: name}
    await hass.data[DATA_INSTANCES][SENSOR_DOMAIN].async_setup_platform(CORE, config)
    await hass.async_block_till_done()
    for platform in entity_platform.async_get_platforms(hass, CORE):
        for entity in platform.entities.values():
            coordinator = getattr(entity, "coordinator", None)
            if isinstance(coordinator, DataUpdateCoordinator) and coordinator.name == name:
                return coordinator
    raise RuntimeError(f"core iammeter set up no entity for {meter.host}")


def _core_entities(hass: HomeAssistant) -> dict[str, int]:
    entries = [e for e in er.async_get(hass).entities.values() if e.platform == CORE]
    return {
        "registered": len(entries),
        "enabled": sum(1 for e in entries if e.disabled_by is None),
    }


async def async_cpu(clock: VirtualClock, polls: int, warmup: int) -> dict[str, Any]:
    """CPU time per poll of each integration, interleaved, on the same meter."""
    meters = MeterProcess(1)
    try:
        meter = meters.meters[0]
        with tempfile.TemporaryDirectory(prefix="meter-hub-bench-") as tmp:
            hass = await async_start_hass(Path(tmp))
            entry = _entry(meter)
            await _add_and_setup(hass, entry)
            coordinators = {MH: _coordinator(entry), CORE: await _async_setup_core(hass, meter)}
            samples: dict[str, list[float]] = {MH: [], CORE: []}
            for index in range(warmup + polls):
                clock.jump(POLL_SECONDS)
                await _settle(hass)
                order = (MH, CORE) if index % 2 == 0 else (CORE, MH)
                for name in order:
                    elapsed = await _timed_poll(hass, coordinators[name], time.process_time)
                    if index >= warmup:
                        samples[name].append(elapsed)
            result: dict[str, Any] = {
                "polls": polls,
                "warmup_polls": warmup,
                "method": "time.process_time() (every thread: core's client runs in executors)",
                "meter": "simulated WEM3080T with net metering, in another process",
                "entities": {MH: _entities(hass, entry), CORE: _core_entities(hass)},
                MH: _summary(samples[MH]),
                CORE: _summary(samples[CORE]),
            }
            result["ratio_median"] = round(result[MH]["median_ms"] / result[CORE]["median_ms"], 3)
            result["ratio_p95"] = round(result[MH]["p95_ms"] / result[CORE]["p95_ms"], 3)
            await hass.async_stop()
    finally:
        meters.close()
    return result


async def async_memory(clock: VirtualClock, extra: int) -> dict[str, Any]:
    """Retained memory per entry (tracemalloc, after a full collection), 10 polls each.

    One entry (or core platform) first, so that imports and platforms are loaded; then ``extra``
    more, each on its own meter: their growth divided by their number.
    """
    meters = MeterProcess(1 + extra)
    result: dict[str, Any] = {"method": "tracemalloc, after gc.collect()", "entries": extra}
    try:
        with tempfile.TemporaryDirectory(prefix="meter-hub-bench-") as tmp:
            hass = await async_start_hass(Path(tmp))
            tracemalloc.start()
            for name in (MH, CORE):
                before = 0
                for index, meter in enumerate(meters.meters):
                    if index == 1:
                        before = await _traced(hass)
                    if name == MH:
                        entry = _entry(meter)
                        await _add_and_setup(hass, entry)
                        coordinator = _coordinator(entry)
                    else:
                        coordinator = await _async_setup_core(hass, meter)
                    for _ in range(10):
                        clock.jump(POLL_SECONDS)
                        await _settle(hass)
                        await coordinator.async_refresh()
                        await hass.async_block_till_done()
                per_entry = (await _traced(hass) - before) / extra
                result[name] = {"per_entry_kib": round(per_entry / 1024, 1)}
            tracemalloc.stop()
            await hass.async_stop()
    finally:
        meters.close()
    return result


async def async_latency(clock: VirtualClock, changes: int) -> dict[str, Any]:
    """Seconds from a change on the meter to the entity's new state, polling as a user has it."""
    del clock  # the real clock: no jumps
    rng = random.Random(21)  # noqa: S311 - when to change, not a secret
    meter = FakeIamMeter(SHAPE)
    await meter.start()
    entity_id = "sensor.iammeter_5db50bf4_power_phase_1"
    seen: asyncio.Queue[float] = asyncio.Queue()

    @callback
    def changed(event: Event[EventStateChangedData]) -> None:
        if event.data["entity_id"] == entity_id:
            seen.put_nowait(time.perf_counter())

    delays: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="meter-hub-bench-") as tmp:
            hass = await async_start_hass(Path(tmp))
            entry = _entry(Meter(meter.serial, meter.host), polling=True)
            await _add_and_setup(hass, entry)
            hass.bus.async_listen("state_changed", changed)
            for step in range(changes):
                await asyncio.sleep(rng.uniform(0.2, 1.2))
                while not seen.empty():
                    seen.get_nowait()
                meter.power[0] = 1000.0 + 10 * (step + 1)
                changed_at = time.perf_counter()
                delays.append(await asyncio.wait_for(seen.get(), 10) - changed_at)
            await hass.async_stop()
    finally:
        await meter.stop()
    ordered = sorted(delays)
    return {
        "changes": changes,
        "interval_s": POLL_SECONDS,
        "median_s": round(ordered[len(ordered) // 2], 3),
        "mean_s": round(sum(ordered) / len(ordered), 3),
        "max_s": round(ordered[-1], 3),
        "core_default_interval_s": 30,
    }


def describe(result: dict[str, Any], out: Callable[[str], None]) -> None:
    """Print the IAMMETER results in a few lines."""
    cpu = result.get("cpu", {})
    if "ratio_median" in cpu:
        for name in (MH, CORE):
            s = cpu[name]
            out(
                f"  CPU per poll: {name:10s} median {s['median_ms']:.3f} ms"
                f"  p95 {s['p95_ms']:.3f} ms ({cpu['entities'][name]['enabled']} entities)"
            )
        out(f"  ratio Meter Hub / core: median {cpu['ratio_median']}  p95 {cpu['ratio_p95']}")
    mem = result.get("memory", {})
    if MH in mem:
        out(
            f"  memory per entry: Meter Hub {mem[MH]['per_entry_kib']} KiB,"
            f" core {mem[CORE]['per_entry_kib']} KiB"
        )
    latency = result.get("latency", {})
    if "median_s" in latency:
        out(
            f"  change on the meter -> new state, at {latency['interval_s']:g} s:"
            f" median {latency['median_s']} s, max {latency['max_s']} s"
            f" ({latency['changes']} changes)"
        )
