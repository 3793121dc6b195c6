"""IAMMETER history in Home Assistant's long-term statistics: backfill and place energy.

Both jobs run in the background of a cloud entry, every 5 minutes when there is work, and every
cloud call goes through the call budget.

**Backfill.** The recorder compiles an energy sensor's hourly statistics from its states, with
``sum - state`` constant as long as the counter does not reset: each 5-minute period adds the
change of the state since the last compiled period. When Home Assistant is off, or the cloud does
not answer, the counter keeps running, and the recorder books everything that was missed into the
first period after the gap, so the energy dashboard shows a hole and then a spike. Worse, the
hours of the gap are not always empty: after a restart the recorder compiles the missed periods
from the last state it knew, so they hold *stale* rows (the old counter, no change).

Meter Hub knows when it missed data: a poll that succeeds longer after the previous one than two
polling intervals opens a *gap* (the first setup is a gap of 7 days, a meter that appears later
too). The week before a meter's first poll is written at once: the recorder holds nothing of it,
so the rows run from 0 (or the meter's last row, if it had statistics before) up to the last full
hour, and the last row is repeated as a 5-minute row, which the recorder's own sum continues (it
continues its latest 5-minute row). Its first compiled hour (the closing row) then only checks the
seam: when the recorder compiled before the week was written, its rows are moved onto the week's
sum. For other gaps, once the recorder has compiled the closing row, the hours from the gap's
start to it are checked:

* a row is kept when it exists and its counter is not behind the cloud's counter at the start of
  its own hour (a state polled during the hour never is);
* a row is rewritten when it is missing or stale (no call at all when every hour of the gap has
  a row that changed: stale rows repeat the row before them).

Rewritten hours continue the sum from the kept row before them (or from 0 when the statistic has
no row before), adding the increments of the meter's 5-minute history (``meterdatalist2``) up to
the end of each hour, where the history reaches that far; the row's ``state`` is the counter at
that time. The kept row after them
must then show only its own hour: its expected sum is the run's last sum plus the increase from
the cloud's counter at its start to its own state. Where the recorder's sum differs (the first
setup, where the recorder started at 0; a counter reset inside the gap) every row from there on is
shifted by the difference with ``async_adjust_statistics``, which also shifts the 5-minute rows
that the recorder continues from. Otherwise the recorder's rows are left alone. So: no hour is
counted twice (the spike moves into the hours it belongs to), no hour is negative (increments are
never negative), and planning again finds nothing to do. The samples go through the counter guard
of the live sensors (``counter_guard``): a glitched sample, up or down, adds nothing, and a drop
counts as a reset only once the samples after it confirm it as the cloud's polls would.

**Place energy.** With a place id in the options, the place's ``energyhistory`` is imported as
external statistics (``history_place``).

**The rooms.** ``CloudHistory`` (here) loads and saves the state, ticks every 5 minutes and runs
what is due, one run at a time. Each piece of the state has its own diagnostics: the gap
ledger (``history_gaps``), the backfill's retries (``history_backfill``, which writes through
``history_recorder``), the account's clock, learned in one place (``history_clock``), and the
place sync (``history_place``). What to write is planned in ``history_planning``, without Home
Assistant; the cloud calls go through ``history_calls``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.recorder import get_instance
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import CLOUD_SCAN_INTERVAL, CONF_SCAN_INTERVAL, DOMAIN
from .history_backfill import EnergyBackfill
from .history_calls import HistoryCalls
from .history_clock import LearnedClock
from .history_gaps import GapLedger
from .history_place import PlaceEnergySync

if TYPE_CHECKING:
    from .cloud_coordinator import CloudCoordinator

TICK: Final = timedelta(minutes=5)
STORAGE_VERSION: Final = 1


def history_store(hass: HomeAssistant, entry_id: str) -> Store[dict[str, Any]]:
    """Where the backfill of a cloud entry keeps what it has done and what it still has to do."""
    return Store(hass, STORAGE_VERSION, f"{DOMAIN}.history_{entry_id}")


class CloudHistory:
    """The history jobs of one cloud entry: the gap ledger, the backfill and the place sync."""

    def __init__(self, hass: HomeAssistant, coordinator: CloudCoordinator) -> None:
        """Work for the entry of ``coordinator``."""
        self.hass = hass
        self.coordinator = coordinator
        self.entry = coordinator.config_entry
        calls = HistoryCalls(coordinator.budget)
        self.gaps = GapLedger()
        self.clock = LearnedClock(coordinator, calls)
        self.backfill = EnergyBackfill(hass, coordinator, self.gaps, self.clock, calls)
        self.place_sync = PlaceEnergySync(hass, coordinator, self.clock, calls)
        self._store = history_store(hass, self.entry.entry_id)
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def diagnostics(self) -> dict[str, Any]:
        """The state of every piece, for the diagnostics download."""
        return {
            "gaps": self.gaps.diagnostics(),
            "backfill": self.backfill.diagnostics(),
            "clock": self.clock.diagnostics(),
            "place_sync": self.place_sync.diagnostics(),
        }

    async def async_start(self) -> None:
        """Load the state of the last run, note what was missed since, start the tick."""
        stored = await self._store.async_load() or {}
        self.gaps.restore(stored)
        self.clock.restore(stored)
        self.place_sync.restore(stored)
        self.note_poll()
        self.entry.async_on_unload(
            async_track_time_interval(
                self.hass, self._async_tick, TICK, name=f"{DOMAIN} history", cancel_on_shutdown=True
            )
        )
        self.entry.async_on_unload(self._async_stop)
        self._schedule_run()

    async def _async_stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        await self._store.async_save(self._to_store())

    def _to_store(self) -> dict[str, Any]:
        return self.gaps.to_store() | self.clock.to_store() | self.place_sync.to_store()

    def _save(self) -> None:
        self._store.async_delay_save(self._to_store, 10)

    @callback
    def _async_tick(self, _now: datetime) -> None:
        self.note_poll()
        self._schedule_run()

    @callback
    def _schedule_run(self) -> None:
        if (self._task is None or self._task.done()) and self.has_work(dt_util.utcnow()):
            self._task = self.entry.async_create_background_task(
                self.hass, self.async_run(), f"{DOMAIN} history {self.entry.entry_id}"
            )

    @callback
    def note_poll(self) -> None:
        """Note the last good poll in the gap ledger (a gap opens when it came late)."""
        fetched_at = self.coordinator.fetched_at
        if fetched_at is None or self.coordinator.data is None:
            return
        interval = max(
            timedelta(seconds=self.entry.options.get(CONF_SCAN_INTERVAL, 0)), CLOUD_SCAN_INTERVAL
        )
        if self.gaps.note_poll(fetched_at, self.coordinator.data, interval):
            self._save()

    def has_work(self, now: datetime) -> bool:
        """Whether a run could do something now."""
        return self.backfill.has_work(now) or self.place_sync.is_due(now)

    async def async_run(self) -> None:
        """Do what is due: backfill the gaps that the recorder has closed, sync the place."""
        async with self._lock:
            await get_instance(self.hass).async_db_ready
            now = dt_util.utcnow()
            await self.backfill.async_run(now)
            await self.place_sync.async_run(now)
            self._save()
