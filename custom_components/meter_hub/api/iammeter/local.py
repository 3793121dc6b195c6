"""Client for the local HTTP API of IAMMETER meters (``/api/monitor``, ``/monitorjson``).

Pure asyncio and aiohttp, no Home Assistant imports. The meters send the same value arrays as
the cloud (``Data``: one single-phase row of 5 or 7 values; ``Datas``: phases A, B, C and, with
net metering on, the net row), so ``iammeter.parse_values`` reads them into the same canonical
keys. Every answer names the meter that sent it (``SN``), so a reading never needs a second
request to vouch for it. The vendor's documents are in ../shared/vendor-docs/iammeter-local/.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

import aiohttp
from yarl import URL

from custom_components.meter_hub.api.homewizard.hosts import normalise_host
from custom_components.meter_hub.api.model import (
    MAX_ID_LENGTH,
    PHASES,
    MeterInfo,
    Reading,
    phase_key,
    vendor_text,
)
from custom_components.meter_hub.api.transport import (
    ACCEPT_ENCODING,
    BodyError,
    loggable,
    parse_json,
    read_body,
)
from custom_components.meter_hub.api.vendor_values import in_range, percent_number

from .errors import InvalidResponse
from .models import MANUFACTURER, MeterShape, model_of
from .parser import METER_KEYS, parse_values, retry_after_of

# The newest firmware's path first (it adds model, SSID and signal); every firmware has
# ``/monitorjson``. Both are public even with Admin Security on.
MONITOR_PATHS: Final = ("/api/monitor", "/monitorjson")
# The largest real answer (three-phase with the net row, reactive rows, SSID) is some 600
# bytes; 16 KiB leaves room and parses in microseconds.
MAX_BODY: Final = 16 * 1024
# The vendor's keys of the value arrays: ``data`` is the WEM3162's older spelling.
_VALUE_KEYS: Final = ("Datas", "Data", "data")
# What the not-ready answer carries as its serial (the JSON text "null", not null).
_NO_SERIAL: Final = "null"
# The values of an ``EA.Reactive`` row. Its power: the vendor's document says kvar but its
# examples (-119.0) and its own integration read var. Its counters: kvarh, bounded as the kWh
# counters of the value rows.
_REACTIVE_FIELDS: Final = (
    "reactive_power_var",
    "reactive_energy_inductive_kvarh",
    "reactive_energy_capacitive_kvarh",
)
# How long to send nothing after a 429 without ``Retry-After`` (the vendor names no figure; the
# flow's message says "wait a minute"): polling on at 1 s would hammer a meter that refuses.
DEFAULT_RETRY_AFTER: Final = timedelta(minutes=1)
_REACTIVE_BOUNDS: Final = ((-10_000_000, 10_000_000), (0, 1e10), (0, 1e10))


class IamMeterLocalError(Exception):
    """Base of every error of this client."""


class CannotConnect(IamMeterLocalError):
    """The meter is unreachable, too slow, or answered with an unexpected HTTP status."""


class NotIamMeter(IamMeterLocalError):
    """Something answers at the address, but not with an IAMMETER meter's monitor answer."""


class NoSerial(NotIamMeter):
    """A meter's answer without its serial (the WEM3162's older firmware): no device can be it."""


class NotReady(IamMeterLocalError):
    """The meter answers but has no values yet (just after it started): no values, no device."""


class AuthRequired(IamMeterLocalError):
    """The meter asks for its Admin Security credentials (HTTP 401), or refused the ones sent."""


class TooManyRequests(IamMeterLocalError):
    """HTTP 429 after refused credentials; ``retry_after`` is how long the meter asked to wait."""

    def __init__(self, text: str, retry_after: timedelta | None) -> None:
        """Keep the wait the meter asked for."""
        super().__init__(text)
        self.retry_after = retry_after


class WrongMeter(IamMeterLocalError):
    """Another meter (``serial``) answers at the address."""

    def __init__(self, host: str, serial: str) -> None:
        """Name the meter that answers instead."""
        super().__init__(f"another meter ({loggable(serial, 40)}) answers at {host}")
        self.serial = serial


@dataclass(frozen=True, slots=True)
class Credentials:
    """The Admin Security user and password (the password never in a repr)."""

    username: str
    password: str = field(repr=False)

    @property
    def header(self) -> str:
        """The ``Authorization`` header of HTTP Basic Auth."""
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"


@dataclass(frozen=True, slots=True)
class LocalMeter:
    """One answer of a meter: who it is and what it measures now."""

    serial: str
    shape: MeterShape
    reading: Reading
    model: str | None = None
    firmware: str | None = None

    def meter_info(self, host: str) -> MeterInfo:
        """The device this meter becomes: the model it names, else what its shape tells."""
        return MeterInfo(
            serial=self.serial,
            manufacturer=MANUFACTURER,
            model=self.model or model_of(self.shape),
            name=f"{MANUFACTURER} {self.serial}",
            sw_version=self.firmware,
            configuration_url=f"http://{host}",
        )


def parse_monitor(payload: object) -> LocalMeter:
    """A monitor answer (any of the documented shapes) as a ``LocalMeter``.

    Raises ``NotReady`` for the answer of a meter that has no values yet (null values, the
    serial "null"), ``NotIamMeter`` for anything else that is not a meter's answer. A value
    that is null or implausible is "not reported", as from the cloud.
    """
    if not isinstance(payload, dict):
        raise NotIamMeter(f"the answer is not a JSON object: {type(payload).__name__}")
    key = next((key for key in _VALUE_KEYS if key in payload), None)
    if key is None:
        raise NotIamMeter("the answer has no Data or Datas")
    values = payload[key]
    raw_serial = payload.get("SN")
    if raw_serial == _NO_SERIAL or values is None or not _has_number(values):
        raise NotReady("the meter has no values yet")
    serial = vendor_text(raw_serial, MAX_ID_LENGTH)
    if serial is None:
        # Its serial names the device in every registry: never a device without a valid one.
        raise NoSerial("the answer has no serial (SN) that is valid text")
    try:
        shape, out = parse_values(values)
    except InvalidResponse as err:
        raise NotIamMeter(f"{key}: {err}") from None
    out.update(_reactive(payload.get("EA")))
    if (ssid := vendor_text(payload.get("ssid"))) is not None:
        out["wifi_ssid"] = ssid
    if (signal := percent_number(payload.get("sig"))) is not None:
        out["wifi_strength"] = signal
    return LocalMeter(
        serial=serial,
        shape=shape,
        reading=Reading(values=out, expected=tuple(k for k in METER_KEYS if k != "measured_at")),
        model=vendor_text(payload.get("model")),
        firmware=vendor_text(payload.get("version")),
    )


def _has_number(values: object) -> bool:
    """Whether a value array holds any number (the not-ready answer holds only nulls)."""
    if isinstance(values, list):
        return any(_has_number(item) for item in values)
    return isinstance(values, int | float) and not isinstance(values, bool)


def _reactive(ea: object) -> dict[str, float]:
    """Reactive power and energy per phase from ``EA.Reactive``.

    Each row is ``[power, inductive kvarh, capacitive kvarh]`` (phases A, B, C); a value that is
    missing or out of bounds is "not reported", as everywhere.
    """
    rows = ea.get("Reactive") if isinstance(ea, dict) else None
    if not isinstance(rows, list) or len(rows) != len(PHASES):
        return {}
    out: dict[str, float] = {}
    for phase, row in zip(PHASES, rows, strict=True):
        if not isinstance(row, list):
            continue
        # a short row (older firmware) gives what it has
        fields = zip(_REACTIVE_FIELDS, _REACTIVE_BOUNDS, row, strict=False)
        for quantity, (low, high), value in fields:
            if (number := in_range(value, low, high)) is not None:
                out[phase_key(quantity, phase)] = float(number)
    return out


class IamMeterLocalClient:
    """One IAMMETER meter on the local network.

    ``credentials`` are sent only when given (a meter whose monitor paths answer 401 despite the
    vendor's "public"); after a 429 no request goes out before its ``Retry-After`` has passed.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        host: str,
        *,
        credentials: Credentials | None = None,
        timeout: float = 10,
    ) -> None:
        """Talk to ``host`` (see ``normalise_host``) through the caller's ``session``."""
        self.host: Final = normalise_host(host)
        self._session = session
        # the Admin Security credentials, sent only when set (a flow sets those the user typed)
        self.credentials = credentials
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._paths = list(MONITOR_PATHS)
        self._blocked_until: float | None = None

    async def monitor(self, serial: str | None = None) -> LocalMeter:
        """Read the meter (``WrongMeter`` when ``serial`` is given and another one answers).

        The first path the meter does not know (HTTP 404, older firmware) is not asked again.
        """
        loop_time = _loop_time()
        if self._blocked_until is not None and loop_time < self._blocked_until:
            wait = timedelta(seconds=self._blocked_until - loop_time)
            raise TooManyRequests(f"{self.host} asked to wait; not asked again yet", wait)
        while True:
            status, retry_after, body = await self._get(self._paths[0])
            if status == 404 and len(self._paths) > 1:
                self._paths.pop(0)
                continue
            break
        meter = await self._meter(status, retry_after, body)
        if serial is not None and meter.serial != serial:
            raise WrongMeter(self.host, meter.serial)
        return meter

    async def _meter(self, status: int, retry_after: str | None, body: bytes) -> LocalMeter:
        path = self._paths[0]
        if status == 401:
            raise AuthRequired(f"{self.host}{path} asks for credentials (HTTP 401)")
        if status == 429:
            wait = retry_after_of(retry_after)
            if wait is None:
                wait = DEFAULT_RETRY_AFTER
            self._blocked_until = _loop_time() + wait.total_seconds()
            raise TooManyRequests(f"{self.host}{path}: too many requests (HTTP 429)", wait)
        if status == 404:
            raise NotIamMeter(f"{self.host} has no monitor path (HTTP 404)")
        if status not in (200, 400):
            raise CannotConnect(f"{self.host}{path}: HTTP {status}")
        try:
            payload = await parse_json(body)
        except ValueError:
            raise NotIamMeter(f"{self.host}{path}: HTTP {status}, the body is not JSON") from None
        # The meter answers 400 with its not-ready body; any other 400 is no meter's answer.
        meter = parse_monitor(payload)
        if status == 400:
            raise NotIamMeter(f"{self.host}{path}: HTTP 400")
        return meter

    def _headers(self) -> dict[str, str]:
        if self.credentials is None:
            return ACCEPT_ENCODING
        return {**ACCEPT_ENCODING, "Authorization": self.credentials.header}

    async def _get(self, path: str) -> tuple[int, str | None, bytes]:
        """GET ``path``: status, ``Retry-After`` and body (read capped; redirects refused)."""
        try:
            async with self._session.get(
                URL(f"http://{self.host}{path}"),
                allow_redirects=False,
                timeout=self._timeout,
                headers=self._headers(),
                auto_decompress=False,
            ) as response:
                if 300 <= response.status < 400:
                    raise CannotConnect(f"{self.host}{path}: HTTP {response.status} redirect")
                body = await read_body(response, MAX_BODY)
                return response.status, response.headers.get("Retry-After"), body
        except TimeoutError:
            raise CannotConnect(f"{self.host}{path}: no answer in time") from None
        except BodyError as err:
            raise NotIamMeter(f"{self.host}{path}: {err}") from None
        except aiohttp.ClientError as err:
            # aiohttp's text may hold the URL with the credentials: only the error's kind
            raise CannotConnect(f"{self.host}{path}: {type(err).__name__}") from None


def _loop_time() -> float:
    return asyncio.get_running_loop().time()
