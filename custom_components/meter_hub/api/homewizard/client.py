"""Client for the local HTTP API v1 of HomeWizard Energy devices.

Reads ``/api`` and ``/api/v1/data`` (every device), ``/api/v1/state`` (the Energy Socket) and
``/api/v1/system``; writes the state, the system settings and ``/api/v1/identify``
(``api.controls.DeviceControls``). Pure asyncio and aiohttp, no Home Assistant imports.
"""

from __future__ import annotations

from datetime import UTC, tzinfo
from typing import Any, Final, Literal
import weakref

import aiohttp
from yarl import URL

from custom_components.meter_hub.api.model import MAX_ID_LENGTH, Reading, Value, vendor_text
from custom_components.meter_hub.api.transport import (
    ACCEPT_ENCODING,
    BodyError,
    decode_json,
    diagnostic_copy,
    loggable,
    parse_json,
    read_body,
)

from .errors import (
    ApiDisabled,
    CannotConnect,
    HomeWizardError,
    InvalidPayload,
    NotHomeWizard,
    Rejected,
    Unsupported,
    WrongDevice,
)
from .hosts import normalise_host
from .models import BRIGHTNESS_MAX, HomeWizardDevice
from .parser import parse_data, parse_state, parse_system

API_DISABLED_ERROR_ID: Final = 202


# Largest body read from a device, on the wire and decompressed. The largest real answer is a
# P1 meter's /api/v1/data with external meters: 1.6 KB with a gas and a water meter, some 130
# bytes more per external meter (about 3.7 KB with 16); 64 KiB leaves a factor of 17 to spare
# and parses in well under a millisecond.
MAX_BODY: Final = 64 * 1024


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
