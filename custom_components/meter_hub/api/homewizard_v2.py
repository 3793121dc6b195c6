"""Client for the local HTTPS API v2 of HomeWizard Energy devices.

Every request goes over TLS verified against the HomeWizard CA that ships with this package
(``homewizard-ca-cert.pem``) and against the name the device's certificate carries,
``appliance/<type>/<serial>``: an answer comes from the device with that serial or not at all, so
no identity check per answer is needed as in API v1. The token travels in the ``Authorization``
header only. Pure asyncio and aiohttp, no Home Assistant imports.

``parse_measurement``, ``parse_system`` and ``parse_batteries`` turn the three v2 answers into
canonical keys of ``model.py``: the same key as in API v1 wherever the quantity is the same.

Writes (``api.controls.DeviceControls``) go over REST also while the WebSocket pushes: each REST
write has its own answer, where an error on the socket names no request it belongs to. The new
state comes back in the next poll, or pushed by the device, which sends a topic when it changes.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, tzinfo
from functools import partial
from pathlib import Path
import re
import ssl
from typing import Any, Final

import aiohttp
from yarl import URL

from .homewizard import (
    ApiDisabled,
    CannotConnect,
    HomeWizardDevice,
    HomeWizardError,
    InvalidPayload,
    NotHomeWizard,
    Rejected,
    Unsupported,
    WrongDevice,
    external_meter,
    normalise_host,
)
from .model import (
    BATTERY_MODES,
    MAX_ID_LENGTH,
    TARIFFS,
    ExternalMeter,
    Reading,
    Value,
    tariff_key,
    vendor_text,
)
from .transport import ACCEPT_ENCODING, BodyError, diagnostic_copy, loggable, parse_json, read_body
from .vendor_values import (
    Check,
    count_number,
    electrical_fields,
    percent_number,
    signed_number,
    smart_meter_id,
    switch_state,
    tariff_number,
    text_value,
    unsigned_number,
)

CA_CERT: Final = Path(__file__).with_name("homewizard-ca-cert.pem")

# The product type in a device certificate's name; legacy names, the vendor's table.
CERTIFICATE_TYPES: Final = {
    "HWE-P1": "p1dongle",
    "HWE-SKT": "energysocket",
    "HWE-DSP": "display",
    "HWE-KWH1": "energymeter",
    "HWE-KWH3": "energymeter",
    "SDM230-wifi": "energymeter",
    "SDM630-wifi": "energymeter",
    "HWE-WTR": "watermeter",
    "HWE-BAT": "battery",
}
# Devices set up with API v2, and the firmware from which they have it (``None``: always); the
# others stay on v1 until HomeWizard releases their v2.
V2_FIRMWARE: Final[dict[str, int | None]] = {
    "HWE-P1": 6,
    "HWE-KWH1": 5,
    "HWE-KWH3": 5,
    "SDM230-wifi": 5,
    "SDM630-wifi": 5,
    "HWE-BAT": None,
}
# Devices that control Plug-In Batteries (``/api/batteries``, API 2.1.0 and later).
BATTERY_CONTROLLERS: Final = frozenset(
    {"HWE-P1", "HWE-KWH1", "HWE-KWH3", "SDM230-wifi", "SDM630-wifi"}
)

# The v2 answers are smaller than v1's /api/v1/data (same fields, shorter names).
MAX_BODY: Final = 64 * 1024
_HEADERS: Final = {**ACCEPT_ENCODING, "X-Api-Version": "2"}
# The vendor's rule for a user name, and the form of its tokens.
_USER_NAME: Final = re.compile(r"local/[a-zA-Z0-9\-_/\\# ]{1,40}")
_TOKEN: Final = re.compile(r"[A-F0-9]{32}")
# The name in a device certificate: the legacy product type and the serial (12 hex digits).
_DEVICE_NAME: Final = re.compile(r"appliance/[a-z0-9]{1,32}/[0-9a-fA-F]{12}")
# YYYY-MM-DDTHH:mm:ss in the meter's local time, as the vendor documents it.
_TIMESTAMP: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


class Unauthorized(HomeWizardError):
    """The device refuses the token (HTTP 401 ``user:unauthorized``): pair again."""


class ButtonNotPressed(HomeWizardError):
    """The device creates a user only after its button was pressed (``user:creation-not-enabled``)."""


class NoStorage(HomeWizardError):
    """The device has no room for another user (``user:no-storage``): remove one in the app."""


class UntrustedDevice(HomeWizardError):
    """The certificate at the address is not the HomeWizard certificate of the expected device."""


def server_hostname(product_type: str, serial: str) -> str:
    """The name in the certificate of device ``serial`` of ``product_type``."""
    certificate_type = CERTIFICATE_TYPES.get(product_type)
    if certificate_type is None:
        raise NotHomeWizard(f"no API v2 for product type {loggable(product_type, 40)}")
    return f"appliance/{certificate_type}/{serial}"


def supports_api_v2(product_type: str, firmware_version: str | None) -> bool:
    """Whether a device of ``product_type`` with that firmware speaks API v2."""
    if product_type not in V2_FIRMWARE:
        return False
    first = V2_FIRMWARE[product_type]
    major = (firmware_version or "").partition(".")[0]
    return first is None or (major.isdigit() and int(major) >= first)


def v2_host(host: str) -> str:
    """The address of API v2 (port 443) of the device that has API v1 at ``host``."""
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.partition(":")[0]


def create_ssl_context(cafile: Path = CA_CERT) -> ssl.SSLContext:
    """A context that trusts only ``cafile``; blocking (reads the file): call it in the executor.

    The device certificates name the device in the common name alone, so that is checked. The
    HomeWizard CA is an X.509 version 1 certificate (no extensions), which the strict checks
    Python enables by default reject; the chain and the name are verified all the same.
    """
    context = ssl.create_default_context(cafile=str(cafile))
    context.hostname_checks_common_name = True
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return context


def create_naming_context(cafile: Path = CA_CERT) -> ssl.SSLContext:
    """A context that verifies the chain against ``cafile`` and takes any device name.

    Only to learn which device answers at an address (``read_device_name``); no request is ever
    sent with it: every request names the device it expects (``HomeWizardV2Client``).
    """
    context = create_ssl_context(cafile)
    context.check_hostname = False
    return context


_contexts: dict[tuple[Path, bool], ssl.SSLContext] = {}


async def shared_ssl_context(cafile: Path = CA_CERT, *, naming: bool = False) -> ssl.SSLContext:
    """The context of ``create_ssl_context``, built once (off the event loop) per CA file.

    ``naming``: the context of ``create_naming_context`` instead.
    """
    if (context := _contexts.get((cafile, naming))) is None:
        loop = asyncio.get_running_loop()
        create = create_naming_context if naming else create_ssl_context
        context = await loop.run_in_executor(None, create, cafile)
        _contexts[cafile, naming] = context
    return context


async def read_device_name(host: str, naming_context: ssl.SSLContext, seconds: float) -> str:
    """The name ``appliance/<type>/<serial>`` in the certificate of the device at ``host``.

    A device found by its address alone (no mDNS ``id``): the TLS handshake verifies the chain
    against the context's CA, and the name the certificate carries is then the one every request
    must find again. ``UntrustedDevice`` when the chain is not the CA's, ``NotHomeWizard`` when the
    name is not a device's.
    """
    url = URL(f"https://{normalise_host(host)}")
    try:
        async with asyncio.timeout(seconds):
            _, writer = await asyncio.open_connection(url.host, url.port, ssl=naming_context)
    except TimeoutError as err:
        raise CannotConnect(f"{url} did not answer within {seconds:g} s") from err
    except ssl.SSLCertVerificationError:
        raise UntrustedDevice(f"{url} has no certificate of the HomeWizard CA") from None
    except OSError as err:
        raise CannotConnect(f"cannot connect to {url}: {loggable(err)}") from err
    certificate = writer.get_extra_info("peercert") or {}
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(seconds):
            await writer.wait_closed()
    subject = certificate.get("subject", ()) if isinstance(certificate, dict) else ()
    names = [value for rdn in subject for key, value in rdn if key == "commonName"]
    if len(names) != 1 or not _DEVICE_NAME.fullmatch(names[0]):
        raise NotHomeWizard(f"{url} does not name a HomeWizard device in its certificate")
    name: str = names[0]
    return name


# --- parsing ------------------------------------------------------------------------------------


def _build_measurement_fields() -> dict[str, tuple[str, Check]]:
    """Map vendor key -> (canonical key, check) for every number and text of /api/measurement."""
    fields: dict[str, tuple[str, Check]] = {
        "unique_id": ("meter_id", smart_meter_id),
        "protocol_version": ("dsmr_version", count_number),
        "meter_model": ("meter_model", text_value),
        "tariff": ("active_tariff", tariff_number),
        "any_power_fail_count": ("any_power_fail_count", count_number),
        "long_power_fail_count": ("long_power_fail_count", count_number),
        "average_power_15m_w": ("average_power_w", signed_number),
        "monthly_power_peak_w": ("monthly_peak_power_w", signed_number),
        "state_of_charge_pct": ("state_of_charge_pct", percent_number),
        "cycles": ("battery_cycles", unsigned_number),
    }
    # The other names are the canonical keys themselves.
    for direction in ("import", "export"):
        total = f"energy_{direction}_kwh"
        for key in (total, *(tariff_key(total, tariff) for tariff in TARIFFS)):
            fields[key] = (key, unsigned_number)
    fields.update(electrical_fields(""))
    return fields


_MEASUREMENT_FIELDS: Final = _build_measurement_fields()
_MEASUREMENT_TIMES: Final = {
    "timestamp": "smart_meter_measured_at",
    "monthly_power_peak_timestamp": "monthly_peak_at",
}
_SYSTEM_FIELDS: Final[dict[str, tuple[str, Check]]] = {
    "wifi_ssid": ("wifi_ssid", text_value),
    "wifi_rssi_db": ("wifi_rssi_db", signed_number),
    "uptime_s": ("uptime_s", unsigned_number),
    "cloud_enabled": ("cloud_enabled", switch_state),
    # the status light: the key of API v1's (the socket's) status light
    "status_led_brightness_pct": ("brightness", percent_number),
    "api_v1_enabled": ("api_v1_enabled", switch_state),
}
_BATTERIES_FIELDS: Final[dict[str, tuple[str, Check]]] = {
    "mode": ("battery_mode", lambda raw: raw if raw in BATTERY_MODES else None),
    "charge_to_full": ("battery_charge_to_full", switch_state),
    "battery_count": ("battery_count", count_number),
    "power_w": ("battery_group_power_w", signed_number),
    "target_power_w": ("battery_group_target_power_w", signed_number),
    "max_consumption_w": ("battery_group_max_consumption_w", unsigned_number),
    "max_production_w": ("battery_group_max_production_w", unsigned_number),
}
_PERMISSIONS: Final = {
    "charge_allowed": "battery_charge_allowed",
    "discharge_allowed": "battery_discharge_allowed",
}


def _object(payload: object, what: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise InvalidPayload(f"{what} is a JSON {type(payload).__name__}, not an object")
    return payload


def _values(payload: dict[str, Any], fields: dict[str, tuple[str, Check]]) -> dict[str, Value]:
    values: dict[str, Value] = {}
    for name, raw in payload.items():
        field = fields.get(name)
        if field is not None and (value := field[1](raw)) is not None:
            values[field[0]] = value
    return values


def iso_time(raw: object, tz: tzinfo) -> datetime | None:
    """A ``YYYY-MM-DDTHH:mm:ss`` timestamp of the meter's clock (in ``tz``) as an aware datetime."""
    if not isinstance(raw, str) or not _TIMESTAMP.fullmatch(raw):
        return None
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=tz)
    except ValueError:
        return None


def parse_measurement(payload: object, *, tz: tzinfo) -> Reading:
    """Normalise an ``/api/measurement`` answer; ``tz`` is the meter's local time zone."""
    payload = _object(payload, "measurement")
    values = _values(payload, _MEASUREMENT_FIELDS)
    for name, key in _MEASUREMENT_TIMES.items():
        if (at := iso_time(payload.get(name), tz)) is not None:
            values[key] = at
    externals: dict[str, ExternalMeter] = {}
    if isinstance(entries := payload.get("external"), list):
        read_time = partial(iso_time, tz=tz)
        for entry in entries:
            if meter := external_meter(entry, read_time):
                externals[meter.key] = meter
    return Reading(values=values, externals=externals)


def parse_system(payload: object) -> dict[str, Value]:
    """The values of an ``/api/system`` answer."""
    return _values(_object(payload, "system"), _SYSTEM_FIELDS)


def parse_batteries(payload: object) -> dict[str, Value]:
    """The values of an ``/api/batteries`` answer (the batteries a meter controls)."""
    payload = _object(payload, "batteries")
    values = _values(payload, _BATTERIES_FIELDS)
    permissions = payload.get("permissions")
    if isinstance(permissions, list):
        for permission, key in _PERMISSIONS.items():
            values[key] = permission in permissions
    return values


# --- client -------------------------------------------------------------------------------------


class HomeWizardV2Client:
    """One HomeWizard device on the local network, API v2.

    ``ssl_context`` comes from ``shared_ssl_context()`` (the HomeWizard CA); tests pass one of
    their own CA. ``token`` is None only while pairing (``create_user``).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        host: str,
        *,
        device_name: str,
        ssl_context: ssl.SSLContext,
        token: str | None = None,
        timeout: float = 10,
        tz: tzinfo = UTC,
    ) -> None:
        """Talk to the device named ``device_name`` in its certificate at ``host``.

        ``device_name`` is ``appliance/<type>/<serial>`` (``server_hostname``, or the ``id``
        the device announces over mDNS); ``host`` is ``host`` or ``host:port`` (443 by default).
        """
        self.host: Final = normalise_host(host)
        serial = device_name.rpartition("/")[2]
        if not device_name.startswith("appliance/") or not serial:
            raise NotHomeWizard(f"{loggable(device_name, 80)} is not a HomeWizard device name")
        self.serial: Final = serial
        self._server_hostname = device_name
        self._session = session
        self._ssl = ssl_context
        self._token = token
        self._timeout = timeout
        self._client_timeout = aiohttp.ClientTimeout(total=timeout)
        self._tz = tz
        self._base: Final = URL(f"https://{self.host}")
        self._device: HomeWizardDevice | None = None
        # The last answers, for diagnostics (parsed; made fit for diagnostics when asked for).
        self._device_payload: object = None
        self._data_payloads: dict[str, object] = {}

    @property
    def last_device_payload(self) -> object:
        """The last ``/api`` answer, made fit for diagnostics."""
        return diagnostic_copy(self._device_payload)

    @property
    def last_data_payload(self) -> object:
        """The last answers that became a reading, by endpoint, made fit for diagnostics."""
        return diagnostic_copy(self._data_payloads)

    @property
    def token(self) -> str | None:
        """The token the device gave (secret: never log it)."""
        return self._token

    @property
    def tz(self) -> tzinfo:
        """The meter's local time zone."""
        return self._tz

    def remember_payload(self, topic: str, payload: object) -> None:
        """Keep a pushed message as the last ``topic`` answer, for diagnostics."""
        self._data_payloads = {**self._data_payloads, topic: payload}

    async def open_websocket(self, path: str, max_size: int) -> aiohttp.ClientWebSocketResponse:
        """Open the WebSocket at ``path`` over the same TLS as the requests (messages <= ``max_size``)."""
        url = self._base.with_scheme("wss").with_path(path)
        try:
            # A device that accepts the connection but never answers the upgrade is given up.
            async with asyncio.timeout(self._timeout):
                return await self._session.ws_connect(
                    url,
                    headers=_HEADERS,
                    ssl=self._ssl,
                    server_hostname=self._server_hostname,
                    max_msg_size=max_size,
                    timeout=aiohttp.ClientWSTimeout(ws_close=self._timeout),
                )
        except TimeoutError as err:
            raise CannotConnect(f"{url} did not upgrade within {self._timeout:g} s") from err
        except aiohttp.WSServerHandshakeError as err:
            if err.status == 401:
                raise Unauthorized(f"{self.host} refuses the token") from None
            raise CannotConnect(f"{url} refused the WebSocket: HTTP {err.status}") from None
        except (aiohttp.ClientError, OSError) as err:
            error = self._connection_error(url, err)
            # the certificate's details stay out; a lost link keeps its cause
            raise error from (None if isinstance(error, UntrustedDevice) else err)

    async def create_user(self, name: str) -> str:
        """Ask the device for a user ``name`` (``local/...``); its token once the button was pressed.

        Raises ``ButtonNotPressed`` until then, ``NoStorage`` when the device is full.
        """
        if not _USER_NAME.fullmatch(name):
            raise ValueError(f"invalid user name {name!r}: local/ and 1 to 40 of a-zA-Z0-9-_/\\# ")
        answer = _object(await self._request("POST", "/api/user", {"name": name}), "user")
        token = answer.get("token")
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise InvalidPayload("the device answered without a token of the documented form")
        self._token = token
        return token

    async def device(self) -> HomeWizardDevice:
        """Read ``/api``: what the device says about itself."""
        payload = _object(await self._request("GET", "/api"), "device information")
        self._device_payload = payload
        product_type = vendor_text(payload.get("product_type"), MAX_ID_LENGTH)
        serial = vendor_text(payload.get("serial"), MAX_ID_LENGTH)
        api_version = vendor_text(payload.get("api_version"), 40)
        if product_type is None or api_version is None or not api_version.startswith("2"):
            raise NotHomeWizard(f"{self.host}/api is not the answer of a HomeWizard API v2 device")
        if serial != self.serial:
            raise WrongDevice(self.host, serial or "?")
        self._device = HomeWizardDevice(
            product_type=product_type,
            product_name=vendor_text(payload.get("product_name")),
            serial=serial,
            firmware_version=vendor_text(payload.get("firmware_version")),
            api_version=api_version,
            host=self.host,
            scheme="https",
        )
        return self._device

    async def measurement(self, serial: str) -> tuple[HomeWizardDevice, Reading]:
        """One reading of device ``serial``: measurement, system and (on meters) batteries.

        ``/api`` is read on the first call only: TLS vouches for the device on every answer.
        """
        if serial != self.serial:
            raise WrongDevice(self.host, self.serial)
        device = self._device or await self.device()
        payloads = {
            "measurement": await self._request("GET", "/api/measurement"),
            "system": await self._request("GET", "/api/system"),
        }
        if device.product_type in BATTERY_CONTROLLERS:
            # firmware before API 2.1.0 has no batteries endpoint (404)
            with contextlib.suppress(NotHomeWizard):
                payloads["batteries"] = await self._request("GET", "/api/batteries")
        reading = parse_measurement(payloads["measurement"], tz=self._tz)
        reading.values.update(parse_system(payloads["system"]))
        if "batteries" in payloads:
            reading.values.update(parse_batteries(payloads["batteries"]))
        self._data_payloads = payloads
        return device, reading

    async def set_cloud(self, enabled: bool) -> None:
        """Allow or forbid the device to talk to the HomeWizard cloud."""
        await self._request("PUT", "/api/system", {"cloud_enabled": enabled})

    async def set_brightness(self, percent: int) -> None:
        """Set the brightness of the status light (percent)."""
        await self._request("PUT", "/api/system", {"status_led_brightness_pct": percent})

    async def identify(self) -> None:
        """Let the status light blink."""
        await self._request("PUT", "/api/system/identify")

    async def reboot(self) -> None:
        """Restart the device (it drops its connections and answers again after a moment)."""
        await self._request("PUT", "/api/system/reboot")

    async def set_battery_mode(self, mode: str) -> None:
        """Set the control mode of the batteries (one of ``HomeWizardDevice.battery_modes``)."""
        await self._request("PUT", "/api/batteries", {"mode": mode})

    async def allow_battery(
        self, *, charge: bool | None = None, discharge: bool | None = None
    ) -> None:
        """Allow or forbid charging or discharging; the other permission stays as it is now.

        The device takes the whole list of permissions: the current one is read first.
        """
        current = parse_batteries(await self._request("GET", "/api/batteries"))
        wanted = {"charge_allowed": charge, "discharge_allowed": discharge}
        permissions: list[str] = []
        for permission, key in _PERMISSIONS.items():
            allowed = current.get(key) if wanted[permission] is None else wanted[permission]
            if not isinstance(allowed, bool):
                raise Unsupported(f"{self.host} reports no battery permissions")
            if allowed:
                permissions.append(permission)
        await self._request("PUT", "/api/batteries", {"permissions": permissions})

    async def set_battery_charge_to_full(self, on: bool) -> None:
        """Charge the batteries to full now, or stop that (the mode before comes back)."""
        await self._request("PUT", "/api/batteries", {"charge_to_full": on})

    # The Energy Socket's relay is on API v1 only (v2 has no socket yet): no entity asks for these.

    async def set_power(self, on: bool) -> None:
        """API v2 has no relay."""
        raise Unsupported("API v2 has no relay")

    async def set_switch_lock(self, locked: bool) -> None:
        """API v2 has no relay."""
        raise Unsupported("API v2 has no relay")

    def _connection_error(self, url: URL, err: Exception) -> HomeWizardError:
        """The typed error of a failed connection: a certificate not the device's, or no link."""
        if isinstance(err, aiohttp.ClientConnectorCertificateError):
            return UntrustedDevice(
                f"{self.host} is not the HomeWizard device {self._server_hostname}: "
                f"{loggable(err.certificate_error)}"
            )
        return CannotConnect(f"cannot connect to {url}: {loggable(str(err) or type(err).__name__)}")

    async def _request(self, method: str, path: str, body: object = None) -> object:
        """The parsed JSON of the HTTP 200 answer to ``method path`` (None for 204 No Content).

        Typed errors otherwise.
        """
        url = self._base.with_path(path)
        headers = dict(_HEADERS)
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            async with self._session.request(
                method,
                url,
                json=body,
                headers=headers,
                ssl=self._ssl,
                server_hostname=self._server_hostname,
                allow_redirects=False,
                timeout=self._client_timeout,
                auto_decompress=False,
            ) as response:
                status, raw = response.status, await read_body(response, MAX_BODY)
        except BodyError as err:
            raise InvalidPayload(f"{url}: {err}") from None
        except TimeoutError as err:
            raise CannotConnect(f"{url} did not answer within {self._timeout:g} s") from err
        except (aiohttp.ClientError, OSError) as err:
            error = self._connection_error(url, err)
            # the certificate's details stay out; a lost link keeps its cause
            raise error from (None if isinstance(error, UntrustedDevice) else err)
        if status == 204:
            return None
        try:
            payload = await parse_json(raw)
        except ValueError as err:
            if status == 200:
                raise InvalidPayload(f"{url} did not answer JSON: {loggable(err)}") from None
            payload = None
        if status != 200:
            _raise_for(status, payload, url, write=method == "PUT")
        return payload


def _raise_for(status: int, payload: object, url: URL, *, write: bool = False) -> None:
    """Raise the error an answer other than HTTP 200 stands for.

    ``write``: a setting or an action, which a device may refuse (400: ``Rejected``) or, on older
    firmware, not have (404: ``Unsupported``).
    """
    error = payload.get("error") if isinstance(payload, dict) else None
    if error == "user:creation-not-enabled":
        raise ButtonNotPressed("press the button on the device")
    if error == "user:no-storage":
        raise NoStorage("the device has no room for another user")
    if status == 401 or error == "user:unauthorized":
        raise Unauthorized(f"{url.host} refuses the token")
    if status == 403:
        raise ApiDisabled(f"{url} is forbidden: {loggable(error, 80)}")
    if write and status == 400:
        raise Rejected(f"{url.path} refused the request: {loggable(error, 80)}")
    if write and status == 404:
        raise Unsupported(f"{url.path} does not exist on this device")
    if status == 404:
        raise NotHomeWizard(f"{url} does not exist")
    raise CannotConnect(f"{url} answered with HTTP status {status}: {loggable(error, 80)}")
