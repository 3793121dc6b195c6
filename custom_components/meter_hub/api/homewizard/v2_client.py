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
from datetime import UTC, tzinfo
import re
import ssl
from typing import Final

import aiohttp
from yarl import URL

from custom_components.meter_hub.api.model import MAX_ID_LENGTH, Reading, vendor_text
from custom_components.meter_hub.api.transport import (
    ACCEPT_ENCODING,
    BodyError,
    diagnostic_copy,
    loggable,
    parse_json,
    read_body,
)

from .errors import (
    ApiDisabled,
    ButtonNotPressed,
    CannotConnect,
    HomeWizardError,
    InvalidPayload,
    NoStorage,
    NotHomeWizard,
    Rejected,
    Unauthorized,
    Unsupported,
    UntrustedDevice,
    WrongDevice,
)
from .hosts import normalise_host
from .models import BATTERY_CONTROLLERS, HomeWizardDevice
from .v2_parser import PERMISSIONS, json_object, parse_batteries, parse_measurement, parse_system

# The v2 answers are smaller than v1's /api/v1/data (same fields, shorter names).
MAX_BODY: Final = 64 * 1024


_HEADERS: Final = {**ACCEPT_ENCODING, "X-Api-Version": "2"}


# The vendor's rule for a user name, and the form of its tokens.
_USER_NAME: Final = re.compile(r"local/[a-zA-Z0-9\-_/\\# ]{1,40}")


_TOKEN: Final = re.compile(r"[A-F0-9]{32}")


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
        answer = json_object(await self._request("POST", "/api/user", {"name": name}), "user")
        token = answer.get("token")
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise InvalidPayload("the device answered without a token of the documented form")
        self._token = token
        return token

    async def device(self) -> HomeWizardDevice:
        """Read ``/api``: what the device says about itself."""
        payload = json_object(await self._request("GET", "/api"), "device information")
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
        for permission, key in PERMISSIONS.items():
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
