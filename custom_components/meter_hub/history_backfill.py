"""The energy backfill: the gaps of the ledger filled from the meters' 5-minute history.

For each meter of a gap: the week before a meter's first poll is written at once (the recorder
holds nothing of it); any other gap waits for the recorder's first hour after it (the closing
row), then its missing and stale hours are rewritten (``history_planning.plan_backfill``). A
meter whose history cannot be read is tried again after 30 minutes, and given up after three
failures; a call the budget or the cloud's rate limit refuses waits as long as it must.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er

from .api.budget import CallKind
from .api.iammeter import HistoryRow, IamMeterError, max_history_days
from .const import DOMAIN, LOGGER
from .history_calls import Deferred, HistoryCalls
from .history_clock import LearnedClock
from .history_gaps import BACKFILL_WINDOW, Gap, GapLedger, iso_time
from .history_planning import HISTORY_INTERVAL_S, HOUR, hour_floor, needs_history
from .history_recorder import BackfillWriter, EnergyTarget

if TYPE_CHECKING:
    from .cloud_coordinator import CloudCoordinator

ANCHOR_LOOKBACK: Final = timedelta(days=10)
"""How far before a gap the row to continue from is searched (the recorder's own memory: its
5-minute rows are kept 10 days, an older sum is not continued by the recorder either)."""
ENERGY_KEYS: Final = ("energy_import_kwh", "energy_export_kwh")
RETRY_AFTER_ERROR: Final = timedelta(minutes=30)
MAX_FAILURES: Final = 3
NEXT_HOUR_DELAY: Final = timedelta(minutes=2)
MAX_UTC_OFFSET: Final = timedelta(hours=14)


class _GiveUp(Exception):
    """The cloud keeps failing for this meter: drop the gap."""


class EnergyBackfill:
    """Fills the gaps of a ``GapLedger`` in the statistics of the meters' energy sensors."""

    def __init__(
        self,
        hass: HomeAssistant,
        coordinator: CloudCoordinator,
        gaps: GapLedger,
        clock: LearnedClock,
        calls: HistoryCalls,
    ) -> None:
        """Fill ``gaps`` for the meters of ``coordinator``; the history rows teach ``clock``."""
        self.hass = hass
        self._coordinator = coordinator
        self._gaps = gaps
        self._clock = clock
        self._calls = calls
        self._writer = BackfillWriter(hass)
        self.retry_at: dict[str, datetime] = {}
        """When each meter's backfill is looked at again."""
        self.failures: dict[str, int] = {}
        """Failed history reads of each meter in a row."""

    def diagnostics(self) -> dict[str, Any]:
        """Retry times and failures by meter (the serials are redacted there)."""
        return {
            "retry_at": {serial: iso_time(at) for serial, at in sorted(self.retry_at.items())},
            "failures": dict(sorted(self.failures.items())),
        }

    def has_work(self, now: datetime) -> bool:
        """Whether a gap has a meter that is due (or has left the account)."""
        data = self._coordinator.data or {}
        return any(
            serial not in data or now >= self.retry_at.get(serial, now)
            for gap in self._gaps.pending
            for serial in gap.serials
        )

    async def async_run(self, now: datetime) -> None:
        """Backfill every meter that is due, in every gap; drop the gaps that are done."""
        for gap in list(self._gaps.pending):
            for serial in sorted(gap.serials):
                if serial not in (self._coordinator.data or {}):
                    gap.serials.discard(serial)  # the meter left the account
                    continue
                if now < self.retry_at.get(serial, now):
                    continue
                try:
                    done = await self._async_backfill_meter(gap, serial, now)
                except Deferred as deferred:
                    self.retry_at[serial] = deferred.until
                    continue
                except _GiveUp:
                    done = True
                except HomeAssistantError as err:  # the recorder refused what was planned
                    LOGGER.warning("Cannot backfill the statistics of meter %s: %s", serial, err)
                    self.retry_at[serial] = now + RETRY_AFTER_ERROR
                    continue
                if done:
                    gap.serials.discard(serial)
                    self.failures.pop(serial, None)
                else:
                    # The recorder compiles an hour when it is over: look again after the next.
                    self.retry_at[serial] = hour_floor(now) + HOUR + NEXT_HOUR_DELAY
            if not gap.serials:
                self._gaps.pending.remove(gap)

    async def _async_backfill_meter(self, gap: Gap, serial: str, now: datetime) -> bool:
        """Backfill ``gap`` for one meter; False while the recorder has not closed it yet."""
        first = hour_floor(max(gap.start, gap.end - BACKFILL_WINDOW))
        gap_end_hour = hour_floor(gap.end)
        if gap.new and serial not in gap.written:
            # The recorder holds nothing of the week before: no closing row to wait for.
            week = [
                target._replace(last=gap_end_hour - HOUR)
                for target in await self._async_energy_targets(serial, first, now)
            ]
            await self._async_backfill_targets(serial, first, now, week, open_end=True)
            gap.written.add(serial)
            return False
        targets: list[EnergyTarget] = []
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
                await self._writer.async_close_seam(target, closing)
            elif needs_history(target.rows, first, closing):
                targets.append(target._replace(last=closing))
        await self._async_backfill_targets(serial, first, now, targets, open_end=False)
        return True

    async def _async_energy_targets(
        self, serial: str, first: datetime, now: datetime
    ) -> list[EnergyTarget]:
        """The meter's energy sensors with their hourly rows (to continue from, before ``first``)."""
        registry = er.async_get(self.hass)
        targets: list[EnergyTarget] = []
        for key in ENERGY_KEYS:
            entity_id = registry.async_get_entity_id("sensor", DOMAIN, f"{serial}_{key}")
            if entity_id is not None:
                rows = await self._writer.async_rows(entity_id, first - ANCHOR_LOOKBACK, now)
                targets.append(EnergyTarget(key, entity_id, rows, now))
        return targets

    async def _async_backfill_targets(
        self,
        serial: str,
        first: datetime,
        now: datetime,
        targets: list[EnergyTarget],
        *,
        open_end: bool,
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
            await self._writer.async_write(target, history, first, open_end=open_end)

    async def _async_meter_history(
        self, serial: str, first: datetime, last: datetime, now: datetime
    ) -> list[HistoryRow]:
        """The meter's 5-minute history around ``[first, last]``, in as few calls as allowed."""
        offset = self._clock.offset
        low = first - HOUR + (offset if offset is not None else -MAX_UTC_OFFSET)
        ahead = offset if offset is not None else MAX_UTC_OFFSET
        start_day = low.date()
        end_day = min((last + HOUR + ahead).date(), (now + ahead).date())
        step = timedelta(days=max_history_days(HISTORY_INTERVAL_S))
        client = self._coordinator.client
        rows: list[HistoryRow] = []
        while start_day <= end_day:
            chunk_end = min(start_day + step - timedelta(days=1), end_day)
            try:
                rows += await self._calls.async_call(
                    CallKind.METERDATALIST,
                    serial,
                    now,
                    partial(
                        client.meter_data_list, serial, start_day, chunk_end, HISTORY_INTERVAL_S
                    ),
                )
            except IamMeterError as err:
                self.failures[serial] = failures = self.failures.get(serial, 0) + 1
                if failures >= MAX_FAILURES:
                    LOGGER.warning("Giving up the backfill of meter %s for now: %s", serial, err)
                    raise _GiveUp from err
                LOGGER.debug("Cannot read the history of %s: %s", serial, err)
                raise Deferred(now + RETRY_AFTER_ERROR) from err
            start_day = chunk_end + timedelta(days=1)
        self._clock.learn_from_history(rows, now)
        return rows
