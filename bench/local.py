"""HomeWizard polling: Meter Hub against Home Assistant core's ``homewizard`` integration.

Both integrations run in one Home Assistant and poll a fake HWE-P1 (3 phases, gas and water
meters) on 127.0.0.1, served by another process so that the device's own work is not measured:
each its own instance of it, from the same seed and moved alike, so that both get the same
payloads and neither one's connections to the device disturb the other's (``shared_device``: both
poll one instance, as when a user runs both integrations for one device). Between two polls the
fake meter moves 5 s forward (power walks, counters grow, the gas and water meters tick every 5
minutes) and so does the clock of Home Assistant: each integration sees the same payloads a real
5 s poll would bring. Automatic polling is switched off
(``pref_disable_polling``); each poll is a direct ``coordinator.async_refresh()`` followed by
``hass.async_block_till_done()``, timed with ``time.thread_time()`` (CPU time of the Home Assistant
thread: request, parse, coordinator, state writes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import cProfile
import gc
import io
from pathlib import Path
import pstats
import statistics
import tempfile
import time
import tracemalloc
from types import MappingProxyType
from typing import Any

from homeassistant import config_entries
from homeassistant.const import CONF_HOST, CONF_IP_ADDRESS
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er, restore_state
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from .clock import VirtualClock
from .harness import DeviceInfo, DeviceProcess, async_start_hass

MH = "meter_hub"
CORE = "homewizard"
POLL_SECONDS = 5.0
# The memory benchmark's long run, in multiples of its ``polls``.
LONG_RUN = 6


def _entry(domain: str, device: DeviceInfo) -> config_entries.ConfigEntry[Any]:
    """A config entry of ``domain`` for ``device``, as each integration's config flow makes it."""
    info = device.device
    if domain == MH:
        data: dict[str, Any] = {
            "source": "local",
            CONF_HOST: device.host,
            "serial": info["serial"],
            "product_type": info["product_type"],
        }
        unique_id = info["serial"]
    else:
        data = {CONF_IP_ADDRESS: device.host}
        unique_id = f"{info['product_type']}_{info['serial']}"
    return config_entries.ConfigEntry(
        data=data,
        discovery_keys=MappingProxyType({}),
        domain=domain,
        minor_version=1,
        options={},
        # The benchmark drives every poll itself.
        pref_disable_polling=True,
        source=config_entries.SOURCE_USER,
        subentries_data=None,
        title=info["product_name"],
        unique_id=unique_id,
        version=1,
    )


async def _add_and_setup(hass: HomeAssistant, entry: config_entries.ConfigEntry[Any]) -> None:
    await hass.config_entries.async_add(entry)
    await hass.async_block_till_done()
    if entry.state is not config_entries.ConfigEntryState.LOADED:
        raise RuntimeError(f"{entry.domain} entry did not load: {entry.state} {entry.reason}")


def _coordinator(entry: config_entries.ConfigEntry[Any]) -> DataUpdateCoordinator[Any]:
    # Meter Hub's runtime data holds its coordinator; core's homewizard keeps the coordinator.
    runtime = entry.runtime_data
    coordinator = runtime.coordinator if entry.domain == "meter_hub" else runtime
    if not isinstance(coordinator, DataUpdateCoordinator):
        raise TypeError(f"{entry.domain}: no coordinator in runtime_data")
    return coordinator


def _entities(hass: HomeAssistant, entry: config_entries.ConfigEntry[Any]) -> dict[str, int]:
    """Entities of ``entry``: registered, and enabled (those that have a state)."""
    entries = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    return {
        "registered": len(entries),
        "enabled": sum(1 for e in entries if e.disabled_by is None),
    }


def _summary(samples: list[float]) -> dict[str, float]:
    """Median, p95, mean, min and max in milliseconds."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 4),
        "p95_ms": round(p95 * 1000, 4),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 4),
        "min_ms": round(ordered[0] * 1000, 4),
        "max_ms": round(ordered[-1] * 1000, 4),
    }


async def _settle(hass: HomeAssistant) -> None:
    """Run what is due (timers the clock jump made due) before the next measured poll."""
    for _ in range(3):
        await asyncio.sleep(0)
    await hass.async_block_till_done()


async def _timed_poll(hass: HomeAssistant, coordinator: DataUpdateCoordinator[Any]) -> float:
    start = time.thread_time()
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    elapsed = time.thread_time() - start
    if not coordinator.last_update_success:
        raise RuntimeError(f"{coordinator.name}: poll failed: {coordinator.last_exception}")
    return elapsed


async def _async_profile(
    hass: HomeAssistant,
    *,
    clock: VirtualClock,
    devices: DeviceProcess,
    coordinators: dict[str, DataUpdateCoordinator[Any]],
    polls: int,
    profile_to: Path,
) -> dict[str, str]:
    """Profile ``polls`` polls of each integration with cProfile; reports go next to ``profile_to``.

    A separate pass: the profiler's overhead must not reach the measured polls.
    """
    written: dict[str, str] = {}
    for name, coordinator in coordinators.items():
        profiler = cProfile.Profile()
        for _ in range(polls):
            devices.advance(POLL_SECONDS)
            clock.jump(POLL_SECONDS)
            await _settle(hass)
            profiler.enable()
            await coordinator.async_refresh()
            await hass.async_block_till_done()
            profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(80)
        stats.sort_stats("tottime").print_stats(50)
        target = profile_to.with_name(f"{profile_to.stem}-{name}{profile_to.suffix}")
        await asyncio.to_thread(_write, target, out.getvalue())
        written[name] = str(target.relative_to(target.parents[1]))
    return written


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _requests(
    devices: DeviceProcess, served: dict[str, DeviceInfo], before: dict[str, dict[str, int]]
) -> dict[str, dict[str, int]]:
    """Requests per path since ``before``, per integration (``both`` when they share a device)."""
    if served[MH] is served[CORE]:
        served = {"both": served[MH]}
    counts = {name: devices.request_counts(device) for name, device in served.items()}
    return {
        name: {path: n - before.get(name, {}).get(path, 0) for path, n in sorted(paths.items())}
        for name, paths in counts.items()
    }


async def async_cpu(
    clock: VirtualClock,
    polls: int,
    warmup: int,
    profile_to: Path | None,
    *,
    shared_device: bool = False,
) -> dict[str, Any]:
    """CPU time per poll of each integration, interleaved poll by poll on the same payloads."""
    devices = DeviceProcess()
    try:
        first = devices.add("HWE-P1", seed=8)
        served = {MH: first, CORE: first if shared_device else devices.add("HWE-P1", seed=8)}
        with tempfile.TemporaryDirectory(prefix="meter-hub-bench-") as tmp:
            hass = await async_start_hass(Path(tmp))
            entries = {name: _entry(name, device) for name, device in served.items()}
            for entry in entries.values():
                await _add_and_setup(hass, entry)
            coordinators = {name: _coordinator(entry) for name, entry in entries.items()}
            samples: dict[str, list[float]] = {MH: [], CORE: []}
            written: dict[str, int] = {MH: 0, CORE: 0}
            entity_ids = {
                name: {
                    e.entity_id
                    for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
                }
                for name, entry in entries.items()
            }

            @callback
            def count_writes(event: Event[EventStateChangedData]) -> None:
                entity_id = event.data["entity_id"]
                for name, ids in entity_ids.items():
                    if entity_id in ids:
                        written[name] += 1

            requests_before: dict[str, dict[str, int]] = {}
            unsub = None
            for index in range(warmup + polls):
                measuring = index >= warmup
                if index == warmup:
                    requests_before = _requests(devices, served, {})
                    unsub = hass.bus.async_listen("state_changed", count_writes)
                devices.advance(POLL_SECONDS)
                clock.jump(POLL_SECONDS)
                await _settle(hass)
                # Alternate who goes first, so that neither always polls right after the jump.
                order = (MH, CORE) if index % 2 == 0 else (CORE, MH)
                for name in order:
                    elapsed = await _timed_poll(hass, coordinators[name])
                    if measuring:
                        samples[name].append(elapsed)
            if unsub is not None:
                unsub()
            requests = _requests(devices, served, requests_before)
            result: dict[str, Any] = {
                "polls": polls,
                "warmup_polls": warmup,
                "poll_interval_simulated_s": POLL_SECONDS,
                "device": "fake HWE-P1, 3 phases, gas and water meters (simulator/homewizard.py)",
                "shared_device": shared_device,
                "entities": {name: _entities(hass, entry) for name, entry in entries.items()},
                "state_changes_per_poll": {
                    name: round(written[name] / polls, 2) for name in (MH, CORE)
                },
                "device_requests_per_poll": {
                    name: {path: round(count / polls, 3) for path, count in paths.items()}
                    for name, paths in requests.items()
                },
                MH: _summary(samples[MH]),
                CORE: _summary(samples[CORE]),
            }
            result["ratio_median"] = round(result[MH]["median_ms"] / result[CORE]["median_ms"], 3)
            result["ratio_p95"] = round(result[MH]["p95_ms"] / result[CORE]["p95_ms"], 3)
            if profile_to is not None:
                result["profiles"] = await _async_profile(
                    hass,
                    clock=clock,
                    devices=devices,
                    coordinators=coordinators,
                    polls=polls,
                    profile_to=profile_to,
                )
            await hass.async_stop()
    finally:
        devices.close()
    return result


# --- memory ---------------------------------------------------------------------------------------


async def _traced(hass: HomeAssistant) -> int:
    """Traced memory after a restore-state dump and a full collection.

    Home Assistant keeps the last state of every restorable entity (Meter Hub's sensors are,
    core's are not) and refreshes that copy every 15 minutes: dumping first counts it with the
    entry that owns it, not as growth at whichever poll the dump happens to fall on.
    """
    await restore_state.async_get(hass).async_dump_states()
    await hass.async_block_till_done()
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def _rss_kib() -> int:
    # Bytes, not text: a first decoding would import a codec, which tracemalloc would count as
    # growth of the stretch it falls in.
    for line in Path("/proc/self/status").read_bytes().splitlines():
        if line.startswith(b"VmRSS:"):
            return int(line.split()[1])
    return 0


async def async_memory(clock: VirtualClock, polls: int, extra_entries: int) -> dict[str, Any]:
    """Retained memory (tracemalloc, after a full collection) per entry and over many polls.

    Per entry: one entry of the integration is set up first (imports, platforms, translations
    are then loaded), then ``extra_entries`` more, each on its own fake device; the growth of
    traced memory over those, including 10 polls each, divided by their number.
    Over polls: traced memory of the whole process after 10, ``polls``, ``2 * polls`` and
    ``LONG_RUN * polls`` polls of one entry. The first stretch includes caches that fill once
    (Home Assistant's per-entity caches, the interpreter's small blocks for date-time arithmetic);
    the later ones show whether anything still grows per poll.
    """
    devices = DeviceProcess()
    result: dict[str, Any] = {"method": "tracemalloc, after gc.collect()", "polls": polls}
    try:
        fakes = [
            devices.add("HWE-P1", seed=index, serial=f"5c2fafa1{index:04x}")
            for index in range(1 + extra_entries)
        ]
        with tempfile.TemporaryDirectory(prefix="meter-hub-bench-") as tmp:
            hass = await async_start_hass(Path(tmp))
            tracemalloc.start()
            for name in (MH, CORE):
                entries = []
                for index, fake in enumerate(fakes):
                    if index == 1:
                        before = await _traced(hass)
                    entry = _entry(name, fake)
                    await _add_and_setup(hass, entry)
                    entries.append(entry)
                    for _ in range(10):
                        devices.advance(POLL_SECONDS)
                        clock.jump(POLL_SECONDS)
                        await _settle(hass)
                        await _coordinator(entry).async_refresh()
                        await hass.async_block_till_done()
                per_entry = (await _traced(hass) - before) / extra_entries

                # Growth over polls, on the first entry (the others stay loaded, not polled).
                coordinator = _coordinator(entries[0])
                marks: dict[int, int] = {}
                rss: dict[int, int] = {}
                last = LONG_RUN * polls
                for index in range(1, last + 1):
                    devices.advance(POLL_SECONDS)
                    clock.jump(POLL_SECONDS)
                    await _settle(hass)
                    await coordinator.async_refresh()
                    await hass.async_block_till_done()
                    if index in (10, polls, 2 * polls, last):
                        rss[index] = _rss_kib()
                        marks[index] = await _traced(hass)
                result[name] = {
                    "per_config_entry_kib": round(per_entry / 1024, 1),
                    **{f"traced_after_{n}_polls_kib": round(m / 1024, 1) for n, m in marks.items()},
                    "growth_first_kib": round((marks[polls] - marks[10]) / 1024, 1),
                    "growth_second_kib": round((marks[2 * polls] - marks[polls]) / 1024, 1),
                    # KiB per 1000 polls from 2 * polls to the end
                    "growth_later_kib_per_1000_polls": round(
                        (marks[last] - marks[2 * polls]) / 1024 / ((last - 2 * polls) / 1000), 2
                    ),
                    "rss_after_10_polls_kib": rss[10],
                    f"rss_after_{last}_polls_kib": rss[last],
                }
            tracemalloc.stop()
            await hass.async_stop()
    finally:
        devices.close()
    return result


# --- setup time -----------------------------------------------------------------------------------


async def async_setup_time(clock: VirtualClock, runs: int) -> dict[str, Any]:
    """Wall time to set up a local entry with a reachable device (``runs`` setups, then unload).

    The first setup also imports the integration and registers its devices and entities; every
    later one is a Home Assistant start with the entry already known (unload, then set up again).
    """
    del clock
    devices = DeviceProcess()
    result: dict[str, Any] = {"runs": runs}
    try:
        device = devices.add("HWE-P1", seed=3)
        with tempfile.TemporaryDirectory(prefix="meter-hub-bench-") as tmp:
            hass = await async_start_hass(Path(tmp))
            for name in (MH, CORE):
                entry = _entry(name, device)
                times: list[float] = []
                for run in range(runs):
                    start = time.perf_counter()
                    if run == 0:
                        await _add_and_setup(hass, entry)
                    else:
                        if not await hass.config_entries.async_setup(entry.entry_id):
                            raise RuntimeError(f"{name}: setup failed: {entry.reason}")
                        await hass.async_block_till_done()
                    times.append(time.perf_counter() - start)
                    if not await hass.config_entries.async_unload(entry.entry_id):
                        raise RuntimeError(f"{name}: unload failed")
                    await hass.async_block_till_done()
                result[name] = {
                    "median_s": round(statistics.median(times), 4),
                    "first_s": round(times[0], 4),
                    "max_s": round(max(times), 4),
                }
            await hass.async_stop()
    finally:
        devices.close()
    return result


def describe(result: dict[str, Any], out: Callable[[str], None]) -> None:
    """Print the local results in a few lines."""
    for part, label in (("cpu", "a device each"), ("cpu_shared_device", "one device")):
        cpu = result.get(part)
        if not cpu or "error" in cpu:
            continue
        for name in (MH, CORE):
            s = cpu[name]
            out(
                f"  CPU per poll, {label}: {name:10s} median {s['median_ms']:.3f} ms"
                f"  p95 {s['p95_ms']:.3f} ms  ({cpu['state_changes_per_poll'][name]} state"
                f" changes/poll, {cpu['entities'][name]['enabled']} enabled entities)"
            )
        out(
            f"  ratio Meter Hub / core, {label}: median {cpu['ratio_median']}"
            f"  p95 {cpu['ratio_p95']}; requests per poll {cpu['device_requests_per_poll']}"
        )
    mem = result.get("memory")
    if mem and "error" not in mem:
        polls = mem["polls"]
        for name in (MH, CORE):
            m = mem[name]
            out(
                f"  memory {name:10s} per entry {m['per_config_entry_kib']} KiB;"
                f" growth polls 10 -> {polls}: {m['growth_first_kib']} KiB,"
                f" {polls} -> {2 * polls}: {m['growth_second_kib']} KiB,"
                f" later {m['growth_later_kib_per_1000_polls']} KiB per 1000 polls"
            )
    setup = result.get("setup")
    if setup and "error" not in setup:
        for name in (MH, CORE):
            s = setup[name]
            out(
                f"  setup {name:10s} median of {setup['runs']} {s['median_s'] * 1000:.1f} ms"
                f" (first {s['first_s'] * 1000:.1f} ms)"
            )
