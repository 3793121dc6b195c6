"""The parser of the IAMMETER cloud's answers: value arrays, readings, history rows, analyses.

No I/O: every function takes what the API's envelope held in ``data`` and returns the models,
or raises ``InvalidResponse`` for a layout the vendor does not document.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Final

from custom_components.meter_hub.api.model import (
    MAX_ID_LENGTH,
    Reading,
    Value,
    exact_sum,
    phase_key,
    vendor_text,
)

from .errors import InvalidResponse
from .models import (
    EnergyHistoryRow,
    HistoryRow,
    MeterReading,
    MeterShape,
    OfflineAnalysis,
    OfflineGap,
    PowerAnalysis,
)

_TIME_FORMAT: Final = "%Y/%m/%d %H:%M:%S"  # "2024/2/22 3:46:20"; strptime accepts no padding


# Field order of a row, by its length. 6 values (meterdata2) put PF fourth, as the vendor's
# example shows (0.66 between 111 W and 5724.85 kWh); 7 values follow the meters' own format.
_ROW_FIELDS: Final[Mapping[int, tuple[str, ...]]] = {
    5: ("voltage_v", "current_a", "power_w", "energy_import_kwh", "energy_export_kwh"),
    6: (
        "voltage_v",
        "current_a",
        "power_w",
        "power_factor",
        "energy_import_kwh",
        "energy_export_kwh",
    ),
    7: (
        "voltage_v",
        "current_a",
        "power_w",
        "energy_import_kwh",
        "energy_export_kwh",
        "frequency_hz",
        "power_factor",
    ),
}
_SINGLE_PHASE_SHAPES: Final = {
    5: MeterShape.SINGLE_PHASE_BASIC,
    6: MeterShape.SINGLE_PHASE_PF,
    7: MeterShape.SINGLE_PHASE_FULL,
}
# What the net-metering row's fields become. Its current is a placeholder (documented as 0) and
# not a total current, so it is left out; its power is the signed grid exchange.
_NET_ROW_KEYS: Final = {
    "voltage_v": "voltage_v",  # reference voltage
    "power_w": "grid_power_w",
    "energy_import_kwh": "energy_import_kwh",
    "energy_export_kwh": "energy_export_kwh",
    "frequency_hz": "frequency_hz",
    "power_factor": "power_factor",
}
# Plausible range of each quantity; anything outside (or not a number) is "not reported".
_BOUNDS: Final[Mapping[str, tuple[float, float]]] = {
    "voltage_v": (0, 1_000),
    "current_a": (-10_000, 10_000),
    "power_w": (-10_000_000, 10_000_000),
    "power_factor": (-1, 1),
    "frequency_hz": (0, 100),
    "energy_import_kwh": (0, 1e10),
    "energy_export_kwh": (0, 1e10),
}
_COUNT_BOUNDS: Final = (0, 1e9)
_ANY_BOUNDS: Final = (
    min(low for low, _ in _BOUNDS.values()),
    max(high for _, high in _BOUNDS.values()),
)
# What every meter has, reported or not: while a phase or the whole upload is missing, these
# sensors are unavailable rather than absent (or, for a total, smaller).
METER_KEYS: Final = (
    "power_w",
    "grid_power_w",
    "energy_import_kwh",
    "energy_export_kwh",
    "measured_at",
)
# Length of a flat history row's numbers -> values per row (1, 3 or 4 rows of 5, 6 or 7).
_FLAT_ROW_LENGTH: Final = {rows * length: length for rows in (1, 3, 4) for length in _ROW_FIELDS}


def parse_values(values: object) -> tuple[MeterShape, dict[str, Value]]:
    """Turn a ``values`` array into its shape and canonical keys.

    A flat list is one single-phase row; a list of 1 row is single-phase; 3 rows are phases A, B,
    C; a 4th row is the net-metering result, never a phase. null or an implausible value means
    "not reported"; a row of nulls is an absent phase. Raises ``InvalidResponse`` for any other
    layout.
    """
    rows = _rows(values)
    net = _row(rows[3]) if len(rows) == 4 else None
    if len(rows) == 1:
        shape, out = _SINGLE_PHASE_SHAPES[len(rows[0])], dict[str, Value](_row(rows[0]))
    else:
        shape = MeterShape.THREE_PHASE if net is None else MeterShape.THREE_PHASE_NET
        out = _phases(rows[:3], sum_counters=net is None)
    if net is not None:
        out.update({_NET_ROW_KEYS[q]: v for q, v in net.items() if q in _NET_ROW_KEYS})
    elif "power_w" in out:
        out["grid_power_w"] = out["power_w"]
    return shape, out


def _phases(rows: list[list[object]], *, sum_counters: bool) -> dict[str, Value]:
    """Per-phase keys of rows A, B, C, and the totals that every phase reports its part of.

    A missing phase makes a total absent, never smaller. The counters are not summed when the
    meter sends its net counters (they are not the sum of the phases).
    """
    phases = [_row(row) for row in rows]
    out: dict[str, Value] = {
        phase_key(q, n): v for n, phase in enumerate(phases, 1) for q, v in phase.items()
    }
    summed = ("power_w", "energy_import_kwh", "energy_export_kwh") if sum_counters else ("power_w",)
    for quantity in summed:
        parts = [phase[quantity] for phase in phases if quantity in phase]
        if len(parts) == len(phases):
            out[quantity] = exact_sum(parts)
    return out


def _rows(values: object) -> list[list[object]]:
    """The rows of a ``values`` array, checked against the documented layouts."""
    if not isinstance(values, list) or not values:
        raise InvalidResponse(f"values is not a non-empty list: {type(values).__name__}")
    nested = [isinstance(item, list) for item in values]
    rows: list[list[object]] = values if all(nested) else [values]
    if (any(nested) and not all(nested)) or len(rows) not in (1, 3, 4):
        raise InvalidResponse(f"values has an unknown layout ({len(values)} items)")
    lengths = sorted({len(row) for row in rows})
    if not set(lengths) <= _ROW_FIELDS.keys():
        raise InvalidResponse(f"values has rows of unknown length {lengths}")
    return rows


def _row(row: list[object]) -> dict[str, float]:
    """The reported fields of one row, keyed by quantity."""
    fields = _ROW_FIELDS[len(row)]
    numbers = {q: _number(v, _BOUNDS[q]) for q, v in zip(fields, row, strict=True)}
    return {q: n for q, n in numbers.items() if n is not None}


def _number(value: object, bounds: tuple[float, float]) -> float | None:
    """``value`` as a float when it is a real number within ``bounds``, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    low, high = bounds
    # Compared before float(): a huge int would overflow, and NaN fails every comparison.
    return float(value) if low <= value <= high else None


def _local_time(text: object) -> datetime | None:
    """A vendor time string as a naive datetime, or None."""
    if not isinstance(text, str):
        return None
    try:
        # Naive on purpose: the account's wall clock, whose zone the API does not give.
        return datetime.strptime(text.strip(), _TIME_FORMAT)  # noqa: DTZ007
    except ValueError:
        return None


def _utc_time(text: object) -> datetime | None:
    """A vendor GMT time string as an aware UTC datetime, or None."""
    parsed = _local_time(text)
    return None if parsed is None else parsed.replace(tzinfo=UTC)


def _date(text: object) -> date | None:
    """A ``YYYY-MM-DD`` string as a date, or None."""
    try:
        return date.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def parse_meters_data(data: object) -> dict[str, MeterReading]:
    """The readings of a metersdata answer's ``data``, by SN (also for a stored answer).

    A meter whose ``values`` is null has not uploaded yet: it stays in the account, with an
    empty reading, and does not fail the others.
    """
    readings: dict[str, MeterReading] = {}
    for item in as_list(data, "metersdata"):
        entry = as_dict(item, "metersdata entry")
        # The SN names the meter's device in every registry: an answer without a valid one is
        # broken, never a device with a bogus id.
        sn = vendor_text(entry.get("sn"), MAX_ID_LENGTH)
        if sn is None:
            raise InvalidResponse("metersdata entry without a valid sn")
        if entry.get("values") is None:
            reading = Reading(expected=METER_KEYS)
            readings[sn] = MeterReading(sn, _utc_time(entry.get("gmtTime")), None, None, reading)
            continue
        readings[sn] = parse_meter_reading(sn, entry.get("values"), entry.get("gmtTime"), None)
    return readings


def known_meters_fields(
    data: object, readings: Mapping[str, MeterReading]
) -> list[dict[str, object]]:
    """The entries of a parsed metersdata ``data`` (those in ``readings``), known fields only.

    ``sn``, ``values`` and ``gmtTime`` as ``parse_meters_data`` understands them: a value that
    is not a plausible number is null (which it reads as "not reported"), a time that does not
    parse is null. Whatever else the cloud sends (a ``10**30``, a nested object) is left out, so
    the result is small, JSON of any encoder, and parses to the same readings.
    """
    return [
        {
            "sn": entry["sn"],
            "values": _plain(entry.get("values")),
            "gmtTime": gmt if _utc_time(gmt := entry.get("gmtTime")) is not None else None,
        }
        for entry in as_list(data, "metersdata")
        if isinstance(entry, dict) and entry.get("sn") in readings
    ]


def _plain(values: object) -> object:
    """A ``values`` array with every item that is not a number within bounds as null."""
    if isinstance(values, list):
        return [
            _plain(item) if isinstance(item, list) else _number(item, _ANY_BOUNDS)
            for item in values
        ]
    return None


def _timed_reading(values: object, gmt: object) -> tuple[MeterShape, datetime | None, Reading]:
    """Shape, upload time and reading of a ``values`` array and its ``gmtTime``."""
    shape, out = parse_values(values)
    measured_at = _utc_time(gmt)
    if measured_at is not None:
        out["measured_at"] = measured_at
    return shape, measured_at, Reading(values=out, expected=METER_KEYS)


def parse_meter_reading(sn: str, values: object, gmt: object, local: object) -> MeterReading:
    """A meterdata answer's reading of meter ``sn`` (``local``: its localTime, if any)."""
    shape, measured_at, reading = _timed_reading(values, gmt)
    return MeterReading(sn, measured_at, _local_time(local), shape, reading)


def parse_history_row(row: object) -> HistoryRow | None:
    """One history row of either documented form; None when it has no usable UTC time."""
    if isinstance(row, dict):
        values, gmt, local = row.get("values"), row.get("gmtTime"), row.get("rtcTime")
    elif isinstance(row, list) and len(row) > 2:
        # The table says "[..., utc time, local time]", but both examples start the first string
        # at 0:00 of the requested day and the object form lists rtcTime (local) before gmtTime,
        # with the same offset: the first string is the local time, the second UTC.
        *numbers, local, gmt = row
        length = _FLAT_ROW_LENGTH.get(len(numbers))
        if length is None:
            raise InvalidResponse(f"history row has {len(numbers)} values")
        values = [numbers[i : i + length] for i in range(0, len(numbers), length)]
    else:
        raise InvalidResponse(f"history row is a {type(row).__name__}")
    shape, measured_at, reading = _timed_reading(values, gmt)
    if measured_at is None:
        return None
    return HistoryRow(measured_at, _local_time(local), shape, reading)


def parse_power_analysis(data: dict[str, object]) -> PowerAnalysis:
    """The ``data`` of a powerAnalysis answer."""
    power = _BOUNDS["power_w"]
    return PowerAnalysis(
        start_time=_date(data.get("startTime")),
        end_time=_date(data.get("endTime")),
        average=_number(data.get("average"), power),
        average_daytime=_number(data.get("averageDaytime"), power),
        minimum=_number(data.get("minimum"), power),
        maximum=_number(data.get("maximum"), power),
    )


def parse_offline_analysis(data: dict[str, object]) -> OfflineAnalysis:
    """The ``data`` of an offlineAnalysis answer."""

    def count(key: str) -> int | None:
        number = _number(data.get(key), _COUNT_BOUNDS)
        return None if number is None else int(number)

    gaps = [as_dict(gap, "offline gap") for gap in as_list(data.get("list"), "offline list")]
    return OfflineAnalysis(
        start_time=_date(data.get("startTime")),
        end_time=_date(data.get("endTime")),
        offline_count=count("offlineCount"),
        total_count=count("totalCount"),
        gaps=[
            OfflineGap(
                start_time=_local_time(gap.get("startTime")),
                end_time=_local_time(gap.get("endTime")),
                duration=_number(gap.get("duration"), _COUNT_BOUNDS),
            )
            for gap in gaps
        ],
    )


def parse_energy_row(row: object) -> EnergyHistoryRow | None:
    """One row of an energyhistory answer; None when its time does not parse."""
    item = as_dict(row, "energy history row")
    time = _local_time(item.get("time"))
    if time is None:
        return None
    energy = _BOUNDS["energy_import_kwh"]
    return EnergyHistoryRow(
        time=time,
        yield_kwh=_number(item.get("yield"), energy),
        from_grid_kwh=_number(item.get("fromGrid"), energy),
        to_grid_kwh=_number(item.get("toGrid"), energy),
        special_load_kwh=_number(item.get("specialLoad"), energy),
        self_use_kwh=_number(item.get("selfUse"), energy),
    )


def as_dict(value: object, what: str) -> dict[str, object]:
    """``value`` when it is a JSON object, else ``InvalidResponse`` naming ``what``."""
    if not isinstance(value, dict):
        raise InvalidResponse(f"{what} is not an object: {type(value).__name__}")
    return value


def as_list(value: object, what: str) -> list[object]:
    """``value`` when it is a JSON list, else ``InvalidResponse`` naming ``what``."""
    if not isinstance(value, list):
        raise InvalidResponse(f"{what} is not a list: {type(value).__name__}")
    return value


def retry_after_of(header: str | None) -> timedelta | None:
    """A ``Retry-After`` in seconds (the HTTP-date form is not supported), capped at a day."""
    if header is None or not (header := header.strip()).isascii() or not header.isdecimal():
        return None
    return timedelta(seconds=min(int(header), 86_400))
