"""IAMMETER history in Home Assistant's long-term statistics: backfill and site energy.

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

**Site energy.** With a place id in the options, ``energyhistory`` of the place is imported as
external statistics (``meter_hub:<place>_yield`` ...): days older than the hourly window (7 days)
from ``groupby=day`` (one row at local midnight), the last 7 days by hour, then every hour the
current local day again. Each run continues the running sum from the last row before the first
day it imports and rewrites the rows from there on, so the sum never breaks.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from functools import partial
import re
from typing import TYPE_CHECKING, Any, Final, NamedTuple, cast

from homeassistant.components.recorder.db_schema import StatisticsShortTerm
from homeassistant.components.recorder.models import (
    StatisticData,
    StatisticMeanType,
    StatisticMetaData,
)
from homeassistant.components.recorder.statistics import (
    async_add_external_statistics,
    async_import_statistics,
    get_last_short_term_statistics,
    get_last_statistics,
    get_metadata,
    statistics_during_period,
)
from homeassistant.const import ATTR_UNIT_OF_MEASUREMENT, UnitOfEnergy
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.recorder import get_instance
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey
from homeassistant.util.unit_conversion import EnergyConverter

from .api.budget import BudgetExceeded, CallKind
from .api.iammeter import (
    EnergyHistoryRow,
    GroupBy,
    HistoryRow,
    IamMeterError,
    RateLimited,
    max_history_days,
)
from .compat import HAS_UNIT_CLASS
from .const import (
    CLOUD_COUNTER_RESET,
    CLOUD_SCAN_INTERVAL,
    CONF_PLACE_ID,
    CONF_SCAN_INTERVAL,
    DOMAIN,
    LOGGER,
)
from .counter_guard import CounterGuard, rise_bound

if TYPE_CHECKING:
    from .cloud_coordinator import CloudCoordinator
    from .coordinator import MeterHubConfigEntry

HOUR: Final = timedelta(hours=1)
BACKFILL_WINDOW: Final = timedelta(days=7)
"""How far back a gap is filled (meterdatalist2 at 5 minutes: 6 days per call, two calls)."""
ANCHOR_LOOKBACK: Final = timedelta(days=10)
"""How far before a gap the row to continue from is searched (the recorder's own memory: its
5-minute rows are kept 10 days, an older sum is not continued by the recorder either)."""
HISTORY_INTERVAL_S: Final = 300
HISTORY_COUNTER_RESET: Final = CLOUD_COUNTER_RESET
"""History samples are 5 minutes apart, as the cloud's polls: the same reset rule."""
ENERGY_KEYS: Final = ("energy_import_kwh", "energy_export_kwh")
STATE_TOLERANCE_KWH: Final = 0.01
"""A kept row's counter may be this much behind the cloud's (rounding)."""
ADJUST_EPSILON: Final = 1e-6
COVERAGE_SLACK: Final = timedelta(minutes=10)
"""An hour counts as covered by the history when a sample is at most this long before its end."""
MISSING_SAMPLES: Final = timedelta(seconds=2 * HISTORY_INTERVAL_S)
"""Samples further apart than this have some missing between them."""
TICK: Final = timedelta(minutes=5)
SHORT_TERM_PERIOD: Final = timedelta(minutes=5)
"""The recorder's short-term statistics period."""
GAP_MARGIN: Final = timedelta(minutes=1)
RETRY_AFTER_ERROR: Final = timedelta(minutes=30)
MAX_FAILURES: Final = 3
NEXT_HOUR_DELAY: Final = timedelta(minutes=2)
RATE_LIMIT_BACK_OFF: Final = timedelta(hours=1)
OFFSET_MAX_AGE: Final = timedelta(hours=12)
OFFSET_GRANULARITY: Final = timedelta(minutes=15)
MAX_UTC_OFFSET: Final = timedelta(hours=14)

SITE_HOURLY_DAYS: Final = 7
SITE_DAILY_DAYS: Final = 90
SITE_FIELDS: Final[Mapping[str, tuple[str, str]]] = {
    # statistic id suffix: (EnergyHistoryRow attribute, name)
    "yield": ("yield_kwh", "yield"),
    "from_grid": ("from_grid_kwh", "from grid"),
    "to_grid": ("to_grid_kwh", "to grid"),
    "self_use": ("self_use_kwh", "self use"),
    "special_load": ("special_load_kwh", "special load"),
}

STORAGE_VERSION: Final = 1
HISTORY_KEY: HassKey[dict[str, HistoryManager]] = HassKey(f"{DOMAIN}_history")


def _hour_floor(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


# --- planning (no Home Assistant calls) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatRow:
    """One hourly statistics row: its start (UTC), the counter and the running sum."""

    start: datetime
    state: float
    sum: float


@dataclass(frozen=True, slots=True)
class Sample:
    """A counter value of the meter's history."""

    at: datetime
    value: float


class SampleSeries:
    """A meter counter's history, sorted by time."""

    def __init__(self, samples: Iterable[Sample]) -> None:
        """Sort ``samples``."""
        self._samples = sorted(samples, key=lambda sample: sample.at)
        self._times = [sample.at for sample in self._samples]

    def __len__(self) -> int:
        """Number of samples."""
        return len(self._samples)

    @property
    def last_at(self) -> datetime | None:
        """The time of the last sample."""
        return self._times[-1] if self._times else None

    def value_at(self, at: datetime) -> float | None:
        """The counter at ``at``: the last sample at or before it (None before the first)."""
        index = bisect_right(self._times, at)
        return self._samples[index - 1].value if index else None

    def between(self, start: datetime, end: datetime) -> list[Sample]:
        """The samples after ``start`` up to and including ``end``."""
        return self._samples[bisect_right(self._times, start) : bisect_right(self._times, end)]


class CounterTrack:
    """Adds up what the counter guard lets through of a counter's history, never a negative.

    The history goes through the same rule as the live sensors (``counter_guard``): a sample that
    rises faster than the meter can measure, or drops without being confirmed by the samples after
    it, adds nothing; a confirmed drop is a reset (a replaced meter, counting from 0).
    """

    __slots__ = ("_at", "_guard")

    def __init__(self, guard: CounterGuard, level: float | None, at: datetime | None) -> None:
        """Continue ``guard`` from ``level``, the counter at ``at`` (None: the first sample)."""
        self._guard = guard
        self._at = at
        if level is not None and at is not None:
            guard.restore(level, at.timestamp())

    @property
    def level(self) -> float | None:
        """The counter as published so far."""
        return self._guard.published

    def add(self, value: float, at: datetime) -> float:
        """Take the sample ``value`` of ``at``; return the energy it adds."""
        if self._at is not None and at - self._at > MISSING_SAMPLES:
            self._guard.interrupt()  # samples missing: an observation starts again
        self._at = at
        level = self._guard.published
        published = self._guard.accept(value, at.timestamp())
        if level is None or published is None:
            return 0.0
        return published - level if published >= level else published


@dataclass(slots=True)
class BackfillPlan:
    """What to write: sum adjustments (from a start on) first, then the rows."""

    rows: list[StatRow] = field(default_factory=list)
    adjustments: list[tuple[datetime, float]] = field(default_factory=list)


def _is_stale(row: StatRow, counter_at_start: float | None, tolerance: float) -> bool:
    """Whether ``row``'s counter is behind the meter's at the start of the row's own hour."""
    return counter_at_start is not None and row.state < counter_at_start - tolerance


def needs_history(rows: Sequence[StatRow], first: datetime, last: datetime) -> bool:
    """Whether an hour in ``[first, last)`` is missing or unchanged (maybe stale).

    Stale rows repeat the row before them, so rows that all changed need no cloud call.
    """
    by_start = {row.start: row for row in rows}
    previous = max((row for row in rows if row.start < first), key=lambda r: r.start, default=None)
    hour = first
    while hour < last:
        row = by_start.get(hour)
        if row is None:
            return True
        if previous is not None and (row.state, row.sum) == (previous.state, previous.sum):
            return True
        previous, hour = row, hour + HOUR
    return False


def plan_backfill(
    rows: Sequence[StatRow],
    series: SampleSeries,
    first: datetime,
    last: datetime,
    tolerance: float,
    *,
    new_guard: Callable[[], CounterGuard],
    open_end: bool = False,
) -> BackfillPlan:
    """Plan the rows to rewrite in ``[first, last]``; ``last`` holds the closing row.

    ``rows`` are the statistic's existing hourly rows (from before ``first`` too, to continue
    from); ``series`` is the meter's counter history in the statistic's unit; ``new_guard``
    makes the counter guard of the statistic. A run of missing or stale hours that no kept row
    closes is left alone (the recorder has not caught up yet), unless ``open_end``: the hours
    after ``last`` are the recorder's to come (a meter seen for the first time), which will
    continue from the last row written. A kept row's counter is taken as of the end of its hour.
    """

    def track(level: float | None, at: datetime | None) -> CounterTrack:
        return CounterTrack(new_guard(), level, at)

    plan = BackfillPlan()
    by_start = {row.start: row for row in rows}
    anchor = max((row for row in rows if row.start < first), key=lambda r: r.start, default=None)
    base = None if anchor is None else anchor.sum
    counter = track(*((None, None) if anchor is None else (anchor.state, anchor.start + HOUR)))
    shift = 0.0  # adjustments planned so far, which move every existing row after them
    run_sum: float | None = None  # the running sum while in a run of rewritten hours
    run_rows: list[StatRow] = []
    floating = False  # the run started at 0 for want of a row before it
    # An hour is only written when the history reaches its end: where it stops short (the
    # meter stopped uploading, or the answer ended early) the kept row after the run gets the
    # energy, as the recorder would have booked it.
    covered = series.last_at
    hour = first
    while hour <= last:
        end = hour + HOUR
        row = by_start.get(hour)
        if row is not None and not _is_stale(row, series.value_at(hour), tolerance):
            if run_sum is not None:
                # The kept row after a run: it shows its own hour only.
                expected = run_sum + counter.add(row.state, end)
                difference = expected - (row.sum + shift)
                if floating and difference < 0:
                    # The recorder continues an older sum (beyond the rows read): lift the run
                    # to it rather than lower the recorder's rows. Starting at 0 and moving the
                    # recorder's rows up instead (the first setup) keeps every sum positive.
                    run_rows = [StatRow(r.start, r.state, r.sum - difference) for r in run_rows]
                elif abs(difference) > ADJUST_EPSILON:
                    plan.adjustments.append((hour, difference))
                    shift += difference
                plan.rows.extend(run_rows)
                run_rows, run_sum, floating = [], None, False
            counter = track(row.state, end)
            base = row.sum + shift
        else:
            if run_sum is None:
                if base is None:
                    # No row to continue from: start at 0 where the cloud's counter is known.
                    if (start_value := series.value_at(hour)) is None:
                        hour = end
                        continue
                    counter, base, floating = track(start_value, hour), 0.0, True
                run_sum = base
            for sample in series.between(hour, end):
                run_sum += counter.add(sample.value, sample.at)
            if (
                counter.level is not None
                and covered is not None
                and end - COVERAGE_SLACK <= covered
            ):
                run_rows.append(StatRow(hour, counter.level, run_sum))
        hour = end
    if open_end:
        plan.rows.extend(run_rows)
    return plan


def seam_difference(
    rows: Sequence[StatRow], closing: datetime, new_guard: Callable[[], CounterGuard]
) -> float:
    """How far the closing row's sum is off the one that continues the row before it.

    After a meter's week was written at once, the recorder's first hour continues it; it does
    not when the recorder compiled its first period before the week was written (it then
    counted from 0): the difference moves its rows up to the week's sum.
    """
    after = next((row for row in rows if row.start == closing), None)
    before = max((row for row in rows if row.start < closing), key=lambda r: r.start, default=None)
    if after is None or before is None:
        return 0.0
    counter = CounterTrack(new_guard(), before.state, before.start + HOUR)
    return before.sum + counter.add(after.state, after.start + HOUR) - after.sum


def site_statistic_id(place_id: str, suffix: str) -> str:
    """The external statistic id of a place's quantity: lowercase, no ``-``, no ``__``."""
    slug = re.sub(r"[^a-z0-9]+", "_", place_id.lower()).strip("_") or "place"
    return f"{DOMAIN}:{slug}_{suffix}"


def plan_site(
    existing: Sequence[StatRow], points: Mapping[datetime, float], resume: datetime
) -> list[StatRow]:
    """Rows of an external statistic from ``resume`` on, continuing the sum before it.

    Existing rows from ``resume`` on that the new data does not hold are rewritten with no
    energy, so the running sum stays monotonic. Rows that would not change are left out.
    """
    before = [row for row in existing if row.start < resume]
    total = max(before, key=lambda row: row.start).sum if before else 0.0
    old = {row.start: row for row in existing if row.start >= resume}
    values = dict.fromkeys(old, 0.0) | {
        start: value for start, value in points.items() if start >= resume
    }
    planned: list[StatRow] = []
    for start in sorted(values):
        total += values[start]
        planned.append(StatRow(start, values[start], total))
    return [
        row
        for row in planned
        if (kept := old.get(row.start)) is None
        or abs(kept.sum - row.sum) > ADJUST_EPSILON
        or abs(kept.state - row.state) > ADJUST_EPSILON
    ]


@dataclass(frozen=True, slots=True)
class AccountClock:
    """The account's wall clock, which the cloud's dates and local times use."""

    zone: tzinfo

    @classmethod
    def from_offset(cls, offset: timedelta, home: tzinfo, now: datetime) -> AccountClock:
        """Home Assistant's zone when it has this offset now (DST-aware), else the offset."""
        return cls(home if home.utcoffset(now) == offset else timezone(offset))

    def to_utc(self, local: datetime) -> datetime:
        """The UTC hour that holds the local time ``local`` (naive)."""
        return _hour_floor(local.replace(tzinfo=self.zone).astimezone(UTC))

    def today(self, now: datetime) -> date:
        """The account's date at ``now``."""
        return now.astimezone(self.zone).date()


# --- Home Assistant layer -------------------------------------------------------------------


class _Target(NamedTuple):
    """An energy sensor of a meter to backfill: its hourly rows, up to ``last``."""

    key: str
    entity_id: str
    rows: list[StatRow]
    last: datetime


class _GiveUp(Exception):
    """The cloud keeps failing for this meter: drop the gap."""


class _Deferred(Exception):
    """A cloud call cannot be made now; try again at ``until``."""

    def __init__(self, until: datetime) -> None:
        super().__init__(until.isoformat())
        self.until = until


@dataclass(slots=True)
class Gap:
    """A time without live polls, to backfill for the meters in ``serials``."""

    start: datetime
    end: datetime
    serials: set[str]
    new: bool = False
    """The week before a meter's first poll: written at once, as the recorder holds nothing
    of it; the closing row then only checks the seam."""
    written: set[str] = field(default_factory=set)
    """The meters of a ``new`` gap whose week is written."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "serials": sorted(self.serials),
            "new": self.new,
            "written": sorted(self.written),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Gap:
        """Read the JSON form."""
        return cls(
            datetime.fromisoformat(data["start"]),
            datetime.fromisoformat(data["end"]),
            set(data["serials"]),
            bool(data.get("new", False)),
            set(data.get("written", [])),
        )


def _aware(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def history_store(hass: HomeAssistant, entry_id: str) -> Store[dict[str, Any]]:
    """Where the backfill of a cloud entry keeps what it has done and what it still has to do."""
    return Store(hass, STORAGE_VERSION, f"{DOMAIN}.history_{entry_id}")


class HistoryManager:
    """Backfill and site energy of one cloud entry."""

    def __init__(self, hass: HomeAssistant, entry: MeterHubConfigEntry) -> None:
        """Work for ``entry``, whose runtime data is a ``CloudCoordinator``."""
        self.hass = hass
        self.entry = entry
        self.coordinator = cast("CloudCoordinator", entry.runtime_data)
        self._store = history_store(hass, entry.entry_id)
        self.last_poll: datetime | None = None
        self.known: set[str] = set()
        self.gaps: list[Gap] = []
        self.offset: timedelta | None = None
        self._offset_at: datetime | None = None
        self.site_hour: datetime | None = None
        self.site_place: str | None = None
        self._retry: dict[str, datetime] = {}
        self._failures: dict[str, int] = {}
        self._site_retry: datetime | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    async def async_start(self) -> None:
        """Load the state of the last run, note what was missed since, start the tick."""
        stored = await self._store.async_load() or {}
        try:
            self.last_poll = _aware(stored.get("last_poll"))
            self.known = set(stored.get("known", []))
            self.gaps = [Gap.from_dict(gap) for gap in stored.get("gaps", [])]
            if isinstance(minutes := stored.get("offset_min"), int):
                self.offset = timedelta(minutes=minutes)
                self._offset_at = _aware(stored.get("offset_at"))
            self.site_hour = _aware(stored.get("site_hour"))
            self.site_place = stored.get("site_place")
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            LOGGER.warning("Ignoring the stored IAMMETER history state: %s", err)
            self.last_poll, self.known, self.gaps = None, set(), []
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
        await self._store.async_save(self._to_dict())

    def _to_dict(self) -> dict[str, Any]:
        return {
            "last_poll": self.last_poll.isoformat() if self.last_poll else None,
            "known": sorted(self.known),
            "gaps": [gap.to_dict() for gap in self.gaps],
            "offset_min": None if self.offset is None else int(self.offset.total_seconds() // 60),
            "offset_at": self._offset_at.isoformat() if self._offset_at else None,
            "site_hour": self.site_hour.isoformat() if self.site_hour else None,
            "site_place": self.site_place,
        }

    def _save(self) -> None:
        self._store.async_delay_save(self._to_dict, 10)

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

    # --- what was missed -----------------------------------------------------------------------

    @callback
    def note_poll(self) -> None:
        """Open a gap when the last good poll came too long after the one before it."""
        fetched_at: datetime | None = getattr(self.coordinator, "fetched_at", None)
        if fetched_at is None or self.coordinator.data is None:
            return
        serials = set(self.coordinator.data)
        interval = max(
            timedelta(seconds=self.entry.options.get(CONF_SCAN_INTERVAL, 0)), CLOUD_SCAN_INTERVAL
        )
        if self.last_poll is None:
            # First run: the week before, for every meter.
            self.gaps.append(Gap(fetched_at - BACKFILL_WINDOW, fetched_at, set(serials), new=True))
        elif fetched_at - self.last_poll > 2 * interval + GAP_MARGIN:
            self.gaps.append(Gap(self.last_poll, fetched_at, set(serials)))
        if self.last_poll is not None and (new := serials - self.known):
            # A meter added to the account: its week before.
            self.gaps.append(Gap(fetched_at - BACKFILL_WINDOW, fetched_at, new, new=True))
        if fetched_at != self.last_poll or serials != self.known:
            self.last_poll = max(fetched_at, self.last_poll or fetched_at)
            self.known = serials
            self._save()

    def has_work(self, now: datetime) -> bool:
        """Whether a run could do something now."""
        data = self.coordinator.data or {}
        if any(
            serial not in data or now >= self._retry.get(serial, now)
            for gap in self.gaps
            for serial in gap.serials
        ):
            return True
        return self._site_due(now)

    def _site_due(self, now: datetime) -> bool:
        if not self.place_id:
            return False
        if self._site_retry is not None and now < self._site_retry:
            return False
        return self.site_hour != _hour_floor(now) or self.site_place != self.place_id

    @property
    def place_id(self) -> str | None:
        """The place whose energy is imported, if the user gave one."""
        place = str(self.entry.options.get(CONF_PLACE_ID) or "").strip()
        return place or None

    async def async_run(self) -> None:
        """Do what is due: backfill the gaps that the recorder has closed, sync the place."""
        async with self._lock:
            await get_instance(self.hass).async_db_ready
            now = dt_util.utcnow()
            await self._async_backfill(now)
            await self._async_sync_site(now)
            self._save()

    # --- backfill ----------------------------------------------------------------------------

    async def _async_backfill(self, now: datetime) -> None:
        for gap in list(self.gaps):
            for serial in sorted(gap.serials):
                if serial not in (self.coordinator.data or {}):
                    gap.serials.discard(serial)  # the meter left the account
                    continue
                if now < self._retry.get(serial, now):
                    continue
                try:
                    done = await self._async_backfill_meter(gap, serial, now)
                except _Deferred as deferred:
                    self._retry[serial] = deferred.until
                    continue
                except _GiveUp:
                    done = True
                except HomeAssistantError as err:  # the recorder refused what was planned
                    LOGGER.warning("Cannot backfill the statistics of meter %s: %s", serial, err)
                    self._retry[serial] = now + RETRY_AFTER_ERROR
                    continue
                if done:
                    gap.serials.discard(serial)
                    self._failures.pop(serial, None)
                else:
                    # The recorder compiles an hour when it is over: look again after the next.
                    self._retry[serial] = _hour_floor(now) + HOUR + NEXT_HOUR_DELAY
            if not gap.serials:
                self.gaps.remove(gap)

    async def _async_backfill_meter(self, gap: Gap, serial: str, now: datetime) -> bool:
        """Backfill ``gap`` for one meter; False while the recorder has not closed it yet."""
        first = _hour_floor(max(gap.start, gap.end - BACKFILL_WINDOW))
        gap_end_hour = _hour_floor(gap.end)
        if gap.new and serial not in gap.written:
            # The recorder holds nothing of the week before: no closing row to wait for.
            week = [
                target._replace(last=gap_end_hour - HOUR)
                for target in await self._async_energy_targets(serial, first, now)
            ]
            await self._async_backfill_targets(serial, first, now, week, open_end=True)
            gap.written.add(serial)
            return False
        targets: list[_Target] = []
        for target in await self._async_energy_targets(serial, first, now):
            closing = next((row.start for row in target.rows if row.start >= gap_end_hour), None)
            if closing is None:
                if now - gap.end < BACKFILL_WINDOW:
                    LOGGER.debug(
                        "%s: waiting for the recorder's hour of %s", target.entity_id, gap.end
                    )
                    return False
                LOGGER.debug(
                    "No statistics of %s after the gap ending %s", target.entity_id, gap.end
                )
                continue
            if serial in gap.written:
                await self._async_close_seam(target, closing)
            elif needs_history(target.rows, first, closing):
                targets.append(target._replace(last=closing))
        await self._async_backfill_targets(serial, first, now, targets, open_end=False)
        return True

    async def _async_energy_targets(
        self, serial: str, first: datetime, now: datetime
    ) -> list[_Target]:
        """The meter's energy sensors with their hourly rows (to continue from, before ``first``)."""
        registry = er.async_get(self.hass)
        targets: list[_Target] = []
        for key in ENERGY_KEYS:
            entity_id = registry.async_get_entity_id("sensor", DOMAIN, f"{serial}_{key}")
            if entity_id is not None:
                rows = await self._async_rows(entity_id, first - ANCHOR_LOOKBACK, now)
                targets.append(_Target(key, entity_id, rows, now))
        return targets

    async def _async_backfill_targets(
        self, serial: str, first: datetime, now: datetime, targets: list[_Target], *, open_end: bool
    ) -> None:
        """Write the targets' hours up to each one's ``last`` from the meter's history.

        ``open_end``: ``last`` is the last hour before the meter's first poll, which the
        recorder's hours continue; else ``last`` is the closing row.
        """
        if not targets:
            return
        history = await self._async_meter_history(
            serial, first, max(target.last for target in targets), now
        )
        for target in targets:
            await self._async_write_backfill(target, history, first, open_end=open_end)

    async def _async_statistic_meta(self, entity_id: str) -> StatisticMetaData | None:
        """The statistic's metadata (before the recorder's first compile: the one it will give).

        A sensor the recorder has not compiled yet gets the unit of its state, as the recorder
        does.
        """
        metadata = await get_instance(self.hass).async_add_executor_job(
            partial(get_metadata, self.hass, statistic_ids={entity_id})
        )
        if entity_id in metadata:
            old_meta = metadata[entity_id][1]
            unit = old_meta["unit_of_measurement"] or UnitOfEnergy.KILO_WATT_HOUR
            unit_class = old_meta.get("unit_class", EnergyConverter.UNIT_CLASS)
        elif (state := self.hass.states.get(entity_id)) is not None and (
            state.attributes.get(ATTR_UNIT_OF_MEASUREMENT) in EnergyConverter.VALID_UNITS
        ):
            unit = state.attributes[ATTR_UNIT_OF_MEASUREMENT]
            unit_class = EnergyConverter.UNIT_CLASS
        else:
            return None
        meta: dict[str, Any] = {
            "has_sum": True,
            "mean_type": StatisticMeanType.NONE,
            "name": None,
            "source": "recorder",
            "statistic_id": entity_id,
            "unit_of_measurement": unit,
        }
        if HAS_UNIT_CLASS:
            meta["unit_class"] = unit_class
        return cast("StatisticMetaData", meta)

    async def _async_close_seam(self, target: _Target, closing: datetime) -> None:
        """Move the recorder's rows from ``closing`` on to continue the week written before."""
        if (meta := await self._async_statistic_meta(target.entity_id)) is None:
            return
        unit = meta["unit_of_measurement"] or UnitOfEnergy.KILO_WATT_HOUR
        bound = rise_bound(None, unit)
        difference = seam_difference(
            target.rows,
            closing,
            lambda: CounterGuard(target.entity_id, bound, HISTORY_COUNTER_RESET),
        )
        if abs(difference) > ADJUST_EPSILON:
            LOGGER.debug("Moving %s from %s by %s", target.entity_id, closing, difference)
            get_instance(self.hass).async_adjust_statistics(
                target.entity_id, closing, difference, unit
            )

    async def _async_write_backfill(
        self, target: _Target, history: list[HistoryRow], first: datetime, *, open_end: bool
    ) -> None:
        entity_id = target.entity_id
        if (meta := await self._async_statistic_meta(entity_id)) is None:
            return
        recorder = get_instance(self.hass)
        unit = meta["unit_of_measurement"] or UnitOfEnergy.KILO_WATT_HOUR
        convert = EnergyConverter.converter_factory(UnitOfEnergy.KILO_WATT_HOUR, unit)
        series = SampleSeries(
            Sample(row.measured_at, convert(float(value)))
            for row in history
            if isinstance(value := row.reading.values.get(target.key), int | float)
        )
        tolerance = convert(STATE_TOLERANCE_KWH)
        bound = rise_bound(None, unit)
        plan = plan_backfill(
            target.rows,
            series,
            first,
            target.last,
            tolerance,
            new_guard=lambda: CounterGuard(entity_id, bound, HISTORY_COUNTER_RESET),
            open_end=open_end,
        )
        if not plan.rows and not plan.adjustments:
            return
        LOGGER.debug(
            "Backfilling %s: %d hours from %s, sum adjustments %s",
            entity_id,
            len(plan.rows),
            plan.rows[0].start if plan.rows else None,
            plan.adjustments,
        )
        # Adjustments first: each moves the existing rows from its hour on, and the rows written
        # below already hold their final sums.
        for start, difference in plan.adjustments:
            recorder.async_adjust_statistics(entity_id, start, difference, unit)
        if not plan.rows:
            return
        async_import_statistics(
            self.hass,
            meta,
            [StatisticData(start=row.start, state=row.state, sum=row.sum) for row in plan.rows],
        )
        if open_end:
            await self._async_continue_from(entity_id, meta, plan.rows[-1])

    async def _async_continue_from(
        self, entity_id: str, meta: StatisticMetaData, row: StatRow
    ) -> None:
        """Make the recorder continue ``row``: it continues its latest 5-minute row.

        The row is repeated as the 5-minute row at the end of its hour, unless the recorder
        compiled a later one already (then the closing row's seam check moves its rows).
        """
        recorder = get_instance(self.hass)
        start = row.start + HOUR - SHORT_TERM_PERIOD
        latest = await recorder.async_add_executor_job(
            get_last_short_term_statistics, self.hass, 1, entity_id, False, {"sum"}
        )
        if any(dt_util.utc_from_timestamp(r["start"]) >= start for r in latest.get(entity_id, [])):
            return
        recorder.async_import_statistics(
            meta, [StatisticData(start=start, state=row.state, sum=row.sum)], StatisticsShortTerm
        )

    async def _async_rows(self, statistic_id: str, start: datetime, end: datetime) -> list[StatRow]:
        """The hourly rows of ``statistic_id`` from ``start`` to ``end``."""
        result = await get_instance(self.hass).async_add_executor_job(
            statistics_during_period,
            self.hass,
            start,
            end,
            {statistic_id},
            "hour",
            None,
            {"state", "sum"},
        )
        return [
            StatRow(dt_util.utc_from_timestamp(row["start"]), state, total)
            for row in result.get(statistic_id, [])
            if (state := row.get("state")) is not None and (total := row.get("sum")) is not None
        ]

    async def _async_meter_history(
        self, serial: str, first: datetime, last: datetime, now: datetime
    ) -> list[HistoryRow]:
        """The meter's 5-minute history around ``[first, last]``, in as few calls as allowed."""
        offset = self.offset
        low = first - HOUR + (offset if offset is not None else -MAX_UTC_OFFSET)
        ahead = offset if offset is not None else MAX_UTC_OFFSET
        start_day = low.date()
        end_day = min((last + HOUR + ahead).date(), (now + ahead).date())
        step = timedelta(days=max_history_days(HISTORY_INTERVAL_S))
        rows: list[HistoryRow] = []
        while start_day <= end_day:
            chunk_end = min(start_day + step - timedelta(days=1), end_day)
            await self._async_spend(CallKind.METERDATALIST, serial, now)
            try:
                rows += await self.coordinator.client.meter_data_list(
                    serial, start_day, chunk_end, HISTORY_INTERVAL_S
                )
            except RateLimited as err:
                await self.coordinator.budget.async_back_off(
                    CallKind.METERDATALIST, serial, now + RATE_LIMIT_BACK_OFF
                )
                raise _Deferred(now + RATE_LIMIT_BACK_OFF) from err
            except IamMeterError as err:
                self._failures[serial] = failures = self._failures.get(serial, 0) + 1
                if failures >= MAX_FAILURES:
                    LOGGER.warning("Giving up the backfill of meter %s for now: %s", serial, err)
                    raise _GiveUp from err
                LOGGER.debug("Cannot read the history of %s: %s", serial, err)
                raise _Deferred(now + RETRY_AFTER_ERROR) from err
            start_day = chunk_end + timedelta(days=1)
        self._learn_offset(rows, now)
        return rows

    async def _async_spend(self, kind: CallKind, key: str, now: datetime) -> None:
        try:
            await self.coordinator.budget.async_spend(kind, key)
        except BudgetExceeded as err:
            LOGGER.debug("History call deferred by the call budget: %s", err)
            raise _Deferred(max(err.retry_at, now)) from err

    def _learn_offset(self, rows: Iterable[HistoryRow], now: datetime) -> None:
        """The account's UTC offset from a row with both times (rounded to 15 minutes)."""
        for row in rows:
            if row.local_time is not None:
                delta = row.local_time - row.measured_at.replace(tzinfo=None)
                self.offset = round(delta / OFFSET_GRANULARITY) * OFFSET_GRANULARITY
                self._offset_at = now
                return

    # --- site energy -------------------------------------------------------------------------

    async def _async_clock(self, now: datetime) -> AccountClock | None:
        """The account's clock; its offset is learned from a meter now and then."""
        fresh = self._offset_at is not None and now - self._offset_at < OFFSET_MAX_AGE
        serial = next(iter(sorted(self.coordinator.data or {})), None)
        if (self.offset is None or not fresh) and serial is not None:
            try:
                await self._async_spend(CallKind.METERDATA, serial, now)
                reading = await self.coordinator.client.meter_data(serial)
            except (_Deferred, IamMeterError) as err:
                LOGGER.debug("Cannot learn the IAMMETER account's time zone: %s", err)
            else:
                if reading.local_time is not None and reading.measured_at is not None:
                    delta = reading.local_time - reading.measured_at.replace(tzinfo=None)
                    self.offset = round(delta / OFFSET_GRANULARITY) * OFFSET_GRANULARITY
                    self._offset_at = now
        if self.offset is None:
            return None
        return AccountClock.from_offset(self.offset, dt_util.get_default_time_zone(), now)

    async def _async_sync_site(self, now: datetime) -> None:
        place = self.place_id
        if place is None or not self._site_due(now):
            return
        if (clock := await self._async_clock(now)) is None:
            self._site_retry = now + RETRY_AFTER_ERROR
            return
        today = clock.today(now)
        hourly_from = today - timedelta(days=SITE_HOURLY_DAYS - 1)
        oldest = hourly_from - timedelta(days=SITE_DAILY_DAYS)
        ids = {suffix: site_statistic_id(place, suffix) for suffix in SITE_FIELDS}
        recorder = get_instance(self.hass)
        resume = today
        for statistic_id in ids.values():
            last = await recorder.async_add_executor_job(
                get_last_statistics, self.hass, 1, statistic_id, False, {"sum"}
            )
            if not (rows := last.get(statistic_id)):
                resume = oldest
                break
            last_start = dt_util.utc_from_timestamp(rows[0]["start"])
            resume = min(resume, clock.today(last_start))
        resume = max(resume, oldest)
        try:
            daily: list[EnergyHistoryRow] = []
            if resume < hourly_from:
                daily = await self._async_energy(place, resume, hourly_from, "day", now)
            hourly = await self._async_energy(
                place, max(resume, hourly_from), today + timedelta(days=1), "hour", now
            )
        except _Deferred as deferred:
            self._site_retry = deferred.until
            return
        points: dict[str, dict[datetime, float]] = {suffix: {} for suffix in SITE_FIELDS}
        for row in daily:
            if row.time.date() < hourly_from:
                self._add_points(
                    points, clock.to_utc(datetime.combine(row.time.date(), time())), row
                )
        for row in hourly:
            if (start := clock.to_utc(row.time)) + HOUR <= now:
                self._add_points(points, start, row)
        resume_start = clock.to_utc(datetime.combine(resume, time()))
        count = 24 * ((today - resume).days + 2) + 1
        for suffix, statistic_id in ids.items():
            result = await recorder.async_add_executor_job(
                get_last_statistics, self.hass, count, statistic_id, False, {"state", "sum"}
            )
            existing = [
                StatRow(dt_util.utc_from_timestamp(row["start"]), row.get("state") or 0.0, total)
                for row in result.get(statistic_id, [])
                if (total := row.get("sum")) is not None
            ]
            planned = plan_site(existing, points[suffix], resume_start)
            if planned:
                async_add_external_statistics(
                    self.hass,
                    self._site_metadata(place, suffix, statistic_id),
                    [
                        StatisticData(start=row.start, state=row.state, sum=row.sum)
                        for row in planned
                    ],
                )
        self.site_hour, self.site_place = _hour_floor(now), place
        self._site_retry = None

    @staticmethod
    def _add_points(
        points: dict[str, dict[datetime, float]], start: datetime, row: EnergyHistoryRow
    ) -> None:
        for suffix, (attribute, _name) in SITE_FIELDS.items():
            value = getattr(row, attribute)
            points[suffix][start] = points[suffix].get(start, 0.0) + (value or 0.0)

    @staticmethod
    def _site_metadata(place: str, suffix: str, statistic_id: str) -> StatisticMetaData:
        meta: dict[str, Any] = {
            "has_sum": True,
            "mean_type": StatisticMeanType.NONE,
            "name": f"IAMMETER place {place} {SITE_FIELDS[suffix][1]}",
            "source": DOMAIN,
            "statistic_id": statistic_id,
            "unit_of_measurement": UnitOfEnergy.KILO_WATT_HOUR,
        }
        if HAS_UNIT_CLASS:
            meta["unit_class"] = EnergyConverter.UNIT_CLASS
        return cast("StatisticMetaData", meta)

    async def _async_energy(
        self, place: str, start: date, end: date, groupby: GroupBy, now: datetime
    ) -> list[EnergyHistoryRow]:
        await self._async_spend(CallKind.ENERGYHISTORY, place, now)
        try:
            return await self.coordinator.client.energy_history(place, start, end, groupby)
        except RateLimited as err:
            await self.coordinator.budget.async_back_off(
                CallKind.ENERGYHISTORY, place, now + RATE_LIMIT_BACK_OFF
            )
            raise _Deferred(now + RATE_LIMIT_BACK_OFF) from err
        except IamMeterError as err:
            LOGGER.warning("Cannot read the energy history of place %s: %s", place, err)
            raise _Deferred(now + HOUR) from err


async def async_setup_history(hass: HomeAssistant, entry: MeterHubConfigEntry) -> None:
    """Start the history jobs of a cloud entry (only when the recorder is there)."""
    if "recorder" not in hass.config.components:
        return
    manager = HistoryManager(hass, entry)
    managers = hass.data.setdefault(HISTORY_KEY, {})
    managers[entry.entry_id] = manager

    @callback
    def _forget() -> None:
        managers.pop(entry.entry_id, None)

    entry.async_on_unload(_forget)
    await manager.async_start()
