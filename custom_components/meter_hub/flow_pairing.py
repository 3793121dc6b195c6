"""Config flow steps of HomeWizard API v2: discovery, pairing by button press, reauth.

Pairing asks the device for a user twice a second for up to a minute while the user
presses the button (the device accepts the request only in a short window after the press, so
asking once per click of Submit misses it), and finishes by itself once the device answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Final

from homeassistant.config_entries import SOURCE_IGNORE, SOURCE_REAUTH, ConfigFlowResult
from homeassistant.const import CONF_HOST
from homeassistant.helpers import instance_id, issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

from .api.homewizard.errors import (
    ButtonNotPressed,
    CannotConnect,
    HomeWizardError,
    NoStorage,
    Unauthorized,
    UntrustedDevice,
)
from .api.homewizard.hosts import v2_host
from .api.homewizard.models import (
    CERTIFICATE_TYPES,
    MODEL_NAMES,
    V2_FIRMWARE,
    HomeWizardDevice,
    supports_api_v2,
)
from .api.homewizard.tls import read_device_name, server_hostname, shared_ssl_context
from .api.homewizard.v2_client import HomeWizardV2Client
from .const import (
    CONF_API_VERSION,
    CONF_PRODUCT_TYPE,
    CONF_SERIAL,
    CONF_SOURCE,
    CONF_TOKEN,
    DOMAIN,
    LOGGER,
    SOURCE_LOCAL,
)
from .entry_update import async_update_entry_data
from .flow_error import FlowError
from .flow_iammeter_local import IamMeterLocalFlow
from .flow_local import discovered_host
from .repairs import async_offer_api_v2, issue_id

ZEROCONF_V2: Final = "_homewizard._tcp.local."
# Users report that the device takes the request only for about a second after the press (the
# vendor says 30): asking every half second never misses such a window, and is the fastest rate
# HomeWizard advises for its local API.
PAIRING_INTERVAL: Final = 0.5
PAIRING_TIME: Final = 60.0
# One request of the pairing: a device that does not answer within it is asked again.
PAIRING_REQUEST_TIMEOUT: Final = 5.0
# Where the button is and how to press it, by product type (the progress text's key).
BUTTON_HINTS: Final = {
    "HWE-P1": "pair_p1",
    "HWE-KWH1": "pair_kwh",
    "HWE-KWH3": "pair_kwh",
    "SDM230-wifi": "pair_kwh",
    "SDM630-wifi": "pair_kwh",
    "HWE-BAT": "pair_battery",
}

# What a device found by its address is called until it is paired, where devices of several
# product types carry one certificate type.
SHARED_CERTIFICATE_TITLES: Final = {"energymeter": "kWh Meter"}


@dataclass(frozen=True, slots=True)
class PairingTarget:
    """The device being paired: where it is and the name its certificate carries."""

    host: str
    device_name: str
    product_type: str
    title: str


class PairingFlow(IamMeterLocalFlow):
    """The HomeWizard API v2 part of the config flow, on top of the v1 and IAMMETER parts.

    An address where neither a HomeWizard API v1 device nor an IAMMETER meter answers may be a
    device with API v2 only (the Plug-In Battery): this part is asked last.
    """

    _target: PairingTarget
    _token: str
    _pairing: asyncio.Task[str] | None = None

    async def async_step_zeroconf_v2(self, discovery_info: ZeroconfServiceInfo) -> ConfigFlowResult:
        """A device announced API v2 (``_homewizard._tcp``)."""
        properties = discovery_info.properties
        serial, product_type = properties.get("serial"), properties.get("product_type")
        device_name = properties.get("id")
        if not serial or not product_type or not device_name:
            return self.async_abort(reason="invalid_discovery_parameters")
        if product_type not in V2_FIRMWARE:
            return self.async_abort(reason="api_v2_not_supported")
        host = discovered_host(discovery_info, default_port=443)
        known = await self.async_set_unique_id(serial)
        if known is not None and known.data.get(CONF_API_VERSION) != 2:
            # An entry on API v1: offer the move to v2, at the address v2 announces.
            async_offer_api_v2(self.hass, known, host)
            return self.async_abort(reason="already_configured")
        if known is not None:
            # moved only once the address proves to be the device (its certificate, the token)
            return await self._async_known_device_announced(known, host)
        model = MODEL_NAMES.get(product_type, product_type)
        self._target = PairingTarget(host, device_name, product_type, model)
        self.context["title_placeholders"] = {"name": model, "serial": serial}
        return await self.async_step_pair_confirm()

    async def _async_local_device_found(
        self, host: str, device: HomeWizardDevice
    ) -> ConfigFlowResult:
        """A device entered by its address that has API v2 is paired (v1 is frozen)."""
        if not supports_api_v2(device.product_type, device.firmware_version):
            return await super()._async_local_device_found(host, device)
        self._target = PairingTarget(
            v2_host(host),
            server_hostname(device.product_type, device.serial),
            device.product_type,
            device.model_name,
        )
        return await self.async_step_pair_confirm()

    async def _async_not_homewizard(self, host: str, error: FlowError) -> ConfigFlowResult:
        """No API v1 nor another vendor's meter at ``host``: perhaps a device with API v2 only.

        The Plug-In Battery shows who it is in its certificate; it is paired.
        """
        try:
            return await super()._async_not_homewizard(host, error)
        except FlowError:
            if (paired := await self._async_pair_by_certificate(host)) is not None:
                return paired
            raise

    async def _async_api_v1_disabled(self, host: str, error: FlowError) -> ConfigFlowResult:
        """API v1 is switched off at ``host``: a device with API v2 (port 443) is paired."""
        if (paired := await self._async_pair_by_certificate(v2_host(host))) is not None:
            return paired
        raise error

    async def _async_pair_by_certificate(self, host: str) -> ConfigFlowResult | None:
        """Pair the API v2 device at ``host``, known by its certificate (None: there is none)."""
        try:
            target = await self._async_v2_target(host)
        except HomeWizardError as err:
            LOGGER.debug("No HomeWizard API v2 at %s: %s", host, err)
            return None
        if target is None:
            return None
        serial = target.device_name.rpartition("/")[2]
        known = await self.async_set_unique_id(serial, raise_on_progress=False)
        # An entry on API v2 moves only once the address proves to be the device (its token,
        # its reading); one on API v1 is moved to v2 by the pairing (pair_finish).
        if (
            known is not None
            and known.source != SOURCE_IGNORE
            and known.data.get(CONF_API_VERSION) == 2
        ):
            return await self._async_known_device_announced(known, target.host)
        self._target = target
        return await self.async_step_pair_confirm()

    async def _async_v2_target(self, host: str) -> PairingTarget | None:
        """The v2 device at ``host``: its certificate's name, its ``/api`` asking for a token."""
        naming = await shared_ssl_context(naming=True)
        device_name = await read_device_name(host, naming, PAIRING_REQUEST_TIMEOUT)
        certificate_type = device_name.split("/")[1]
        products = [
            product
            for product, named in CERTIFICATE_TYPES.items()
            if named == certificate_type and product in V2_FIRMWARE
        ]
        if not products:  # a device whose API v2 is not released (socket, watermeter)
            return None
        title = SHARED_CERTIFICATE_TITLES.get(certificate_type, MODEL_NAMES[products[0]])
        target = PairingTarget(host, device_name, products[0], title)
        client = await self._async_client(target=target, request_timeout=PAIRING_REQUEST_TIMEOUT)
        with contextlib.suppress(Unauthorized):  # API v2 wants a token: the pairing gets one
            await client.device()
        return target

    async def async_step_pair_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show the device; pairing starts when the user is ready to press its button."""
        if user_input is not None:
            return await self.async_step_pair()
        return self.async_show_form(
            step_id="pair_confirm",
            description_placeholders={"name": self._target.title, "host": self._target.host},
        )

    async def async_step_reauth_pair(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Pair again: the device refuses the stored token, or the entry moves from v1 to v2."""
        entry = self._get_reauth_entry()
        product_type = entry.data[CONF_PRODUCT_TYPE]
        self._target = PairingTarget(
            # the move from v1 (the repair) names the address of API v2
            self.init_data.get(CONF_HOST, entry.data[CONF_HOST]),
            server_hostname(product_type, entry.data[CONF_SERIAL]),
            product_type,
            entry.title,
        )
        return await self.async_step_pair_confirm()

    async def async_step_pair(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Wait for the button press, asking the device for a user all along."""
        if self._pairing is None:
            self._pairing = self.hass.async_create_task(self._async_request_token())
        if not self._pairing.done():
            return self.async_show_progress(
                step_id="pair",
                progress_action=BUTTON_HINTS.get(self._target.product_type, "pair_p1"),
                progress_task=self._pairing,
                description_placeholders={"name": self._target.title},
            )
        pairing, self._pairing = self._pairing, None
        try:
            self._token = pairing.result()
        except ButtonNotPressed:
            return self.async_show_progress_done(next_step_id="pair_timeout")
        except NoStorage:
            return self.async_show_progress_done(next_step_id="pair_no_storage")
        except UntrustedDevice:
            return self.async_show_progress_done(next_step_id="pair_untrusted")
        except HomeWizardError as err:
            LOGGER.debug("Pairing with %s failed: %s", self._target.host, err)
            return self.async_show_progress_done(next_step_id="pair_failed")
        return self.async_show_progress_done(next_step_id="pair_finish")

    async def _async_request_token(self) -> str:
        """Ask for a user until the device gives a token or the minute is over."""
        client = await self._async_client(request_timeout=PAIRING_REQUEST_TIMEOUT)
        name = f"local/meter_hub {(await instance_id.async_get(self.hass))[:8]}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PAIRING_TIME
        while True:
            try:
                return await client.create_user(name)
            except (ButtonNotPressed, CannotConnect):
                # No press yet, or a request lost on the Wi-Fi: ask again while there is time.
                if loop.time() + PAIRING_INTERVAL > deadline:
                    raise
            await asyncio.sleep(PAIRING_INTERVAL)

    async def _async_client(
        self,
        token: str | None = None,
        request_timeout: float = 10,
        target: PairingTarget | None = None,
    ) -> HomeWizardV2Client:
        target = target or self._target
        return HomeWizardV2Client(
            async_get_clientsession(self.hass),
            target.host,
            device_name=target.device_name,
            ssl_context=await shared_ssl_context(),
            token=token,
            timeout=request_timeout,
        )

    async def async_step_pair_timeout(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """No button press within the minute: offer to try again."""
        return await self._async_retry_form("pair_timeout", user_input)

    async def async_step_pair_no_storage(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The device has no room for another user: explain, then try again."""
        return await self._async_retry_form("pair_no_storage", user_input)

    async def async_step_pair_failed(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The device stopped answering: try again."""
        return await self._async_retry_form("pair_failed", user_input)

    async def _async_retry_form(
        self, step_id: str, user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        if user_input is not None:
            return await self.async_step_pair()
        return self.async_show_form(
            step_id=step_id,
            description_placeholders={"name": self._target.title, "host": self._target.host},
        )

    async def async_step_pair_untrusted(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The device at the address is not the one discovered (its certificate says so)."""
        return self.async_abort(
            reason="untrusted_device", description_placeholders={"host": self._target.host}
        )

    async def async_step_pair_finish(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Read the device with its new token and create (or update) the entry."""
        client = await self._async_client(self._token)
        try:
            device = await client.device()
        except HomeWizardError as err:
            LOGGER.debug("Reading %s after pairing failed: %s", self._target.host, err)
            return self.async_abort(reason="cannot_connect")
        data = self._v2_entry_data(device)
        if self.source == SOURCE_REAUTH:
            entry = self._get_reauth_entry()
            ir.async_delete_issue(self.hass, DOMAIN, issue_id(entry))
            # one reload: the entry's update listener's when loaded (see entry_update)
            async_update_entry_data(self.hass, entry, data, reload_unchanged=True)
            return self.async_abort(reason="reauth_successful")
        known = await self.async_set_unique_id(device.serial, raise_on_progress=False)
        if known is not None and known.source != SOURCE_IGNORE:
            # paired just now: its certificate and the new token prove it is the device
            async_update_entry_data(self.hass, known, data)
            return self.async_abort(reason="already_configured")
        return self.async_create_entry(title=device.product_name or device.model_name, data=data)

    def _v2_entry_data(self, device: HomeWizardDevice) -> dict[str, Any]:
        return {
            CONF_SOURCE: SOURCE_LOCAL,
            CONF_HOST: self._target.host,
            CONF_SERIAL: device.serial,
            CONF_PRODUCT_TYPE: device.product_type,
            CONF_API_VERSION: 2,
            CONF_TOKEN: self._token,
        }
