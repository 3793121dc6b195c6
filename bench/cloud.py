"""IAMMETER call budget: a simulated week of one account against the fake cloud.

Everything is real but the clock and the cloud: Home Assistant (with the recorder, so that the
history backfill runs as it would for a user), the config flow that adds the account, the cloud
coordinator with its stored call budget and token, the fake cloud of ``simulator/iammeter.py``
on 127.0.0.1 (which enforces the vendor's documented limits and records every call). The clock
(``harness.VirtualClock``) jumps from one due timer to the next, so the coordinator polls on its
own schedule. Two scenarios: ``steady`` (Home Assistant runs the whole week) and ``restarts``
(stopped and started again every hour, at a different minute each time, with a short downtime:
each start reads the entry, the token, the budget and the last reading from storage, as a real
restart does).
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
import itertools
import logging
from pathlib import Path
import statistics
import tempfile
import time
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.helpers import recorder as recorder_helper
from homeassistant.helpers.recorder import DATA_INSTANCE, get_instance
from homeassistant.setup import async_setup_component

from simulator.iammeter import VENDOR_LIMITS, FakeAccount, FakeIamMeterCloud, FakeMeter, Phase

from .clock import VirtualClock
from .harness import LoopThread, async_start_hass, async_stop_hass, next_timer

DOMAIN = "meter_hub"
USERNAME = "bench"
PASSWORD = "bench-password"  # noqa: S105 - the fake cloud's account
DOWNTIME = timedelta(seconds=40)
SCENARIOS: dict[str, timedelta | None] = {"steady": None, "restarts": timedelta(hours=1)}
# In memory where the machine has it: the calls are counted here, not the disk's fsyncs.
_SHM = Path("/dev/shm")  # noqa: S108 - only a parent for a private temporary directory
_TMP = _SHM if _SHM.is_dir() else None
_LOGGER = logging.getLogger(__name__)


def _account(meters: int) -> FakeAccount:
    """An account of ``meters`` meters, of every shape in turn (as the demo account has them)."""
    made: list[FakeMeter] = []
    for index in range(meters):
        sn = f"B{index:07X}"
        second = (index * 7) % 60
        match index % 4:
            case 0:
                meter = FakeMeter(sn, (Phase(180 + index, 1766.59, 0),), metersdata_row=5)
            case 1:
                meter = FakeMeter(sn, (Phase(-1500, 5724.85, 3120.4),), voltage=233.4)
            case 2:
                meter = FakeMeter(
                    sn, (Phase(420, 32354.6, 0), Phase(1986, 30536.41, 0), Phase(250, 13121.56, 0))
                )
            case _:
                meter = FakeMeter(
                    sn,
                    (Phase(1068, 468.41, 0), Phase(-2100, 236.58, 290.77), Phase(1213, 258.62, 0)),
                    net=(26.329, 25.834),
                )
        meter.upload_second = second
        made.append(meter)
    return FakeAccount(USERNAME, PASSWORD, account_id=31337, meters=made)


async def _async_idle(hass: HomeAssistant, *, with_recorder: bool = True) -> None:
    """Wait until Home Assistant and its background tasks (and the recorder) have nothing to do."""
    await hass.async_block_till_done(wait_background_tasks=True)
    if with_recorder and DATA_INSTANCE in hass.data:
        await get_instance(hass).async_block_till_done()
        await hass.async_block_till_done(wait_background_tasks=True)


async def _async_boot(config_dir: Path, *, restart: bool) -> HomeAssistant:
    """Start Home Assistant: the recorder and, on a restart, the known entry."""

    async def setup(hass: HomeAssistant) -> None:
        # What the bootstrap does before any integration when the recorder is configured.
        recorder_helper.async_initialize_recorder(hass)
        url = f"sqlite:///{config_dir / 'home-assistant_v2.db'}"
        # Only the energy counters (what the history backfill works on) and commits every 30 s
        # instead of 5 s: less work and fewer timer steps, the same calls to the cloud.
        config = {
            "recorder": {
                "db_url": url,
                "commit_interval": 30,
                "include": {"entity_globs": ["sensor.*_energy_*"]},
            }
        }
        if not await async_setup_component(hass, "recorder", config):
            raise RuntimeError("cannot set up the recorder")
        if restart and not await async_setup_component(hass, DOMAIN, {}):
            raise RuntimeError("meter_hub did not set up after a restart")

    return await async_start_hass(config_dir, before_start=setup)


async def _async_add_account(hass: HomeAssistant, cloud: FakeIamMeterCloud) -> None:
    """Add the account through the config flow, as a user does (this is the one login)."""
    flow = hass.config_entries.flow
    result = await flow.async_init(DOMAIN, context={"source": "user"})
    result = await flow.async_configure(result["flow_id"], {"next_step_id": "cloud"})
    result = await flow.async_configure(
        result["flow_id"], {CONF_USERNAME: USERNAME, CONF_PASSWORD: PASSWORD, "server": cloud.url}
    )
    if result.get("step_id") == "insecure_server":  # the fake cloud is plain http: confirm it
        result = await flow.async_configure(result["flow_id"], {})
    if result.get("type") != "create_entry":
        raise RuntimeError(f"the config flow did not create the entry: {result}")


async def _async_run_until(
    hass: HomeAssistant, clock: VirtualClock, until: datetime, on_jump: Callable[[], None]
) -> None:
    """Let time pass timer by timer until ``until`` (wall clock).

    The recorder works in its own thread, in the order things happened; it is waited for once
    a simulated minute (it compiles statistics every 5 minutes), not at every timer.
    """
    loop = asyncio.get_running_loop()
    synced = clock.utcnow()
    while True:
        now = clock.utcnow()
        sync = now - synced >= timedelta(minutes=1)
        if sync:
            synced = now
        await _async_idle(hass, with_recorder=sync)
        remaining = (until - clock.utcnow()).total_seconds()
        if remaining <= 0:
            await _async_idle(hass)
            return
        when = next_timer(loop)
        step = remaining if when is None else min(remaining, when - loop.time())
        clock.jump(max(step, 0.0))
        on_jump()
        await asyncio.sleep(0)


def _rolling_max(times: list[datetime], period: timedelta) -> int:
    """The most calls in any window of ``period`` (ending at a call)."""
    most, first = 0, 0
    for last, at in enumerate(times):
        while times[first] <= at - period:
            first += 1
        most = max(most, last - first + 1)
    return most


def _analyse(cloud: FakeIamMeterCloud, start: datetime, days: int) -> dict[str, Any]:
    per_day: dict[str, list[int]] = defaultdict(lambda: [0] * days)
    per_key: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for call in cloud.calls:
        day = int((call.at - start) / timedelta(days=1))
        if 0 <= day < days:
            per_day[call.endpoint][day] += 1
        kind = "meterdata" if call.endpoint == "meterdata2" else call.endpoint
        if not call.over_limit:
            per_key[kind, call.key].append(call.at)
    # Independent check of the vendor's documented limits on the calls the cloud answered.
    worst: dict[str, dict[str, int]] = {}
    over = 0
    for (kind, _key), times in per_key.items():
        for calls, period in VENDOR_LIMITS.get(kind, ()):
            most = _rolling_max(sorted(times), period)
            over += max(0, most - calls)
            label = f"{kind} per {int(period.total_seconds())} s"
            seen = worst.setdefault(label, {"limit": calls, "most": 0})
            seen["most"] = max(seen["most"], most)
    data = per_day.get("metersdata", [0] * days)
    data_times = sorted(call.at for call in cloud.calls if call.endpoint == "metersdata")
    intervals = sorted(
        (later - earlier).total_seconds() for earlier, later in itertools.pairwise(data_times)
    )
    logins = per_day.get("login", [0] * days)
    return {
        "calls_per_day": dict(sorted(per_day.items())),
        "data_calls_per_day": data,
        "data_calls_per_day_min": min(data),
        "data_calls_per_day_max": max(data),
        "data_call_interval_s": {
            "min": round(intervals[0], 3) if intervals else None,
            "median": round(statistics.median(intervals), 3) if intervals else None,
            "max": round(intervals[-1], 3) if intervals else None,
            "over_330_s": sum(1 for gap in intervals if gap > 330),
        },
        "logins_total": sum(logins),
        "logins_per_day_steady": max(logins[1:]) if days > 1 else logins[0],
        "over_limit_answered_nothing": sum(1 for call in cloud.calls if call.over_limit),
        "over_limit_recounted": over,
        "most_calls_in_a_window": worst,
        "calls_total": len(cloud.calls),
        "calls_per_endpoint": dict(Counter(call.endpoint for call in cloud.calls)),
    }


async def async_week(
    clock: VirtualClock,
    meters: int,
    days: int,
    *,
    restart_every: timedelta | None,
) -> dict[str, Any]:
    """Simulate ``days`` days of one account of ``meters`` meters; count the calls."""
    started = time.monotonic()
    start = clock.utcnow()
    end = start + timedelta(days=days)
    # The fake cloud runs in a thread of its own: Home Assistant's loop holds only Home Assistant.
    cloud = FakeIamMeterCloud(clock=clock.utcnow, accounts=[_account(meters)])
    cloud_thread = LoopThread("fake-cloud")
    await cloud_thread.async_call(cloud.start)
    not_loaded = 0
    restarts = 0
    jumps = 0

    def count_jump() -> None:
        nonlocal jumps
        jumps += 1

    try:
        with tempfile.TemporaryDirectory(prefix="meter-hub-bench-cloud-", dir=_TMP) as tmp:
            config_dir = Path(tmp)
            hass = await _async_boot(config_dir, restart=False)
            await _async_add_account(hass, cloud)
            number = 1
            while restart_every is not None:
                # Every ``restart_every``, at a different minute and second each time.
                restart_at = (
                    start
                    + number * restart_every
                    + timedelta(minutes=(number * 17) % 60, seconds=(number * 13) % 60)
                    - timedelta(hours=1 if restart_every >= timedelta(hours=1) else 0)
                )
                if restart_at >= end:
                    break
                await _async_run_until(hass, clock, restart_at, count_jump)
                await async_stop_hass(hass)
                clock.jump(DOWNTIME.total_seconds())
                hass = await _async_boot(config_dir, restart=True)
                await _async_idle(hass)
                (entry,) = hass.config_entries.async_entries(DOMAIN)
                if entry.state is not ConfigEntryState.LOADED:
                    not_loaded += 1
                restarts += 1
                number += 1
            await _async_run_until(hass, clock, end, count_jump)
            await async_stop_hass(hass)
    finally:
        await cloud_thread.async_call(cloud.stop)
        cloud_thread.close()
    result: dict[str, Any] = {
        "meters": meters,
        "simulated_days": days,
        "restart_every_s": None if restart_every is None else restart_every.total_seconds(),
        "restarts": restarts,
        "restart_downtime_s": DOWNTIME.total_seconds(),
        "recorder": True,
        "entry_not_loaded_after_restart": not_loaded,
        "timer_jumps": jumps,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    result.update(_analyse(cloud, start, days))
    return result


def describe(results: dict[str, Any], out: Callable[[str], None]) -> None:
    """Print the cloud results in a few lines."""
    for name, r in results.items():
        if "error" in r:
            continue
        out(
            f"  cloud {name:20s} data calls/day {r['data_calls_per_day_min']}-"
            f"{r['data_calls_per_day_max']}, logins {r['logins_total']} in {r['simulated_days']} d"
            f" (steady {r['logins_per_day_steady']}/day), over limit"
            f" {r['over_limit_answered_nothing']} (recounted {r['over_limit_recounted']}),"
            f" {r['restarts']} restarts, calls {r['calls_per_endpoint']}"
        )


def main() -> None:
    """``python -m bench.cloud METERS DAYS START SCENARIO``: its results as JSON on stdout."""
    import json  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from .harness import run  # noqa: PLC0415

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("homeassistant.loader").setLevel(logging.ERROR)
    meters, days, start = int(sys.argv[1]), int(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
    restart_every = SCENARIOS[sys.argv[4]]
    result = run(lambda clock: async_week(clock, meters, days, restart_every=restart_every), start)
    result["scenario"] = sys.argv[4]
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
