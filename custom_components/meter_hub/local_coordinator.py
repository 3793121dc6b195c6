"""Coordinator of a HomeWizard device on the local network."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import dataclasses
from datetime import timedelta
import time
from typing import Any

from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.const import CONF_HOST
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.update_coordinator import UpdateFailed
from homeassistant.util import dt as dt_util

from .api.controls import Control, DeviceControls
from .api.homewizard import (
    ApiDisabled,
    HomeWizardClient,
    HomeWizardDevice,
    HomeWizardError,
    Unsupported,
    WrongDevice,
)
from .api.model import Reading, Value
from .compat import async_delete_reauth_issue
from .const import CONF_SCAN_INTERVAL, CONF_SERIAL, DOMAIN, LOCAL_COUNTER_RESET, LOCAL_SCAN_INTERVAL
from .coordinator import (
    MeterData,
    MeterHubConfigEntry,
    MeterHubCoordinator,
    MeterHubData,
    quiet_while_stopping,
)

# The system settings (the cloud connection) change only when someone changes them: read at the
# first poll, after every write and then this often, not on every poll.
SETTINGS_INTERVAL = timedelta(minutes=10)


class LocalCoordinator(MeterHubCoordinator):
    """Polls ``/api`` and ``/api/v1/data`` of one HomeWizard device, one poll at a time."""

    counter_reset_rule = LOCAL_COUNTER_RESET
    # An external meter (gas, water) not reported for this long is gone: its device is removed.
    device_gone_after = timedelta(hours=1)

    def __init__(
        self, hass: HomeAssistant, entry: MeterHubConfigEntry, client: HomeWizardClient
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
        # A refresh asked for while a slow device is still answering waits for it.
        self._poll_lock = asyncio.Lock()
        # Endpoints of the controls that this device's firmware turned out not to have.
        self._unsupported: set[Control] = set()
        self._settings: dict[str, Value] = {}
        self._settings_due = 0.0

    @quiet_while_stopping
    async def _async_update_data(self) -> MeterHubData:
        async with self._poll_lock:
            try:
                # When the address is handed to another device (a new DHCP lease), its readings
                # must never be booked on this one, not even once: the client checks the serial
                # of every connection the readings come over.
                device, reading = await self.client.measurement(self.config_entry.data[CONF_SERIAL])
                reading = await self._with_controls(device, reading)
            except WrongDevice as err:
                raise UpdateFailed(
                    translation_domain=DOMAIN,
                    translation_key="wrong_device",
                    translation_placeholders={
                        "host": self.config_entry.data[CONF_HOST],
                        "serial": err.serial,
                    },
                ) from err
            except ApiDisabled as err:
                if not self.api_disabled:
                    # Tell the user how to switch the local API back on.
                    self.api_disabled = True
                    self._reauth_may_be_open = True
                    self.config_entry.async_start_reauth(self.hass)
                raise UpdateFailed(
                    translation_domain=DOMAIN, translation_key="api_disabled"
                ) from err
            except HomeWizardError as err:
                raise UpdateFailed(
                    translation_domain=DOMAIN,
                    translation_key="communication_error",
                    translation_placeholders={"error": str(err)},
                ) from err
        self.api_disabled = False
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
        """Send ``write``, then poll at once, the settings included."""
        await write(self.client)
        self._settings_due = 0.0
        await self.async_refresh()

    def diagnostics(self) -> dict[str, Any]:
        """The last raw payloads of the device."""
        return {
            "device": self.client.last_device_payload,
            "data": self.client.last_data_payload,
        }


async def async_create_local_coordinator(
    hass: HomeAssistant, entry: MeterHubConfigEntry
) -> LocalCoordinator:
    """Build the client and coordinator of a local entry."""
    client = HomeWizardClient(
        async_get_clientsession(hass), entry.data[CONF_HOST], tz=dt_util.get_default_time_zone()
    )
    return LocalCoordinator(hass, entry, client)
