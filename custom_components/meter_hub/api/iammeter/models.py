"""What the IAMMETER cloud client returns: credentials, readings, history and analyses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Final, Literal

from custom_components.meter_hub.api.model import MeterInfo, Reading

MANUFACTURER: Final = "IAMMETER"
MAX_HISTORY_POINTS: Final = 2000
"""Most rows one meterdatalist call returns (vendor: 1-minute data covers 1.39 days)."""

type GroupBy = Literal["hour", "day"]


def max_history_days(interval_s: int) -> int:
    """Most days one meterdatalist call covers at ``interval_s`` (its end date is inclusive)."""
    return MAX_HISTORY_POINTS * interval_s // 86_400


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a login returns; the repr shows the account id only."""

    account_id: str
    token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)


class MeterShape(StrEnum):
    """The layout of a meter's ``values``, which tells single- from three-phase meters."""

    SINGLE_PHASE_BASIC = "single_phase_basic"  # [V, I, P, import kWh, export kWh]
    SINGLE_PHASE_PF = "single_phase_pf"  # [V, I, P, PF, import kWh, export kWh]
    SINGLE_PHASE_FULL = "single_phase_full"  # [V, I, P, import kWh, export kWh, Hz, PF]
    THREE_PHASE = "three_phase"  # rows A, B, C
    THREE_PHASE_NET = "three_phase_net"  # rows A, B, C and the net-metering row


# The vendor's product list names one single-phase meter (WEM3080) and three three-phase ones
# (WEM3080T, WEM3046T, WEM3050T) that the values cannot tell apart. Net metering is a setting of
# a three-phase meter, not a model.
_SINGLE_PHASE_MODEL: Final = "Single-phase meter (WEM3080)"
_THREE_PHASE_MODEL: Final = "Three-phase meter"


def model_of(shape: MeterShape | None) -> str | None:
    """The model a meter's shape tells (None before its first values)."""
    if shape in (MeterShape.THREE_PHASE, MeterShape.THREE_PHASE_NET):
        return _THREE_PHASE_MODEL
    return None if shape is None else _SINGLE_PHASE_MODEL


@dataclass(frozen=True, slots=True)
class MeterReading:
    """The latest upload of one meter."""

    sn: str
    measured_at: datetime | None  # gmtTime: when the meter uploaded, UTC
    local_time: datetime | None  # localTime (meterdata only): the account's wall clock, naive
    shape: MeterShape | None  # None: the meter has not uploaded yet (values null)
    reading: Reading

    @property
    def meter_info(self) -> MeterInfo:
        """The device this meter becomes; the model is only what the shape tells."""
        model = model_of(self.shape)
        # The API does not give the name a meter has in the IAMMETER app: the SN names it.
        return MeterInfo(
            serial=self.sn, manufacturer=MANUFACTURER, model=model, name=f"{MANUFACTURER} {self.sn}"
        )


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One row of meterdatalist/meterdatalist2."""

    measured_at: datetime  # UTC
    local_time: datetime | None  # the account's wall clock, naive
    shape: MeterShape
    reading: Reading


@dataclass(frozen=True, slots=True)
class PowerAnalysis:
    """powerAnalysis: power statistics (W) of the range; daytime is 8:00-20:00."""

    start_time: date | None
    end_time: date | None
    average: float | None
    average_daytime: float | None
    minimum: float | None
    maximum: float | None


@dataclass(frozen=True, slots=True)
class OfflineGap:
    """An offline period longer than the requested interval (local wall clock)."""

    start_time: datetime | None
    end_time: datetime | None
    duration: float | None  # minutes


@dataclass(frozen=True, slots=True)
class OfflineAnalysis:
    """offlineAnalysis: minutes offline out of the minutes of the range, and the long gaps."""

    start_time: date | None
    end_time: date | None
    offline_count: int | None  # minutes
    total_count: int | None  # minutes
    gaps: list[OfflineGap]


@dataclass(frozen=True, slots=True)
class EnergyHistoryRow:
    """One hour or day of a place's energy (kWh); ``time`` is the local start of the period."""

    time: datetime
    yield_kwh: float | None
    from_grid_kwh: float | None
    to_grid_kwh: float | None
    special_load_kwh: float | None
    self_use_kwh: float | None
