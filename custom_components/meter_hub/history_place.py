"""The place-energy sync: a place's ``energyhistory`` as external statistics.

With a place id in the options, the place's energy is imported as ``meter_hub:<place>_yield``
and so on: days older than the hourly window (7 days) from ``groupby=day`` (one row at local
midnight), the last 7 days by hour, then every hour the current local day again. Each run
resumes at the first day of the last rows it wrote, continues the running sum from the row
before that day and rewrites the rows from there on, so the sum never breaks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Final, cast

from homeassistant.components.recorder.models import (
    StatisticData,
    StatisticMeanType,
    StatisticMetaData,
)
from homeassistant.components.recorder.statistics import (
    async_add_external_statistics,
    get_last_statistics,
)
from homeassistant.const import UnitOfEnergy
from homeassistant.core import HomeAssistant
from homeassistant.helpers.recorder import get_instance
from homeassistant.util import dt as dt_util
from homeassistant.util.unit_conversion import EnergyConverter

from .api.budget import CallKind
from .api.iammeter import EnergyHistoryRow, GroupBy, IamMeterError
from .compat import HAS_UNIT_CLASS
from .const import CONF_PLACE_ID, DOMAIN, LOGGER
from .history_calls import Deferred, HistoryCalls
from .history_clock import LearnedClock
from .history_gaps import aware_time, iso_time
from .history_planning import HOUR, StatRow, hour_floor, plan_site, site_statistic_id

if TYPE_CHECKING:
    from .cloud_coordinator import CloudCoordinator

SITE_HOURLY_DAYS: Final = 7
SITE_DAILY_DAYS: Final = 90
SITE_FIELDS: Final[Mapping[str, tuple[Callable[[EnergyHistoryRow], float | None], str]]] = {
    # statistic id suffix: (the row's value, name)
    "yield": (lambda row: row.yield_kwh, "yield"),
    "from_grid": (lambda row: row.from_grid_kwh, "from grid"),
    "to_grid": (lambda row: row.to_grid_kwh, "to grid"),
    "self_use": (lambda row: row.self_use_kwh, "self use"),
    "special_load": (lambda row: row.special_load_kwh, "special load"),
}
RETRY_WITHOUT_CLOCK: Final = timedelta(minutes=30)

type Points = dict[str, dict[datetime, float]]
"""The energy of each hour (or day, at its first hour) by statistic id suffix."""


class PlaceEnergySync:
    """Imports the energy of the place in the entry's options, once an hour."""

    def __init__(
        self,
        hass: HomeAssistant,
        coordinator: CloudCoordinator,
        clock: LearnedClock,
        calls: HistoryCalls,
    ) -> None:
        """Sync the place of ``coordinator``'s entry, on the account's ``clock``."""
        self.hass = hass
        self._coordinator = coordinator
        self._clock = clock
        self._calls = calls
        self.synced_hour: datetime | None = None
        """The hour of the last sync (UTC)."""
        self.synced_place: str | None = None
        """The place of the last sync."""
        self.retry_at: datetime | None = None
        """When a sync that could not be done is tried again."""

    @property
    def place_id(self) -> str | None:
        """The place whose energy is imported, if the user gave one."""
        place = str(self._coordinator.config_entry.options.get(CONF_PLACE_ID) or "").strip()
        return place or None

    def restore(self, stored: dict[str, Any]) -> None:
        """Take the last sync from the history store."""
        self.synced_hour = aware_time(stored.get("site_hour"))
        self.synced_place = stored.get("site_place")

    def to_store(self) -> dict[str, Any]:
        """The sync's part of the history store."""
        return {"site_hour": iso_time(self.synced_hour), "site_place": self.synced_place}

    def diagnostics(self) -> dict[str, Any]:
        """The last sync and the next try (the place id is redacted there)."""
        return {
            "synced_hour": iso_time(self.synced_hour),
            CONF_PLACE_ID: self.synced_place,
            "retry_at": iso_time(self.retry_at),
        }

    def is_due(self, now: datetime) -> bool:
        """Whether the place has a sync due: one each hour, and at once for a new place."""
        if not self.place_id:
            return False
        if self.retry_at is not None and now < self.retry_at:
            return False
        return self.synced_hour != hour_floor(now) or self.synced_place != self.place_id

    async def async_run(self, now: datetime) -> None:
        """Import the place's days and hours from where the last run's rows begin."""
        place = self.place_id
        if place is None or not self.is_due(now):
            return
        if (clock := await self._clock.async_clock(now)) is None:
            self.retry_at = now + RETRY_WITHOUT_CLOCK
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
        except Deferred as deferred:
            self.retry_at = deferred.until
            return
        points: Points = {suffix: {} for suffix in SITE_FIELDS}
        for row in daily:
            if row.time.date() < hourly_from:
                _add_points(points, clock.to_utc(datetime.combine(row.time.date(), time())), row)
        for row in hourly:
            if (start := clock.to_utc(row.time)) + HOUR <= now:
                _add_points(points, start, row)
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
                    _metadata(place, suffix, statistic_id),
                    [
                        StatisticData(start=row.start, state=row.state, sum=row.sum)
                        for row in planned
                    ],
                )
        self.synced_hour, self.synced_place = hour_floor(now), place
        self.retry_at = None

    async def _async_energy(
        self, place: str, start: date, end: date, groupby: GroupBy, now: datetime
    ) -> list[EnergyHistoryRow]:
        client = self._coordinator.client
        try:
            return await self._calls.async_call(
                CallKind.ENERGYHISTORY,
                place,
                now,
                partial(client.energy_history, place, start, end, groupby),
            )
        except IamMeterError as err:
            LOGGER.warning("Cannot read the energy history of place %s: %s", place, err)
            raise Deferred(now + HOUR) from err


def _add_points(points: Points, start: datetime, row: EnergyHistoryRow) -> None:
    for suffix, (value_of, _name) in SITE_FIELDS.items():
        points[suffix][start] = points[suffix].get(start, 0.0) + (value_of(row) or 0.0)


def _metadata(place: str, suffix: str, statistic_id: str) -> StatisticMetaData:
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
