"""Coordinator of a HomeWizard device on the local network."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import dataclasses
from datetime import timedelta
import time
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntry
from homeassistant.const import CONF_HOST
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.update_coordinator import UpdateFailed
from homeassistant.util import dt as dt_util

from .api.controls import Control, DeviceControls
from .api.homewizard.client import HomeWizardClient
from .api.homewizard.errors import (
    ApiDisabled,
    HomeWizardError,
    Unauthorized,
    Unsupported,
    WrongDevice,
)
from .api.homewizard.models import HomeWizardDevice, supports_api_v2
from .api.homewizard.push import supports_push
from .api.homewizard.tls import server_hostname, shared_ssl_context
from .api.homewizard.v2_client import HomeWizardV2Client
from .api.model import Reading, Value
from .compat import async_delete_reauth_issue
from .const import (
    CONF_API_VERSION,
    CONF_PRODUCT_TYPE,
    CONF_PUSH,
    CONF_PUSH_INTERVAL_MS,
    CONF_SCAN_INTERVAL,
    CONF_SERIAL,
    CONF_TOKEN,
    DOMAIN,
    LOCAL_SCAN_INTERVAL,
    PUSH_STALE_AFTER,
)
from .coordinator import (
    MeterData,
    MeterHubCoordinator,
    MeterHubData,
    communication_error,
    quiet_while_stopping,
    wrong_device_error,
)
from .push_link import PushLink
from .repairs import async_offer_api_v2

if TYPE_CHECKING:
    from .runtime import HomeWizardConfigEntry

# The system settings (the cloud connection) change only when someone changes them: read at the
# first poll, after every write and then this often, not on every poll.
SETTINGS_INTERVAL = timedelta(minutes=10)


class LocalCoordinator(MeterHubCoordinator):
    """Polls one HomeWizard device (API v1 or v2), one poll at a time."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: HomeWizardConfigEntry,
        client: HomeWizardClient | HomeWizardV2Client,
    ) -> None:
        """Set up polling of ``client`` at the interval the user chose."""
        interval = timedelta(
            seconds=entry.options.get(CONF_SCAN_INTERVAL, LOCAL_SCAN_INTERVAL.total_seconds())
        )
        super().__init__(hass, entry, entry.title, interval)
        self.client = client
        # Set while the local API is off; the user is asked once per outage to switch it on.
        self.api_disabled = False
        # A reauth flow of this entry may be open (started here, or before a reload or a setup
        # retry): the next successful poll ends it, the API is evidently on.
        self._reauth_may_be_open = True
        # A refresh asked for while a slow device is still answering waits for it. Home Assistant
        # before 2025.11 (core PR 153685) runs ``async_refresh`` (a control's read-back) outside the
        # debouncer's lock, next to a scheduled poll (tests/test_local_runtime.py,
        # test_polls_never_overlap). Drop when the minimum is >= 2025.11.
        self._poll_lock = asyncio.Lock()
        # The device as last read, and how the move to API v2 was offered: None not yet, False
        # as available, True as needed (v1 switched off). A v2 entry needs no offer.
        self._device: HomeWizardDevice | None = None
        self._v2_offer: bool | None = True if isinstance(client, HomeWizardV2Client) else None
        # Endpoints of the controls that this device's firmware turned out not to have.
        self._unsupported: set[Control] = set()
        self._settings: dict[str, Value] = {}
        self._settings_due = 0.0
        # The WebSocket of a v2 device, once started (then polling is its fallback only).
        self.push: PushLink | None = None

    def async_start_streams(self) -> None:
        """Open the WebSocket of a v2 device that has one, unless the user chose polling."""
        device, client = self._device, self.client
        if (
            not isinstance(client, HomeWizardV2Client)
            or device is None
            or not supports_push(device.product_type)
            or not self.config_entry.options.get(CONF_PUSH, True)
        ):
            return
        self.push = PushLink(
            self,
            client,
            publish_interval=self.config_entry.options.get(CONF_PUSH_INTERVAL_MS, 0) / 1000,
            stale_after=PUSH_STALE_AFTER,
        )
        self.push.async_start(device)

    def _offer_api_v2(self, *, v1_disabled: bool) -> None:
        """Offer the move of a v1 entry to API v2 when its device has v2 (again once v1 is off)."""
        device = self._device
        if (
            self._v2_offer is True
            or (self._v2_offer is False and not v1_disabled)
            or device is None
            or not supports_api_v2(device.product_type, device.firmware_version)
        ):
            return
        self._v2_offer = v1_disabled
        async_offer_api_v2(self.hass, self.config_entry, v1_disabled=v1_disabled)

    @quiet_while_stopping
    async def _async_update_data(self) -> MeterHubData:
        push = self.push
        if push is not None and self.data is not None:
            if push.pushing:
                # Never poll and push at once (a refresh asked for while the socket delivers).
                return self.data
            try:
                return await self._async_poll()
            except UpdateFailed:
                # A device that reboots, a Wi-Fi drop: the last pushed reading stands a moment.
                if push.keeps_last_reading():
                    return self.data
                raise
        return await self._async_poll()

    async def _async_poll(self) -> MeterHubData:
        async with self._poll_lock:
            try:
                # When the address is handed to another device (a new DHCP lease), its readings
                # must never be booked on this one, not even once: the client checks the serial
                # of every connection the readings come over.
                device, reading = await self.client.measurement(self.config_entry.data[CONF_SERIAL])
                reading = await self._with_controls(device, reading)
            except WrongDevice as err:
                raise wrong_device_error(self.config_entry, err.serial) from err
            except Unauthorized as err:
                # A user removed in the app, or a token replaced: pair again (reauth).
                raise ConfigEntryAuthFailed(
                    translation_domain=DOMAIN, translation_key="token_refused"
                ) from err
            except ApiDisabled as err:
                # API v1 switched off on a device that has v2: the user is led to the move.
                self._offer_api_v2(v1_disabled=True)
                if not self.api_disabled:
                    # Tell the user how to switch the local API back on.
                    self.api_disabled = True
                    self._reauth_may_be_open = True
                    self.config_entry.async_start_reauth(self.hass)
                raise UpdateFailed(
                    translation_domain=DOMAIN, translation_key="api_disabled"
                ) from err
            except HomeWizardError as err:
                raise communication_error(err) from err
        self.api_disabled = False
        self._device = device
        self._offer_api_v2(v1_disabled=False)
        if self._reauth_may_be_open:
            self._reauth_may_be_open = False
            for flow in self.config_entry.async_get_active_flows(self.hass, {SOURCE_REAUTH}):
                self.hass.config_entries.flow.async_abort(flow["flow_id"])
            async_delete_reauth_issue(self.hass, self.config_entry)
        return {device.serial: MeterData(device.meter_info, reading)}

    async def _with_controls(self, device: HomeWizardDevice, reading: Reading) -> Reading:
        """Add the state of the device's controls: the socket's on every poll, the settings seldom.

        Only the socket has ``/api/v1/state``; the other devices' polls stay one request.
        """
        if not isinstance(self.client, HomeWizardClient):
            return reading
        controls = device.controls - self._unsupported
        values: dict[str, Value] = {}
        if Control.POWER in controls:
            try:
                values.update(await self.client.state())
            except Unsupported:
                self._unsupported.update((Control.POWER, Control.SWITCH_LOCK, Control.BRIGHTNESS))
        if Control.CLOUD in controls and time.monotonic() >= self._settings_due:
            try:
                self._settings = await self.client.system()
            except Unsupported:
                self._unsupported.add(Control.CLOUD)
            self._settings_due = time.monotonic() + SETTINGS_INTERVAL.total_seconds()
        values.update(self._settings)
        if not values:
            return reading
        return dataclasses.replace(reading, values=reading.values | values)

    async def async_control(self, write: Callable[[DeviceControls], Awaitable[None]]) -> None:
        """Send ``write``, then read the state back: a poll at once, the settings included.

        While a v2 device pushes, the refresh does not poll: the device pushes the topic that
        changed. A refused token (API v2) starts the reauth, as a refused poll does.
        """
        try:
            await write(self.client)
        except Unauthorized:
            self.config_entry.async_start_reauth(self.hass)
            raise
        self._settings_due = 0.0
        await self.async_refresh()

    def diagnostics(self) -> dict[str, Any]:
        """The last raw payloads of the device."""
        payloads = {
            "device": self.client.last_device_payload,
            "data": self.client.last_data_payload,
        }
        return payloads if self.push is None else {**payloads, "push": self.push.diagnostics()}


async def async_create_local_coordinator(
    hass: HomeAssistant, entry: HomeWizardConfigEntry
) -> LocalCoordinator:
    """Build the client and coordinator of a local entry."""
    return LocalCoordinator(hass, entry, await async_entry_client(hass, entry))


async def async_entry_client(
    hass: HomeAssistant, entry: ConfigEntry, host: str | None = None
) -> HomeWizardClient | HomeWizardV2Client:
    """The client of the device of a local entry, at its address or at ``host``."""
    session, tz = async_get_clientsession(hass), dt_util.get_default_time_zone()
    host = host or entry.data[CONF_HOST]
    if entry.data.get(CONF_API_VERSION) == 2:
        return HomeWizardV2Client(
            session,
            host,
            device_name=server_hostname(entry.data[CONF_PRODUCT_TYPE], entry.data[CONF_SERIAL]),
            token=entry.data[CONF_TOKEN],
            ssl_context=await shared_ssl_context(),
            tz=tz,
        )
    return HomeWizardClient(session, host, tz=tz)
