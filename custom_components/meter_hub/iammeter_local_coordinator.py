"""Coordinator of an IAMMETER meter on the local network."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .api.iammeter import MeterShape
from .api.iammeter.local import (
    AuthRequired,
    Credentials,
    IamMeterLocalClient,
    IamMeterLocalError,
    LocalMeter,
    WrongMeter,
)
from .const import (
    CONF_NET_METERING,
    CONF_SCAN_INTERVAL,
    CONF_SERIAL,
    DOMAIN,
    IAMMETER_LOCAL_SCAN_INTERVAL,
)
from .coordinator import (
    MeterData,
    MeterHubCoordinator,
    MeterHubData,
    communication_error,
    quiet_while_stopping,
    wrong_device_error,
)

if TYPE_CHECKING:
    from .runtime import IamMeterLocalConfigEntry

# The total energy counters, whose meaning net metering changes.
TOTAL_COUNTERS = frozenset({"energy_import_kwh", "energy_export_kwh"})


def iammeter_local_client(
    hass: HomeAssistant, host: str, data: dict[str, Any]
) -> IamMeterLocalClient:
    """The client of the meter at ``host``, with the credentials in ``data`` if there are any."""
    credentials = None
    if CONF_PASSWORD in data:
        credentials = Credentials(data[CONF_USERNAME], data[CONF_PASSWORD])
    return IamMeterLocalClient(async_get_clientsession(hass), host, credentials=credentials)


class IamMeterLocalCoordinator(MeterHubCoordinator):
    """Polls one IAMMETER meter; its answer names the meter, so no reading of another is kept."""

    def __init__(self, hass: HomeAssistant, entry: IamMeterLocalConfigEntry) -> None:
        """Set up polling of the entry's meter at the interval the user chose."""
        interval = timedelta(
            seconds=entry.options.get(
                CONF_SCAN_INTERVAL, IAMMETER_LOCAL_SCAN_INTERVAL.total_seconds()
            )
        )
        super().__init__(hass, entry, entry.title, interval)
        self.client = iammeter_local_client(hass, entry.data[CONF_HOST], dict(entry.data))
        self._last: LocalMeter | None = None

    @quiet_while_stopping
    async def _async_update_data(self) -> MeterHubData:
        try:
            meter = await self.client.monitor(self.config_entry.data[CONF_SERIAL])
        except WrongMeter as err:
            raise wrong_device_error(self.config_entry, err.serial) from err
        except AuthRequired as err:
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN, translation_key="iammeter_credentials"
            ) from err
        except IamMeterLocalError as err:
            # Not ready (just started), 429 (the client waits its Retry-After), unreachable.
            raise communication_error(err) from err
        self._last = meter
        reading = meter.reading
        if self._net_metering_switched(meter):
            # The totals would be other counters (net row or sums of the phases): booking the
            # difference would be energy nobody used. They are unavailable, never other figures.
            values = {k: v for k, v in reading.values.items() if k not in TOTAL_COUNTERS}
            reading = replace(reading, values=values)
        return {meter.serial: MeterData(meter.meter_info(self.client.host), reading)}

    def _net_metering_switched(self, meter: LocalMeter) -> bool:
        """Whether the meter's net metering is not what it was when its entry was made."""
        if meter.shape not in (MeterShape.THREE_PHASE, MeterShape.THREE_PHASE_NET):
            return False
        net = meter.shape is MeterShape.THREE_PHASE_NET
        return bool(net != self.config_entry.data.get(CONF_NET_METERING, net))

    def diagnostics(self) -> dict[str, Any]:
        """What the last answer said of the meter (its values are in the meters' part)."""
        meter = self._last
        if meter is None:
            return {}
        return {"shape": meter.shape, "model": meter.model, "firmware": meter.firmware}
