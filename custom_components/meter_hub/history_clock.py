"""The account's clock, learned in one place: the cloud's dates and local times are its wall clock.

The API does not say the account's time zone. A reading or a history row that carries both
the account's local time and UTC gives its offset; the backfill's history rows teach it for
free, and the place-energy sync asks one meter (``meterdata``) when the offset it knows is old.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from homeassistant.util import dt as dt_util

from .api.budget import CallKind
from .api.iammeter import HistoryRow, IamMeterError
from .const import LOGGER
from .history_calls import Deferred, HistoryCalls
from .history_gaps import aware_time, iso_time
from .history_planning import AccountClock

if TYPE_CHECKING:
    from .cloud_coordinator import CloudCoordinator

OFFSET_MAX_AGE: Final = timedelta(hours=12)
OFFSET_GRANULARITY: Final = timedelta(minutes=15)


class LearnedClock:
    """The account's UTC offset (rounded to 15 minutes) and when it was learned."""

    def __init__(self, coordinator: CloudCoordinator, calls: HistoryCalls) -> None:
        """Learn from the meters of ``coordinator``'s account, calling through ``calls``."""
        self._coordinator = coordinator
        self._calls = calls
        self.offset: timedelta | None = None
        self.learned_at: datetime | None = None

    def restore(self, stored: Mapping[str, Any]) -> None:
        """Take the offset of the last run from the history store."""
        if isinstance(minutes := stored.get("offset_min"), int):
            self.offset = timedelta(minutes=minutes)
            self.learned_at = aware_time(stored.get("offset_at"))

    def to_store(self) -> dict[str, Any]:
        """The clock's part of the history store."""
        return {
            "offset_min": None if self.offset is None else int(self.offset.total_seconds() // 60),
            "offset_at": iso_time(self.learned_at),
        }

    def diagnostics(self) -> dict[str, Any]:
        """The learned offset for the diagnostics download."""
        return self.to_store()

    def learn(self, local_time: datetime, utc_time: datetime, now: datetime) -> None:
        """The offset of the account's ``local_time`` (naive) from ``utc_time`` (aware)."""
        delta = local_time - utc_time.replace(tzinfo=None)
        self.offset = round(delta / OFFSET_GRANULARITY) * OFFSET_GRANULARITY
        self.learned_at = now

    def learn_from_history(self, rows: Iterable[HistoryRow], now: datetime) -> None:
        """Learn from the first history row with both times."""
        for row in rows:
            if row.local_time is not None:
                self.learn(row.local_time, row.measured_at, now)
                return

    async def async_clock(self, now: datetime) -> AccountClock | None:
        """The account's clock (None while no offset is known); an old offset is learned again."""
        fresh = self.learned_at is not None and now - self.learned_at < OFFSET_MAX_AGE
        serial = next(iter(sorted(self._coordinator.data or {})), None)
        if (self.offset is None or not fresh) and serial is not None:
            try:
                await self._calls.async_spend(CallKind.METERDATA, serial, now)
                reading = await self._coordinator.client.meter_data(serial)
            except (Deferred, IamMeterError) as err:
                LOGGER.debug("Cannot learn the IAMMETER account's time zone: %s", err)
            else:
                if reading.local_time is not None and reading.measured_at is not None:
                    self.learn(reading.local_time, reading.measured_at, now)
        if self.offset is None:
            return None
        return AccountClock.from_offset(self.offset, dt_util.get_default_time_zone(), now)
