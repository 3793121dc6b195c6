"""The backfill's reads and writes of the recorder: a meter's energy statistics, hour by hour.

What to write is planned in ``history_planning``; this module reads the rows the plan starts
from and hands the plan to the recorder (sum adjustments first, then the rows).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Any, Final, NamedTuple, cast

from homeassistant.components.recorder.db_schema import StatisticsShortTerm
from homeassistant.components.recorder.models import (
    StatisticData,
    StatisticMeanType,
    StatisticMetaData,
)
from homeassistant.components.recorder.statistics import (
    async_import_statistics,
    get_last_short_term_statistics,
    get_metadata,
    statistics_during_period,
)
from homeassistant.const import ATTR_UNIT_OF_MEASUREMENT, UnitOfEnergy
from homeassistant.core import HomeAssistant
from homeassistant.helpers.recorder import get_instance
from homeassistant.util import dt as dt_util
from homeassistant.util.unit_conversion import EnergyConverter

from .api.iammeter import HistoryRow
from .compat import HAS_UNIT_CLASS
from .const import CLOUD_COUNTER_RESET, LOGGER
from .counter_guard import CounterGuard, rise_bound
from .history_planning import (
    ADJUST_EPSILON,
    HOUR,
    Sample,
    SampleSeries,
    StatRow,
    plan_backfill,
    seam_difference,
)

HISTORY_COUNTER_RESET: Final = CLOUD_COUNTER_RESET
"""History samples are 5 minutes apart, as the cloud's polls: the same reset rule."""
STATE_TOLERANCE_KWH: Final = 0.01
"""A kept row's counter may be this much behind the cloud's (rounding)."""
SHORT_TERM_PERIOD: Final = timedelta(minutes=5)
"""The recorder's short-term statistics period."""


class EnergyTarget(NamedTuple):
    """An energy sensor of a meter to backfill: its hourly rows, up to ``last``."""

    key: str
    entity_id: str
    rows: list[StatRow]
    last: datetime


class BackfillWriter:
    """Reads and writes the hourly statistics of the meters' energy sensors."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Use the recorder of ``hass``."""
        self.hass = hass

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

    async def async_close_seam(self, target: EnergyTarget, closing: datetime) -> None:
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

    async def async_write(
        self, target: EnergyTarget, history: list[HistoryRow], first: datetime, *, open_end: bool
    ) -> None:
        """Rewrite ``target``'s hours from ``first`` that ``history`` shows missing or stale."""
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

    async def async_rows(self, statistic_id: str, start: datetime, end: datetime) -> list[StatRow]:
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
