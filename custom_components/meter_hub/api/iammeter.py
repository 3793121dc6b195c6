"""Async client for the IAMMETER cloud API (``/api/v1``), and the parser of its value arrays.

No Home Assistant imports. The session is injected and TLS verification stays on. The token
goes in the ``token`` header only, never in a URL (the vendor's own clients, its Node-RED node
and WordPress plugin, send it that way; see ../shared/research/iammeter.md, section 2.5). Redirects
are never followed: the password and the token go only to the server the user chose. The
client does not count calls: the caller asks ``budget.CallBudget`` first.

Secrets (token, refresh token, password) never reach an exception message, a repr or a log
line: errors name the API path, never a URL with its query string, and aiohttp's own messages
(which embed the URL) are scrubbed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
import logging
import re
from typing import Final, Literal
from urllib.parse import quote

import aiohttp

from .model import (
    MAX_ID_LENGTH,
    MeterInfo,
    Reading,
    Value,
    exact_sum,
    phase_key,
    vendor_identifier,
    vendor_text,
)
from .transport import ACCEPT_ENCODING, BodyError, loggable, parse_json, read_body

_LOGGER = logging.getLogger(__name__)

DEFAULT_SERVER: Final = "https://www.iammeter.com"
MANUFACTURER: Final = "IAMMETER"
MAX_HISTORY_POINTS: Final = 2000
"""Most rows one meterdatalist call returns (vendor: 1-minute data covers 1.39 days)."""
ENERGY_HISTORY_MAX_DAYS: Final[Mapping[str, int]] = {"hour": 7, "day": 90}
MAX_BODY: Final = 2 * 1024 * 1024
"""Largest answer read, on the wire and decompressed. The largest real one is a day of
meterdatalist2 at 1 minute of a net-metering meter (2000 rows of 4): 545 KB; metersdata of 100
three-phase meters is 29 KB. 2 MiB leaves a factor of almost 4 and parses in the executor."""

type GroupBy = Literal["hour", "day"]

# Longer than any token a server could mean (a JWT fits): the token goes into every header.
MAX_TOKEN_LENGTH: Final = 4096

_TIME_FORMAT: Final = "%Y/%m/%d %H:%M:%S"  # "2024/2/22 3:46:20"; strptime accepts no padding
# Words in a ``successful: false`` message that say the call was refused for its frequency.
_RATE_LIMIT_WORDS: Final = ("too many", "too fast", "too frequent", "rate limit")


# --- errors ------------------------------------------------------------------------------------


class IamMeterError(Exception):
    """Base of every error of this client; ``vendor_message`` is the API's message, if any."""

    def __init__(self, text: str, *, vendor_message: str | None = None) -> None:
        """Build the message from our text and the vendor's message."""
        super().__init__(text if vendor_message is None else f"{text}: {vendor_message}")
        self.vendor_message = vendor_message


class CannotConnect(IamMeterError):
    """Network error, timeout, or HTTP 5xx."""


class InvalidAuth(IamMeterError):
    """The login was refused (wrong user name or password)."""


class TokenRejected(IamMeterError):
    """The API rejected the token: log in again."""


class RateLimited(IamMeterError):
    """The vendor's "returns nothing" past a limit (or HTTP 429); ``retry_after`` when known."""

    def __init__(
        self,
        text: str,
        *,
        vendor_message: str | None = None,
        retry_after: timedelta | None = None,
    ) -> None:
        """Store how long to wait, when the server said it."""
        super().__init__(text, vendor_message=vendor_message)
        self.retry_after = retry_after


class InvalidResponse(IamMeterError):
    """The answer is not the documented envelope or shape (or is larger than ``MAX_BODY``)."""


class Redirected(CannotConnect):
    """The server answered with a redirect, which is never followed."""


class ApiError(IamMeterError):
    """``successful: false`` for a reason other than auth, token or rate limit."""


# --- results -----------------------------------------------------------------------------------


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


# --- parsing the value arrays ------------------------------------------------------------------

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
    for item in _as_list(data, "metersdata"):
        entry = _as_dict(item, "metersdata entry")
        # The SN names the meter's device in every registry: an answer without a valid one is
        # broken, never a device with a bogus id.
        sn = vendor_text(entry.get("sn"), MAX_ID_LENGTH)
        if sn is None:
            raise InvalidResponse("metersdata entry without a valid sn")
        if entry.get("values") is None:
            reading = Reading(expected=METER_KEYS)
            readings[sn] = MeterReading(sn, _utc_time(entry.get("gmtTime")), None, None, reading)
            continue
        readings[sn] = _meter_reading(sn, entry.get("values"), entry.get("gmtTime"), None)
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
        for entry in _as_list(data, "metersdata")
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


def _meter_reading(sn: str, values: object, gmt: object, local: object) -> MeterReading:
    shape, measured_at, reading = _timed_reading(values, gmt)
    return MeterReading(sn, measured_at, _local_time(local), shape, reading)


def _history_row(row: object) -> HistoryRow | None:
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


def _power_analysis(data: dict[str, object]) -> PowerAnalysis:
    power = _BOUNDS["power_w"]
    return PowerAnalysis(
        start_time=_date(data.get("startTime")),
        end_time=_date(data.get("endTime")),
        average=_number(data.get("average"), power),
        average_daytime=_number(data.get("averageDaytime"), power),
        minimum=_number(data.get("minimum"), power),
        maximum=_number(data.get("maximum"), power),
    )


def _offline_analysis(data: dict[str, object]) -> OfflineAnalysis:
    def count(key: str) -> int | None:
        number = _number(data.get(key), _COUNT_BOUNDS)
        return None if number is None else int(number)

    gaps = [_as_dict(gap, "offline gap") for gap in _as_list(data.get("list"), "offline list")]
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


def _energy_row(row: object) -> EnergyHistoryRow | None:
    item = _as_dict(row, "energy history row")
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


def _as_dict(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise InvalidResponse(f"{what} is not an object: {type(value).__name__}")
    return value


def _as_list(value: object, what: str) -> list[object]:
    if not isinstance(value, list):
        raise InvalidResponse(f"{what} is not a list: {type(value).__name__}")
    return value


def max_history_days(interval_s: int) -> int:
    """Most days one meterdatalist call covers at ``interval_s`` (its end date is inclusive)."""
    return MAX_HISTORY_POINTS * interval_s // 86_400


def retry_after_of(header: str | None) -> timedelta | None:
    """A ``Retry-After`` in seconds (the HTTP-date form is not supported), capped at a day."""
    if header is None or not (header := header.strip()).isascii() or not header.isdecimal():
        return None
    return timedelta(seconds=min(int(header), 86_400))


# --- the client --------------------------------------------------------------------------------


class IamMeterClient:
    """One IAMMETER cloud account (or a self-hosted server with the same API)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        server: str = DEFAULT_SERVER,
        *,
        token: str | None = None,
        timeout: float = 20,
    ) -> None:
        """Use ``session`` (never closed here); ``token`` from a former login, if any."""
        self._session = session
        self._server = server.rstrip("/")
        self._token = token
        self._password: str | None = None  # while logging in
        self._timeout = timeout
        self.last_meters_payload: list[dict[str, object]] | None = None
        """The last metersdata answer's ``data``, known fields only (to store, for diagnostics)."""

    async def login(self, username: str, password: str) -> Credentials:
        """Log in (limited to 5/hour and 30/day per IP); the client keeps the new token."""
        body = {"userName": username, "password": password}
        # A refusal may repeat what was sent: the password is scrubbed like the token.
        self._password = password
        try:
            answer = await self._call("POST", "/api/v1/user/login", body=body)
        finally:
            self._password = None
        data = _as_dict(answer, "login data")
        # The tokens go into headers, the account id into the entry's unique id: valid text only.
        token = vendor_text(data.get("token"), MAX_TOKEN_LENGTH)
        refresh = vendor_text(data.get("refreshToken"), MAX_TOKEN_LENGTH)
        account = vendor_identifier(data.get("id"))
        if token is None or account is None:
            raise InvalidResponse("login answer has no valid token or account id")
        self._token = token
        return Credentials(account, token, refresh)

    async def meters_data(self) -> dict[str, MeterReading]:
        """The latest upload of every meter of the account (at most once per 5 minutes).

        The answer's ``data`` is kept in ``last_meters_payload`` once it parsed, with only the
        fields this client reads (see ``known_meters_fields``).
        """
        data = await self._call("GET", "/api/v1/site/metersdata")
        readings = parse_meters_data(data)
        self.last_meters_payload = known_meters_fields(data, readings)
        return readings

    async def meter_data(self, sn: str, *, advanced: bool = True) -> MeterReading:
        """The latest upload of one meter; ``advanced`` (meterdata2) adds the power factor."""
        endpoint = "meterdata2" if advanced else "meterdata"
        path = f"/api/v1/site/{endpoint}/{quote(sn, safe='')}"
        data = _as_dict(await self._call("GET", path), endpoint)
        return _meter_reading(sn, data.get("values"), data.get("gmtTime"), data.get("localTime"))

    async def meter_data_list(
        self, sn: str, start: date, end: date, interval_s: int, *, advanced: bool = True
    ) -> list[HistoryRow]:
        """History rows from ``start`` to ``end`` (inclusive, the account's local dates).

        Raises ``ValueError`` when the range holds more than ``MAX_HISTORY_POINTS`` rows (see
        ``max_history_days``) or the interval is shorter than the meters' one minute.
        """
        days = (end - start).days + 1
        if interval_s < 60 or not 1 <= days <= max_history_days(interval_s):
            raise ValueError(
                f"{days} days at {interval_s} s is outside 1..{max_history_days(interval_s)} "
                f"days ({MAX_HISTORY_POINTS} points at most, interval at least 60 s)"
            )
        endpoint = "meterdatalist2" if advanced else "meterdatalist"
        params = {"interval": str(interval_s), **_range(start, end)}
        data = await self._call("GET", f"/api/v1/site/{endpoint}/{quote(sn, safe='')}", params)
        rows = (_history_row(row) for row in _as_list(data, endpoint))
        return [row for row in rows if row is not None]

    async def power_analysis(
        self, sn: str, start: date | None = None, end: date | None = None
    ) -> PowerAnalysis:
        """Power statistics of a range (default: the last 7 days); 5 calls a day per SN."""
        data = await self._call(
            "GET", "/api/v1/site/powerAnalysis", {"sn": sn, **_range(start, end)}
        )
        return _power_analysis(_as_dict(data, "powerAnalysis"))

    async def offline_analysis(
        self,
        sn: str,
        start: date | None = None,
        end: date | None = None,
        interval_min: int | None = None,
    ) -> OfflineAnalysis:
        """Offline minutes and gaps longer than ``interval_min``; 5 calls a day per SN."""
        params = {"sn": sn, **_range(start, end)}
        if interval_min is not None:
            params["interval"] = str(interval_min)
        data = await self._call("GET", "/api/v1/site/offlineAnalysis", params)
        return _offline_analysis(_as_dict(data, "offlineAnalysis"))

    async def energy_history(
        self, place_id: int | str, start: date, end: date, groupby: GroupBy
    ) -> list[EnergyHistoryRow]:
        """A place's hourly or daily energy from ``start`` up to ``end`` (exclusive).

        The vendor's examples return 5/5 only for 2024-05-05..2024-05-06, so the end date is
        exclusive. Raises ``ValueError`` beyond 7 days (hour) or 90 days (day).
        """
        days = (end - start).days
        if not 1 <= days <= ENERGY_HISTORY_MAX_DAYS[groupby]:
            raise ValueError(
                f"{days} days by {groupby} is outside 1..{ENERGY_HISTORY_MAX_DAYS[groupby]}"
            )
        path = f"/api/v1/site/energyhistory/{quote(str(place_id), safe='')}"
        data = await self._call("GET", path, {**_range(start, end), "groupby": groupby})
        rows = (_energy_row(row) for row in _as_list(data, "energyhistory"))
        return [row for row in rows if row is not None]

    async def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        body: Mapping[str, str] | None = None,
    ) -> object:
        """Send one request and return the envelope's ``data``; typed errors otherwise."""
        login = body is not None
        headers = dict(ACCEPT_ENCODING)
        if not login:
            if self._token is None:
                raise TokenRejected(f"{path}: no token, log in first")
            headers["token"] = self._token
        try:
            # the whole call, body and parsing included, within the timeout
            async with asyncio.timeout(self._timeout):
                async with self._session.request(
                    method,
                    self._server + path,
                    params=params,
                    json=body,
                    headers=headers,
                    allow_redirects=False,
                    auto_decompress=False,
                ) as response:
                    status, retry_after = response.status, response.headers.get("Retry-After")
                    if 300 <= status < 400:
                        # Followed, it could carry the password or the token to another host,
                        # or over plain http.
                        raise Redirected(f"{path}: HTTP {status} redirect, not followed") from None
                    raw = await read_body(response, MAX_BODY)
                _LOGGER.debug("%s %s: HTTP %s, %d bytes", method, path, status, len(raw))
                return await self._answer(path, status, retry_after, raw, login=login)
        except TimeoutError:
            raise CannotConnect(f"{path}: no answer within {self._timeout} s") from None
        except BodyError as err:
            raise InvalidResponse(f"{path}: {err}") from None
        except aiohttp.ClientError as err:
            # aiohttp's messages can hold the URL and the server's text: scrub, drop the chain.
            raise CannotConnect(f"{path}: {self._scrub(f'{type(err).__name__}: {err}')}") from None

    async def _answer(
        self, path: str, status: int, retry_after: str | None, raw: bytes, *, login: bool
    ) -> object:
        """The envelope's ``data`` of an answer read whole; typed errors otherwise."""
        self._check_status(path, status, retry_after, raw, login=login)
        try:
            payload = await parse_json(raw)
        except ValueError:
            raise InvalidResponse(f"{path}: HTTP {status}, the body is not JSON") from None
        return self._data(path, status, payload, login=login)

    @staticmethod
    def _check_status(
        path: str, status: int, retry_after: str | None, raw: bytes, *, login: bool
    ) -> None:
        """Raise the error an HTTP status (or an empty answer) stands for."""
        # Rate limit or broken answer? The vendor only says that past a limit "the API will
        # return nothing"; every normal answer, including refusals, carries the JSON envelope.
        # So HTTP 200 with an empty body is the limit (as is a standard 429), a non-empty body
        # that is not the envelope (a proxy's HTML page, cut-off JSON) is a broken answer, and a
        # refusal whose message talks about frequency is the limit too.
        if status == 429 or (status == 200 and not raw.strip()):
            raise RateLimited(
                f"{path}: rate limited (HTTP {status})", retry_after=retry_after_of(retry_after)
            )
        if status in (401, 403):
            raise (InvalidAuth if login else TokenRejected)(f"{path}: HTTP {status}")
        if status >= 500:
            raise CannotConnect(f"{path}: HTTP {status}")

    def _data(self, path: str, status: int, payload: object, *, login: bool) -> object:
        """Check the ``{data, successful, message}`` envelope and return its ``data``."""
        if not isinstance(payload, dict):
            raise InvalidResponse(f"{path}: the answer is not an object")
        message = (
            self._scrub(payload["message"]) if isinstance(payload.get("message"), str) else None
        )
        if payload.get("successful") is False:
            raise self._refusal(path, message, login=login)
        if status != 200 or payload.get("successful") is not True:
            raise InvalidResponse(
                f"{path}: HTTP {status}, not a successful answer", vendor_message=message
            )
        if payload.get("data") is None:
            raise InvalidResponse(f"{path}: the answer has no data", vendor_message=message)
        return payload["data"]

    @staticmethod
    def _refusal(path: str, message: str | None, *, login: bool) -> IamMeterError:
        """The error for ``successful: false``, chosen by what the message talks about."""
        text = (message or "").lower()
        if any(word in text for word in _RATE_LIMIT_WORDS):
            return RateLimited(f"{path}: rate limited", vendor_message=message)
        if login:
            return InvalidAuth(f"{path}: login refused", vendor_message=message)
        if "token" in text:
            return TokenRejected(f"{path}: token rejected", vendor_message=message)
        return ApiError(f"{path}: refused", vendor_message=message)

    def _scrub(self, text: str) -> str:
        """``text`` without query strings, the token and (while logging in) the password.

        Shortened and escaped as any vendor text (``loggable``).
        """
        text = re.sub(r"\?[^\s'\")]*", "?…", text)
        for secret in (self._token, self._password):
            if secret:
                text = text.replace(secret, "…")
        return loggable(text)


def _range(start: date | None, end: date | None) -> dict[str, str]:
    """The ``startTime``/``endTime`` parameters of the dates given."""
    dates = {"startTime": start, "endTime": end}
    return {name: day.isoformat() for name, day in dates.items() if day is not None}
