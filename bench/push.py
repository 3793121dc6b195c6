"""HomeWizard v2 push: Meter Hub's WebSocket against core's ``homewizard`` polling, one device.

One fake HWE-P1 speaking the local API v2 (``simulator/homewizard_v2.py``, 3 phases, gas and water
meters), in a process of its own (``bench/push_device.py``), serves both integrations in one
Home Assistant: Meter Hub subscribes on its WebSocket with the rate "as fast as the device sends"
(option ``push_interval_ms`` 0, the default); core's ``homewizard`` polls its REST endpoints every
5 s with a token from the device's user store, in the config entry as core's config flow stores
it (``ip_address`` and ``token``). Both trust the simulator's CA instead of HomeWizard's: for
core that is the one thing changed, ``homewizard_energy.v2.CACERT``.

* ``async_latency`` (real time): about once a second the device's power changes and is pushed at
  once; for each change, the time from the push to each integration's power entity showing it.
  Core sees only the values that stand at its polls.
* ``async_reconnect`` (real time): the device goes away (sockets cut, port closed) for a few
  seconds, comes back with a new power value: the time until Meter Hub's first pushed update
  with it, and until core's power entity shows it.
* ``async_cpu`` (moved clock): an hour of simulated time, the device pushing every second and
  core polling every 5 s (its own polling switched off, each poll a direct refresh): CPU time
  of the Home Assistant thread (``time.thread_time()``) per delivered update and per poll.
* ``async_memory`` (moved clock): the same hour, one integration per Home Assistant: retained
  memory (tracemalloc after a full collection) after 10 s, 1/3, 2/3 and all of the hour.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
import contextlib
from dataclasses import dataclass, field
import math
from pathlib import Path
import random
import statistics
import tempfile
import time
import tracemalloc
from typing import Any
from unittest.mock import patch

from homeassistant import config_entries
from homeassistant.const import CONF_HOST, CONF_IP_ADDRESS, CONF_TOKEN, EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from custom_components.meter_hub.api.homewizard.tls import create_ssl_context

from .clock import VirtualClock
from .harness import async_start_hass
from .local import (
    CORE,
    MH,
    _add_and_setup,
    _coordinator,
    _settle,
    _summary,
    _timed_poll,
    _traced,
    config_entry,
)
from .push_device import PushDeviceInfo, PushDeviceProcess

TOKEN = "B3C4D5E6F708192A3B4C5D6E7F809102"  # noqa: S105 - the fake device's user
CORE_POLL_SECONDS = 5
# How long to wait for something that takes a fraction of a second.
PATIENCE = 30.0


def _entry(name: str, info: PushDeviceInfo, *, polling: bool) -> config_entries.ConfigEntry[Any]:
    """A config entry of ``name`` for the v2 device, as each integration's config flow makes it."""
    device = info.device
    if name == MH:
        data: dict[str, Any] = {
            "source": "local",
            CONF_HOST: info.host,
            "serial": device["serial"],
            "product_type": device["product_type"],
            "api_version": 2,
            CONF_TOKEN: TOKEN,
        }
        unique_id = device["serial"]
    else:
        data = {CONF_IP_ADDRESS: info.host, CONF_TOKEN: TOKEN}
        unique_id = f"{device['product_type']}_{device['serial']}"
    return config_entry(name, data, unique_id, device["product_name"], polling=polling)


@contextlib.contextmanager
def _trusting(info: PushDeviceInfo) -> Iterator[None]:
    """Both integrations trust the simulator's CA (the device's certificate) for this run."""
    ca_file = Path(info.ca_file)

    async def simulator_context() -> Any:
        return await asyncio.to_thread(create_ssl_context, ca_file)

    with (
        patch(
            "custom_components.meter_hub.local_coordinator.shared_ssl_context", simulator_context
        ),
        patch("homewizard_energy.v2.CACERT", ca_file.read_text(encoding="ascii")),
    ):
        yield


@dataclass
class _Bench:
    """Home Assistant with the entries of ``names`` on the fake v2 device."""

    hass: HomeAssistant
    devices: PushDeviceProcess
    coordinators: dict[str, DataUpdateCoordinator[Any]]
    power: dict[str, str]  # entity id of each integration's power sensor
    delivered: asyncio.Event = field(default_factory=asyncio.Event)


@contextlib.asynccontextmanager
async def _bench(names: tuple[str, ...], *, polling: bool) -> AsyncIterator[_Bench]:
    """Home Assistant with the entries of ``names`` on a fresh fake device.

    ``polling``: real time, core polls by itself and the device sends every second (as a DSMR 5
    meter does) besides the benchmark's changes; else the benchmark drives everything.
    """
    devices = PushDeviceProcess()
    try:
        info = devices.add_v2("HWE-P1", TOKEN, tick=1.0 if polling else None)
        with tempfile.TemporaryDirectory(prefix="meter-hub-bench-") as tmp, _trusting(info):
            hass = await async_start_hass(Path(tmp))
            entries = {name: _entry(name, info, polling=polling) for name in names}
            for entry in entries.values():
                await _add_and_setup(hass, entry)
            registry = er.async_get(hass)
            serial, product = info.device["serial"], info.device["product_type"]
            unique_ids = {MH: f"{serial}_power_w", CORE: f"{product}_{serial}_active_power_w"}
            bench = _Bench(
                hass,
                devices,
                {name: _coordinator(entry) for name, entry in entries.items()},
                {
                    name: registry.async_get_entity_id("sensor", name, unique_ids[name]) or ""
                    for name in names
                },
            )
            if MH in names:
                push = bench.coordinators[MH].push  # type: ignore[attr-defined]
                await _until(lambda: push is not None and push.pushing)
                bench.coordinators[MH].async_add_listener(bench.delivered.set)
            yield bench
            # unloaded first: a poll due while Home Assistant stops would meet a closed session
            for entry in entries.values():
                await hass.config_entries.async_unload(entry.entry_id)
            await hass.async_stop()
    finally:
        devices.close()


async def _until(condition: Callable[[], bool], within: float = PATIENCE) -> float:
    """Wait (real time) until ``condition`` holds; the ``time.monotonic()`` when it did."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - conditions of Home Assistant's state
            await asyncio.sleep(0.002)
    return time.monotonic()


def _number(state: str) -> float | None:
    """A power state as a number (core shows ``1234.0`` where Meter Hub shows ``1234``)."""
    try:
        return float(state)
    except ValueError:
        return None


def _delays(sent: dict[float, float], shown: dict[float, float]) -> dict[str, Any]:
    """Median, p99 and max of the delays of the values that were shown, and how many were not."""
    delays = sorted(shown[value] - at for value, at in sent.items() if value in shown)
    result: dict[str, Any] = {"shown": len(delays), "never_shown": len(sent) - len(delays)}
    if delays:
        p99 = delays[min(len(delays) - 1, math.ceil(0.99 * len(delays)) - 1)]
        result |= {
            "median_ms": round(statistics.median(delays) * 1000, 1),
            "p99_ms": round(p99 * 1000, 1),
            "max_ms": round(delays[-1] * 1000, 1),
        }
    return result


def _watch_states(bench: _Bench, shown: dict[str, dict[float, float]]) -> Callable[[], None]:
    """Note when each integration's power entity first shows each value."""
    names = {entity_id: name for name, entity_id in bench.power.items()}

    @callback
    def changed(event: Event[EventStateChangedData]) -> None:
        name, new = names.get(event.data["entity_id"]), event.data["new_state"]
        if name is not None and new is not None and (value := _number(new.state)) is not None:
            shown[name].setdefault(value, time.monotonic())

    return bench.hass.bus.async_listen(EVENT_STATE_CHANGED, changed)


async def async_latency(clock: VirtualClock, changes: int, spacing: float) -> dict[str, Any]:
    """``changes`` power values pushed ``spacing`` seconds apart on average (real time)."""
    del clock
    async with _bench((MH, CORE), polling=True) as bench:
        shown: dict[str, dict[float, float]] = {MH: {}, CORE: {}}
        unsub = _watch_states(bench, shown)
        sent: dict[float, float] = {}
        draw = random.Random(1)  # noqa: S311 - a reproducible rhythm
        for index in range(changes):
            watts = 10_000 + index
            sent[watts] = await asyncio.to_thread(bench.devices.set_power, watts)
            await asyncio.sleep(draw.uniform(0.5 * spacing, 1.5 * spacing))
        # core's last poll
        await asyncio.sleep(CORE_POLL_SECONDS + 1)
        unsub()
    return {
        "changes": changes,
        "mean_spacing_s": spacing,
        "core_poll_s": CORE_POLL_SECONDS,
        MH: _delays(sent, shown[MH]),
        CORE: _delays(sent, shown[CORE]),
    }


async def async_reconnect(clock: VirtualClock, times: int, away: float) -> dict[str, Any]:
    """The device goes away for ``away`` seconds ``times`` times (real time)."""
    del clock
    async with _bench((MH, CORE), polling=True) as bench:
        coordinator = bench.coordinators[MH]
        push = coordinator.push  # type: ignore[attr-defined]
        shown: dict[str, dict[float, float]] = {MH: {}, CORE: {}}
        unsub = _watch_states(bench, shown)
        pushed: dict[float, float] = {}
        publish = coordinator.async_set_updated_data

        def noted(data: Any) -> None:
            publish(data)
            state = bench.hass.states.get(bench.power[MH])
            if state is not None and (value := _number(state.state)) is not None:
                pushed.setdefault(value, time.monotonic())

        coordinator.async_set_updated_data = noted  # type: ignore[method-assign]
        back: dict[float, float] = {}
        for index in range(times):
            watts = 20_000 + index
            await asyncio.to_thread(bench.devices.go_away)
            await _until(lambda: not push.pushing)
            await asyncio.sleep(away)
            back[watts] = await asyncio.to_thread(bench.devices.come_back, watts)
            await _until(lambda w=watts: w in pushed and w in shown[CORE], within=60)
        unsub()
        reconnects = push.reconnects
    return {
        "times": times,
        "away_s": away,
        "reconnects": reconnects,
        "meter_hub_first_pushed": _delays(back, pushed),
        MH: _delays(back, shown[MH]),
        CORE: _delays(back, shown[CORE]),
    }


async def _second(bench: _Bench, clock: VirtualClock, index: int) -> dict[str, float]:
    """One simulated second: the meter moves on and pushes, core polls every 5th second.

    Returns the CPU time of the Home Assistant thread for each integration's update.
    """
    clock.jump(1.0)
    await _settle(bench.hass)
    spent: dict[str, float] = {}
    bench.delivered.clear()
    bench.devices.step(1.0)
    if MH in bench.coordinators:
        start = time.thread_time()
        await asyncio.wait_for(bench.delivered.wait(), PATIENCE)
        await bench.hass.async_block_till_done()
        spent[MH] = time.thread_time() - start
    if CORE in bench.coordinators and index % CORE_POLL_SECONDS == 0:
        spent[CORE] = await _timed_poll(bench.hass, bench.coordinators[CORE])
    return spent


async def async_cpu(clock: VirtualClock, seconds: int, warmup: int) -> dict[str, Any]:
    """CPU time per pushed update (Meter Hub) and per poll (core) over ``seconds`` seconds."""
    async with _bench((MH, CORE), polling=False) as bench:
        samples: dict[str, list[float]] = {MH: [], CORE: []}
        written = {MH: 0, CORE: 0}
        names = _entity_ids(bench)

        @callback
        def count(event: Event[EventStateChangedData]) -> None:
            if (name := names.get(event.data["entity_id"])) is not None:
                written[name] += 1

        unsub = None
        for index in range(1, warmup + seconds + 1):
            if index == warmup + 1:
                unsub = bench.hass.bus.async_listen(EVENT_STATE_CHANGED, count)
            for name, spent in (await _second(bench, clock, index)).items():
                if index > warmup:
                    samples[name].append(spent)
        if unsub is not None:
            unsub()
        counts = bench.devices.counts()
    result: dict[str, Any] = {
        "simulated_s": seconds,
        "updates": {name: len(samples[name]) for name in (MH, CORE)},
        "state_changes_per_update": {
            name: round(written[name] / len(samples[name]), 2) for name in (MH, CORE)
        },
        "cpu_per_simulated_hour_ms": {
            name: round(sum(samples[name]) * 1000 * 3600 / seconds, 1) for name in (MH, CORE)
        },
        "device": counts,
        MH: _summary(samples[MH]),
        CORE: _summary(samples[CORE]),
    }
    result["ratio_median"] = round(result[MH]["median_ms"] / result[CORE]["median_ms"], 3)
    return result


def _entity_ids(bench: _Bench) -> dict[str, str]:
    """Every entity id of each integration's entry -> the integration."""
    registry = er.async_get(bench.hass)
    return {
        entry.entity_id: name
        for name, coordinator in bench.coordinators.items()
        if coordinator.config_entry is not None
        for entry in er.async_entries_for_config_entry(registry, coordinator.config_entry.entry_id)
    }


async def async_memory(clock: VirtualClock, name: str, seconds: int) -> dict[str, Any]:
    """Retained memory over ``seconds`` simulated seconds of one integration alone."""
    marks_at = (10, seconds // 3, 2 * seconds // 3, seconds)
    async with _bench((name,), polling=False) as bench:
        tracemalloc.start()
        marks: dict[int, int] = {}
        for index in range(1, seconds + 1):
            await _second(bench, clock, index)
            if index in marks_at:
                marks[index] = await _traced(bench.hass)
        tracemalloc.stop()
    per_second = 1 if name == MH else 1 / CORE_POLL_SECONDS
    later_updates = (marks_at[3] - marks_at[2]) * per_second
    return {
        "updates": round(seconds * per_second),
        **{f"traced_after_{n}_s_kib": round(m / 1024, 1) for n, m in marks.items()},
        "growth_first_kib": round((marks[marks_at[1]] - marks[10]) / 1024, 1),
        "growth_second_kib": round((marks[marks_at[2]] - marks[marks_at[1]]) / 1024, 1),
        "growth_later_kib_per_1000_updates": round(
            (marks[marks_at[3]] - marks[marks_at[2]]) / 1024 / (later_updates / 1000), 2
        ),
    }


def describe(result: dict[str, Any], out: Callable[[str], None]) -> None:
    """Print the push results in a few lines."""
    latency = result.get("latency", {})
    if MH in latency:
        for name in (MH, CORE):
            s = latency[name]
            out(
                f"  latency {name:10s} median {s.get('median_ms')} ms  p99 {s.get('p99_ms')} ms"
                f"  ({s['shown']} of {latency['changes']} values shown)"
            )
    cpu = result.get("cpu", {})
    if MH in cpu:
        out(
            f"  CPU per pushed update {cpu[MH]['median_ms']:.3f} ms (p95 {cpu[MH]['p95_ms']:.3f}),"
            f" per core poll {cpu[CORE]['median_ms']:.3f} ms (p95 {cpu[CORE]['p95_ms']:.3f});"
            f" per simulated hour {cpu['cpu_per_simulated_hour_ms']}"
        )
    for name in (MH, CORE):
        memory = result.get(f"memory_{name}", {})
        if "growth_later_kib_per_1000_updates" in memory:
            out(
                f"  memory {name:10s} {memory['growth_first_kib']:+} KiB,"
                f" {memory['growth_second_kib']:+} KiB, later"
                f" {memory['growth_later_kib_per_1000_updates']:+} KiB per 1000 updates"
            )
    reconnect = result.get("reconnect", {})
    if MH in reconnect:
        first = reconnect["meter_hub_first_pushed"]
        out(
            f"  reconnect: first pushed value {first.get('median_ms')} ms after the device is"
            f" back (max {first.get('max_ms')}); core shows it after"
            f" {reconnect[CORE].get('median_ms')} ms"
        )
