"""Client for the local HTTP API v1 of HomeWizard Energy devices.

Reads ``/api`` and ``/api/v1/data`` (every device), ``/api/v1/state`` (the Energy Socket) and
``/api/v1/system``; writes the state, the system settings and ``/api/v1/identify``
(``api.controls.DeviceControls``).

Pure asyncio and aiohttp, no Home Assistant imports. ``parse_data`` turns a ``/api/v1/data``
payload into the normalised ``Reading`` of ``model.py``; it never raises on a bad field (the field
is left out, which means "not reported"), only on a payload that is not a JSON object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import partial
import ipaddress
import re
from typing import Any, Final, Literal
import weakref

import aiohttp
from yarl import URL

from .controls import Control
from .model import (
    BATTERY_MODES,
    MAX_ID_LENGTH,
    TARIFFS,
    ExternalMeter,
    MeterInfo,
    Reading,
    Value,
    tariff_key,
    vendor_identifier,
    vendor_text,
)
from .transport import (
    ACCEPT_ENCODING,
    BodyError,
    decode_json,
    diagnostic_copy,
    loggable,
    parse_json,
    read_body,
)
from .vendor_values import (
    MAX_NUMBER,
    Check,
    count_number,
    electrical_fields,
    in_range,
    percent_number,
    signed_number,
    smart_meter_id,
    tariff_number,
    text_value,
    unsigned_number,
)

MANUFACTURER: Final = "HomeWizard"

MODEL_NAMES: Final = {
    "HWE-P1": "P1 Meter",
    "HWE-SKT": "Energy Socket",
    "HWE-WTR": "Watermeter",
    "HWE-KWH1": "kWh Meter 1-phase",
    "HWE-KWH3": "kWh Meter 3-phase",
    "SDM230-wifi": "kWh Meter 1-phase (SDM230)",
    "SDM630-wifi": "kWh Meter 3-phase (SDM630)",
    "HWE-DSP": "Energy Display",
    "HWE-BAT": "Plug-In Battery",
}

# Products with a single register that they report as tariff 1: their T1 is the total.
SINGLE_TARIFF_PRODUCTS: Final = frozenset(
    {"HWE-SKT", "HWE-KWH1", "HWE-KWH3", "SDM230-wifi", "SDM630-wifi"}
)

# What each product can be told to do (vendor docs: state.mdx, system.mdx, identify.mdx). Only
# the socket has ``/api/v1/state``; the Energy Display has none of these endpoints.
_SOCKET_CONTROLS: Final = frozenset({Control.POWER, Control.SWITCH_LOCK, Control.BRIGHTNESS})
_SYSTEM_CONTROLS: Final = frozenset({Control.IDENTIFY, Control.CLOUD})
PRODUCT_CONTROLS: Final[dict[str, frozenset[Control]]] = {
    "HWE-SKT": _SOCKET_CONTROLS | _SYSTEM_CONTROLS,
    **dict.fromkeys(
        ("HWE-P1", "HWE-WTR", "HWE-KWH1", "HWE-KWH3", "SDM230-wifi", "SDM630-wifi"),
        _SYSTEM_CONTROLS,
    ),
}
# The same over API v2 (v2 docs: system.mdx, batteries.mdx): the kWh meters have no status light
# and no identify; the Plug-In Battery's cloud connection is read-only and, for safety, it cannot
# be rebooted; the P1 and kWh meters control the Plug-In Batteries (an entity each only where the
# reading has its state: the fields came with API 2.1.0 to 2.3.0).
_BATTERY_CONTROLS: Final = frozenset(
    {
        Control.BATTERY_MODE,
        Control.BATTERY_CHARGE,
        Control.BATTERY_DISCHARGE,
        Control.BATTERY_CHARGE_TO_FULL,
    }
)
_V2_METER_CONTROLS: Final = frozenset({Control.CLOUD, Control.REBOOT}) | _BATTERY_CONTROLS
V2_PRODUCT_CONTROLS: Final[dict[str, frozenset[Control]]] = {
    "HWE-P1": _V2_METER_CONTROLS | {Control.IDENTIFY, Control.BRIGHTNESS},
    **dict.fromkeys(("HWE-KWH1", "HWE-KWH3", "SDM230-wifi", "SDM630-wifi"), _V2_METER_CONTROLS),
    "HWE-BAT": frozenset({Control.IDENTIFY, Control.BRIGHTNESS}),
}
# The battery modes of API 2.1.0 and later, and the API version that added ``predictive``.
_LEGACY_BATTERY_MODES: Final = ("zero", "to_full", "standby")
PREDICTIVE_SINCE: Final = (2, 3)
# The socket's status light: 0..255 on the wire, percent in the reading.
BRIGHTNESS_MAX: Final = 255

API_DISABLED_ERROR_ID: Final = 202
# Largest body read from a device, on the wire and decompressed. The largest real answer is a
# P1 meter's /api/v1/data with external meters: 1.6 KB with a gas and a water meter, some 130
# bytes more per external meter (about 3.7 KB with 16); 64 KiB leaves a factor of 17 to spare
# and parses in well under a millisecond.
MAX_BODY: Final = 64 * 1024
LEGACY_GAS_ID: Final = "legacy_gas"


class HomeWizardError(Exception):
    """Base of every error of this client."""


class CannotConnect(HomeWizardError):
    """The device is unreachable, too slow, or answered with an unexpected HTTP status."""


class ApiDisabled(HomeWizardError):
    """The device's "Local API" switch is off (HTTP 403, error id 202)."""


class NotHomeWizard(HomeWizardError):
    """Something answers at the address, but it is not a HomeWizard device with API v1."""


class InvalidPayload(HomeWizardError):
    """``/api/v1/data`` did not return a JSON object."""


class Unsupported(HomeWizardError):
    """The device has no such endpoint (HTTP 404): older firmware, or another product."""


class Rejected(HomeWizardError):
    """The device refused a write (HTTP 400: a value or combination it does not accept)."""


class WrongDevice(HomeWizardError):
    """Another HomeWizard device answers at the address (``serial`` is its serial)."""

    def __init__(self, host: str, serial: str) -> None:
        """Name the device that answers instead."""
        super().__init__(f"another device ({loggable(serial, 40)}) answers at {host}")
        self.serial = serial


class InvalidHost(HomeWizardError):
    """The host the user entered cannot be used (the message says why)."""


# --- host ---------------------------------------------------------------------------------------

_HOSTNAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*\.?")
_NOT_IN_HOST: Final = (
    ("@", "must not contain credentials (user@)"),
    ("/", "must not contain a path"),
    ("?", "must not contain a query"),
    ("#", "must not contain a fragment"),
)


def normalise_host(text: str) -> str:
    """Return ``host`` or ``host:port`` (IPv6 in brackets, no port when it is 80) from user input.

    Accepts an IP address, a hostname, ``host:port``, ``[ipv6]:port`` or ``http://host[:port]``,
    with an optional trailing ``/``. Raises ``InvalidHost`` with the reason; never does I/O.
    """
    text = text.strip()
    scheme, sep, rest = text.partition("://")
    if sep:
        if scheme.lower() != "http":
            raise InvalidHost(f"unsupported scheme {scheme!r}: HomeWizard API v1 uses http://")
        text = rest
    text = text.removesuffix("/")
    if not text:
        raise InvalidHost("the host is empty")
    for char, reason in _NOT_IN_HOST:
        if char in text:
            raise InvalidHost(f"the host {reason}")

    host, port = text, None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or ":" not in host or (rest and not rest.startswith(":")):
            raise InvalidHost(f"{text!r} is not a valid [IPv6]:port")
        port = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if port is not None and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise InvalidHost(f"invalid port {port!r}: expected a number from 1 to 65535")
    host = _normalise_address(host)
    return host if port is None or int(port) == 80 else f"{host}:{int(port)}"


def _normalise_address(host: str) -> str:
    """Return an IP address in canonical form (IPv6 in brackets) or a lower-case hostname."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        if isinstance(address, ipaddress.IPv4Address):
            return str(address)
        if address.scope_id:
            raise InvalidHost("IPv6 zone ids (%) are not supported")
        return f"[{address}]"
    if ":" in host:
        raise InvalidHost(f"{host!r} is not a valid IPv6 address")
    host = host.lower()
    if host.replace(".", "").isdigit() or not _HOSTNAME.fullmatch(host):
        raise InvalidHost(f"{host!r} is not a valid IP address or hostname")
    return host


# --- parsing ------------------------------------------------------------------------------------


def _meter_time(raw: object, tz: tzinfo) -> datetime | None:
    """Convert a YYMMDDhhmmss number in the meter's local time to an aware datetime."""
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < 10**12:
        return None
    rest, second = divmod(raw, 100)
    rest, minute = divmod(rest, 100)
    rest, hour = divmod(rest, 100)
    rest, day = divmod(rest, 100)
    year, month = divmod(rest, 100)
    try:
        return datetime(2000 + year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError:
        return None


def _build_fields() -> dict[str, tuple[str, Check]]:
    """Map vendor key -> (canonical key, check) for every scalar data point of /api/v1/data."""
    fields: dict[str, tuple[str, Check]] = {
        "wifi_ssid": ("wifi_ssid", text_value),
        "wifi_strength": ("wifi_strength", percent_number),
        "smr_version": ("dsmr_version", count_number),
        "meter_model": ("meter_model", text_value),
        "unique_id": ("meter_id", smart_meter_id),
        "active_tariff": ("active_tariff", tariff_number),
        "any_power_fail_count": ("any_power_fail_count", count_number),
        "long_power_fail_count": ("long_power_fail_count", count_number),
        "active_power_average_w": ("average_power_w", signed_number),
        "montly_power_peak_w": ("monthly_peak_power_w", signed_number),  # sic, as the API spells it
        "active_liter_lpm": ("water_flow_lpm", unsigned_number),
        "total_liter_m3": ("water_total_m3", unsigned_number),
        "total_liter_offset_m3": ("water_offset_m3", signed_number),
    }
    for direction in ("import", "export"):
        total = f"energy_{direction}_kwh"
        fields[f"total_power_{direction}_kwh"] = (total, unsigned_number)
        for tariff in TARIFFS:
            fields[f"total_power_{direction}_t{tariff}_kwh"] = (
                tariff_key(total, tariff),
                unsigned_number,
            )
    # The device sends "active_" + canonical key, per phase "active_" + phase key.
    fields.update(electrical_fields("active_"))
    return fields


_FIELDS: Final = _build_fields()

# (vendor total, canonical total, canonical T1) folded for single-tariff products
_SINGLE_TARIFF_FOLD: Final = tuple(
    (f"total_power_{d}_kwh", f"energy_{d}_kwh", tariff_key(f"energy_{d}_kwh", 1))
    for d in ("import", "export")
)
_UNITS: Final = {"m3": "m³"}


def parse_data(payload: object, *, product_type: str | None, tz: tzinfo) -> Reading:
    """Normalise a ``/api/v1/data`` payload; ``tz`` is the meter's local time zone."""
    if not isinstance(payload, dict):
        raise InvalidPayload(f"measurement is a JSON {type(payload).__name__}, not an object")
    values: dict[str, Value] = {}
    for name, raw in payload.items():
        field = _FIELDS.get(name)
        if field is not None and (value := field[1](raw)) is not None:
            values[field[0]] = value

    if product_type in SINGLE_TARIFF_PRODUCTS:
        for vendor_total, total, t1 in _SINGLE_TARIFF_FOLD:
            if payload.get(vendor_total) is None and t1 in values:
                values[total] = values.pop(t1)
    if (peak_at := _meter_time(payload.get("montly_power_peak_timestamp"), tz)) is not None:
        values["monthly_peak_at"] = peak_at

    externals: dict[str, ExternalMeter] = {}
    if isinstance(entries := payload.get("external"), list):
        for entry in entries:
            if meter := external_meter(entry, partial(_meter_time, tz=tz)):
                externals[meter.key] = meter
    if "total_gas_m3" in payload and (legacy := _legacy_gas(payload, externals, tz)):
        externals[legacy.key] = legacy
    return Reading(values=values, externals=externals)


def parse_state(payload: dict[str, Any]) -> dict[str, Value]:
    """Normalise a ``/api/v1/state`` payload (the socket's relay, lock and status light)."""
    values: dict[str, Value] = {}
    for vendor, key in (("power_on", "switch_on"), ("switch_lock", "switch_lock")):
        if isinstance(raw := payload.get(vendor), bool):
            values[key] = raw
    if (brightness := in_range(payload.get("brightness"), 0, BRIGHTNESS_MAX)) is not None:
        values["brightness"] = round(brightness * 100 / BRIGHTNESS_MAX)
    return values


def parse_system(payload: dict[str, Any]) -> dict[str, Value]:
    """Normalise a ``/api/v1/system`` payload (whether the device talks to the cloud)."""
    raw = payload.get("cloud_enabled")
    return {"cloud_enabled": raw} if isinstance(raw, bool) else {}


# Longer text is no id at all. Ids up to it are parsed: the sensor platform ignores those longer
# than ``MAX_ID_LENGTH`` and says so in the log.
_MAX_EXTERNAL_ID_TEXT: Final = 1024


def _identifier(raw: object) -> str | None:
    """Return an id as sent: text, or a number (the doc types the gas id as Number)."""
    return vendor_identifier(raw, _MAX_EXTERNAL_ID_TEXT)


def external_meter(
    entry: object, read_time: Callable[[object], datetime | None]
) -> ExternalMeter | None:
    """Return one entry of ``external`` (API v1 and v2); None when it lacks a valid id or type.

    ``read_time`` reads the entry's timestamp (a number in v1, ISO 8601 text in v2).
    """
    if not isinstance(entry, dict):
        return None
    meter_id = _identifier(entry.get("unique_id"))
    kind = vendor_text(entry.get("type"))
    if meter_id is None or kind is None:
        return None
    value = in_range(entry.get("value"), 0, MAX_NUMBER)
    unit = vendor_text(entry.get("unit"))
    return ExternalMeter(
        meter_id=meter_id,
        kind=kind,
        value=None if value is None else float(value),
        unit=None if unit is None else _UNITS.get(unit, unit),
        measured_at=read_time(entry.get("timestamp")),
    )


def _legacy_gas(
    payload: dict[str, Any], externals: dict[str, ExternalMeter], tz: tzinfo
) -> ExternalMeter | None:
    """Return the deprecated gas fields as an external meter, unless ``external`` has it.

    The legacy fields repeat the first gas meter of ``external``: without an id to compare, any
    external gas meter is taken to be that one.
    """
    value = in_range(payload["total_gas_m3"], 0, MAX_NUMBER)
    if value is None:
        return None
    # the doc spells the id both ways
    gas_id = _identifier(payload.get("gas_unique_id")) or _identifier(payload.get("unique_gas_id"))
    for meter in externals.values():
        if meter.kind == "gas_meter" and gas_id in (None, meter.meter_id):
            return None
    return ExternalMeter(
        meter_id=gas_id or LEGACY_GAS_ID,
        kind="gas_meter",
        value=float(value),
        unit="m³",
        measured_at=_meter_time(payload.get("gas_timestamp"), tz),
    )


# --- client -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HomeWizardDevice:
    """What ``/api`` says about the device."""

    product_type: str
    product_name: str | None
    serial: str
    firmware_version: str | None
    api_version: str
    host: str
    scheme: str = "http"

    @property
    def model_name(self) -> str:
        """Human model name of the product type (the product name for an unknown type)."""
        return MODEL_NAMES.get(self.product_type) or self.product_name or self.product_type

    @property
    def meter_info(self) -> MeterInfo:
        """The device as a meter of the normalised model."""
        return MeterInfo(
            serial=self.serial,
            manufacturer=MANUFACTURER,
            model=self.model_name,
            model_id=self.product_type,
            sw_version=self.firmware_version,
            configuration_url=f"{self.scheme}://{self.host}",
            controls=tuple(sorted(self.controls)),
            battery_modes=self.battery_modes if Control.BATTERY_MODE in self.controls else (),
        )

    @property
    def controls(self) -> frozenset[Control]:
        """What the device can be told to do over its API version."""
        table = PRODUCT_CONTROLS if self.api_version == "v1" else V2_PRODUCT_CONTROLS
        return table.get(self.product_type, frozenset())

    @property
    def battery_modes(self) -> tuple[str, ...]:
        """The modes of the batteries it controls that its API version lists (batteries.mdx)."""
        major, _, rest = self.api_version.partition(".")
        minor = rest.partition(".")[0]
        version = (int(major), int(minor)) if major.isdigit() and minor.isdigit() else (0, 0)
        if version >= PREDICTIVE_SINCE:
            return BATTERY_MODES
        return _LEGACY_BATTERY_MODES


def _connection_of(response: aiohttp.ClientResponse) -> object | None:
    """The object that stands for the connection an answer came over (None: not known).

    aiohttp's protocol object of the connection: aiohttp releases the connection itself as soon
    as a short body is in, so ``response.connection`` is already None. Without it every answer
    counts as one over a new connection.
    """
    return getattr(response, "_protocol", None)


def _describe(err: BaseException) -> str:
    return loggable(str(err) or type(err).__name__)


class HomeWizardClient:
    """One HomeWizard device on the local network, API v1.

    ``tz`` is the time zone of the meter's clock (Home Assistant's time zone); the timestamps of
    the monthly peak and of external meters are given in it.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        host: str,
        *,
        timeout: float = 10,
        tz: tzinfo = UTC,
    ) -> None:
        """Talk to ``host`` (see ``normalise_host``) through the caller's ``session``."""
        self.host: Final = normalise_host(host)
        self._session = session
        self._timeout = timeout
        self._client_timeout = aiohttp.ClientTimeout(total=timeout)
        self._tz = tz
        self._device_url: Final = URL(f"http://{self.host}/api")
        self._data_url: Final = URL(f"http://{self.host}/api/v1/data")
        self._state_url: Final = URL(f"http://{self.host}/api/v1/state")
        self._system_url: Final = URL(f"http://{self.host}/api/v1/system")
        self._identify_url: Final = URL(f"http://{self.host}/api/v1/identify")
        self._device: HomeWizardDevice | None = None
        # The connections known to lead to ``_device`` (the session's pool may hold several to
        # one device; closed ones drop out).
        self._checked: weakref.WeakSet[object] = weakref.WeakSet()
        # The last bodies, for diagnostics (capped by MAX_BODY; decoded only when asked for).
        self._device_body: bytes | None = None
        self._data_body: bytes | None = None

    @property
    def last_device_payload(self) -> object:
        """The last ``/api`` answer, made fit for diagnostics."""
        return _kept(self._device_body)

    @property
    def last_data_payload(self) -> object:
        """The last ``/api/v1/data`` answer that became a reading, made fit for diagnostics."""
        return _kept(self._data_body)

    async def device(self) -> HomeWizardDevice:
        """Read ``/api`` and check that this is a HomeWizard device speaking API v1."""
        body, connection = await self._request(self._device_url, NotHomeWizard)
        payload = await _object(self._device_url, body, NotHomeWizard)
        self._device_body = body
        # The identity must be valid text: it names the device in every registry.
        product_type = vendor_text(payload.get("product_type"), MAX_ID_LENGTH)
        serial = vendor_text(payload.get("serial"), MAX_ID_LENGTH)
        if product_type is None:
            raise NotHomeWizard(
                f"{self.host}/api has no product_type that is valid text: not a HomeWizard device"
            )
        if serial is None:
            raise NotHomeWizard(
                f"{self.host}/api has no serial that is valid text: not a HomeWizard device"
            )
        api_version = payload.get("api_version")
        if api_version != "v1":
            raise NotHomeWizard(
                f"{self.host} speaks API {loggable(repr(api_version), 40)}; only v1 is supported"
            )
        name = vendor_text(payload.get("product_name"))
        firmware = vendor_text(payload.get("firmware_version"))
        if self._device is None or serial != self._device.serial:
            # What was checked before led to another device.
            self._checked = weakref.WeakSet()
        self._device = HomeWizardDevice(
            product_type=product_type,
            product_name=name,
            serial=serial,
            firmware_version=firmware,
            api_version=api_version,
            host=self.host,
        )
        if connection is not None:
            self._checked.add(connection)
        return self._device

    async def data(self) -> Reading:
        """Read ``/api/v1/data`` (and ``/api`` once, to know how to read the totals)."""
        device = self._device or await self.device()
        body, _ = await self._request(self._data_url, InvalidPayload)
        return await self._reading(device, body)

    async def measurement(self, serial: str) -> tuple[HomeWizardDevice, Reading]:
        """Read ``/api/v1/data`` of the device ``serial`` (``WrongDevice`` if another answers).

        ``/api`` is read only after an answer over a connection not known to lead to that device.
        A TCP connection leads to whichever device held the address when it was opened, and
        breaks when that device gives the address up: every connection that answers leads to the
        device holding the address now. So an ``/api`` answer with ``serial`` right after the
        reading (over whichever connection of the session's pool) vouches for the reading and for
        the connection it came over. A new connection (the first poll, a reconnect, an address
        that another device took over) is checked again, and its reading dropped if the serial is
        not ``serial``.
        """
        body, connection = await self._request(self._data_url, InvalidPayload)
        device = self._device
        if device is None or connection not in self._checked:
            device = await self.device()
            if device.serial == serial and connection is not None:
                self._checked.add(connection)
        if device.serial != serial:
            raise WrongDevice(self.host, device.serial)
        # Only now, with the identity known, is the body parsed.
        return device, await self._reading(device, body)

    async def state(self) -> dict[str, Value]:
        """Read ``/api/v1/state`` (the Energy Socket only; ``Unsupported`` elsewhere)."""
        return parse_state(await self._read_object(self._state_url))

    async def system(self) -> dict[str, Value]:
        """Read ``/api/v1/system`` (``Unsupported`` on devices and firmware without it)."""
        return parse_system(await self._read_object(self._system_url))

    async def set_power(self, on: bool) -> None:
        """Switch the socket's relay."""
        await self._put(self._state_url, {"power_on": on})

    async def set_switch_lock(self, locked: bool) -> None:
        """Lock the socket's relay on, or unlock it."""
        await self._put(self._state_url, {"switch_lock": locked})

    async def set_brightness(self, percent: int) -> None:
        """Set the brightness of the socket's status light (percent)."""
        await self._put(self._state_url, {"brightness": round(percent * BRIGHTNESS_MAX / 100)})

    async def identify(self) -> None:
        """Let the status light blink."""
        await self._put(self._identify_url, None)

    async def set_cloud(self, enabled: bool) -> None:
        """Allow or forbid the device to talk to the HomeWizard cloud."""
        await self._put(self._system_url, {"cloud_enabled": enabled})

    # The controls of API v2 only: no entity asks for them on a v1 device.

    async def reboot(self) -> None:
        """API v1 cannot reboot a device."""
        raise Unsupported("API v1 has no reboot")

    async def set_battery_mode(self, mode: str) -> None:
        """API v1 controls no batteries."""
        raise Unsupported("API v1 controls no batteries")

    async def allow_battery(
        self, *, charge: bool | None = None, discharge: bool | None = None
    ) -> None:
        """API v1 controls no batteries."""
        raise Unsupported("API v1 controls no batteries")

    async def set_battery_charge_to_full(self, on: bool) -> None:
        """API v1 controls no batteries."""
        raise Unsupported("API v1 controls no batteries")

    async def _read_object(self, url: URL) -> dict[str, Any]:
        body, _ = await self._request(url, InvalidPayload, control=True)
        return await _object(url, body, InvalidPayload)

    async def _put(self, url: URL, body: dict[str, Any] | None) -> None:
        """PUT ``body`` as JSON to ``url``; raise what the device's answer says went wrong."""
        await self._request(url, InvalidPayload, control=True, method="PUT", body=body)

    async def _reading(self, device: HomeWizardDevice, body: bytes) -> Reading:
        payload = await _object(self._data_url, body, InvalidPayload)
        reading = parse_data(payload, product_type=device.product_type, tz=self._tz)
        self._data_body = body
        return reading

    async def _request(
        self,
        url: URL,
        invalid: type[HomeWizardError],
        *,
        control: bool = False,
        method: Literal["GET", "PUT"] = "GET",
        body: dict[str, Any] | None = None,
    ) -> tuple[bytes, object | None]:
        """Send ``method`` to ``url``: the body of its HTTP 200 answer, and its connection.

        ``body`` goes as JSON, if any. The answer's body is read capped (``MAX_BODY``); ``invalid`` is raised for one that is too large
        or cannot be decoded. ``control``: see ``_raise_for``. Redirects are not followed.
        """
        try:
            # aiohttp's own timeout bounds the whole request, body included (cheaper per poll
            # than a second timer around it)
            send = self._session.put if method == "PUT" else self._session.get
            async with send(
                url,
                json=body,
                allow_redirects=False,
                timeout=self._client_timeout,
                headers=ACCEPT_ENCODING,
                auto_decompress=False,
            ) as response:
                connection = _connection_of(response)
                status, answer = response.status, await read_body(response, MAX_BODY)
        except BodyError as err:
            raise invalid(f"{url}: {err}") from None
        except TimeoutError as err:
            raise CannotConnect(f"{url} did not answer within {self._timeout:g} s") from err
        except (aiohttp.ClientError, OSError) as err:
            raise CannotConnect(f"cannot connect to {url}: {_describe(err)}") from err
        if status != 200:
            try:
                payload = await parse_json(answer)
            except ValueError:
                payload = None
            _raise_for(status, payload, url, invalid, control=control)
        return answer, connection


def _raise_for(
    status: int,
    payload: object,
    url: URL,
    invalid: type[HomeWizardError],
    *,
    control: bool = False,
) -> None:
    """Raise the error of a payload that says the local API is off, or of an HTTP error.

    ``control``: an endpoint of the controls, which a device may lack (404: ``Unsupported``)
    and whose writes it may refuse (400: ``Rejected``).
    """
    if status == 403 or (
        isinstance(payload, dict)
        and isinstance(problem := payload.get("error"), dict)
        and problem.get("id") == API_DISABLED_ERROR_ID
    ):
        raise ApiDisabled(f"the local API of {url.host} is disabled: enable it in the app")
    if status == 404 and invalid is NotHomeWizard:
        raise NotHomeWizard(f"{url} does not exist: not a HomeWizard device with API v1")
    if status == 404 and control:
        raise Unsupported(f"{url} does not exist on this device")
    if status == 400 and control:
        raise Rejected(f"{url.path} refused the request: {_problem(payload)}")
    if status != 200:
        raise CannotConnect(f"{url} answered with HTTP status {status}")


def _problem(payload: object) -> str:
    """The device's description of an error (escaped and short), or "no reason given"."""
    problem = payload.get("error") if isinstance(payload, dict) else None
    text = vendor_text(problem.get("description")) if isinstance(problem, dict) else None
    return "no reason given" if text is None else loggable(text, 80)


async def _object(url: URL, body: bytes, invalid: type[HomeWizardError]) -> dict[str, Any]:
    """The JSON object of an HTTP 200 ``body``; ``invalid`` for anything else."""
    try:
        payload = await parse_json(body)
    except ValueError as err:
        raise invalid(f"{url} did not answer JSON: {_describe(err)}") from err
    _raise_for(200, payload, url, invalid)
    if not isinstance(payload, dict):
        raise invalid(f"{url} answered a JSON {type(payload).__name__}, not an object")
    return payload


def _kept(body: bytes | None) -> object:
    """A kept body, parsed and made fit for diagnostics (None: none, or not JSON)."""
    if body is None:
        return None
    try:
        return diagnostic_copy(decode_json(body))
    except ValueError:
        return None
