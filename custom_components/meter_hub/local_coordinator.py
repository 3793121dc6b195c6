"""Coordinator of a HomeWizard device on the local network."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from homeassistant.const import CONF_HOST
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.update_coordinator import UpdateFailed
from homeassistant.util import dt as dt_util

from .api.homewizard import ApiDisabled, HomeWizardClient, HomeWizardDevice, HomeWizardError
from .const import CONF_SCAN_INTERVAL, CONF_SERIAL, COUNTER_RESET_HOLD, DOMAIN, LOCAL_SCAN_INTERVAL
from .coordinator import MeterData, MeterHubConfigEntry, MeterHubCoordinator, MeterHubData

# The device's identity (GET /api) is checked again at this pace, after every failure, and
# whenever the shape of the data changes, so that another device answering at the same address
# never has its readings booked on this one.
IDENTITY_CHECK_INTERVAL = timedelta(minutes=1)


class LocalCoordinator(MeterHubCoordinator):
    """Polls ``/api/v1/data`` of one HomeWizard device."""

    counter_reset_hold = COUNTER_RESET_HOLD
    # An external meter (gas, water) not reported for this long is gone: its device is removed.
    device_gone_after = timedelta(hours=1)

    def __init__(
        self, hass: HomeAssistant, entry: MeterHubConfigEntry, client: HomeWizardClient
    ) -> None:
        """Set up polling of ``client`` at the interval the user chose."""
        interval = timedelta(
            seconds=entry.options.get(CONF_SCAN_INTERVAL, LOCAL_SCAN_INTERVAL.total_seconds())
        )
        super().__init__(hass, entry, interval)
        self.client = client
        self.api_disabled = False
        self._device: HomeWizardDevice | None = None
        self._identity_checked = 0.0
        self._shape: frozenset[str] = frozenset()

    async def _async_verify_identity(self) -> HomeWizardDevice:
        """Fetch ``/api`` and make sure it is still the device of this entry."""
        device = await self.client.device()
        if device.serial != self.config_entry.data[CONF_SERIAL]:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="wrong_device",
                translation_placeholders={
                    "host": self.config_entry.data[CONF_HOST],
                    "serial": device.serial,
                },
            )
        self._device = device
        self._identity_checked = self.hass.loop.time()
        return device

    async def _async_update_data(self) -> MeterHubData:
        try:
            device = self._device
            if device is None or (
                self.hass.loop.time() - self._identity_checked
                >= IDENTITY_CHECK_INTERVAL.total_seconds()
            ):
                device = await self._async_verify_identity()
            reading = await self.client.data()
            if reading.values.keys() != self._shape:
                # A new set of data points: first make sure it is still the same device.
                device = await self._async_verify_identity()
                self._shape = frozenset(reading.values)
        except ApiDisabled as err:
            self._device = None
            if not self.api_disabled:
                # Tell the user how to switch the local API back on.
                self.api_disabled = True
                self.config_entry.async_start_reauth(self.hass)
            raise UpdateFailed(translation_domain=DOMAIN, translation_key="api_disabled") from err
        except HomeWizardError as err:
            self._device = None
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="communication_error",
                translation_placeholders={"error": str(err)},
            ) from err
        except UpdateFailed:
            self._device = None
            raise
        self.api_disabled = False
        return {device.serial: MeterData(device.meter_info, reading)}

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
