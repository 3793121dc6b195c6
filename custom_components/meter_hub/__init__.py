"""Meter Hub: IAMMETER cloud accounts and HomeWizard devices in Home Assistant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.typing import ConfigType

from .cloud_coordinator import async_create_cloud_coordinator, reading_store
from .compat import ENTRY_DONE, EntryResult, async_unload_platforms
from .const import CONF_ACCOUNT_ID, CONF_SOURCE, DOMAIN, RUNTIME_DATA_KEYS, SOURCE_LOCAL
from .coordinator import MeterHubConfigEntry, MeterHubCoordinator
from .entity import meter_device_info
from .history import async_setup_history, history_store
from .local_coordinator import async_create_local_coordinator
from .services import async_setup_services

PLATFORMS: list[Platform] = [Platform.BINARY_SENSOR, Platform.SENSOR]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions (they check their target's entry when called)."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: MeterHubConfigEntry) -> EntryResult:
    """Set up a HomeWizard device or an IAMMETER account from a config entry."""
    coordinator: MeterHubCoordinator
    if entry.data[CONF_SOURCE] == SOURCE_LOCAL:
        coordinator = await async_create_local_coordinator(hass, entry)
    else:
        coordinator = await async_create_cloud_coordinator(hass, entry)
    await coordinator.async_config_entry_first_refresh()
    entry.runtime_data = coordinator

    # Register the meters before their entities, so sub-devices can name them as their parent.
    registry = dr.async_get(hass)
    for meter in coordinator.data.values():
        registry.async_get_or_create(
            config_entry_id=entry.entry_id, **meter_device_info(meter.info)
        )

    settings = _settings(entry)

    async def _async_entry_updated(hass: HomeAssistant, entry: MeterHubConfigEntry) -> None:
        # Reload for new options or connection settings (reauth, reconfigure), not for a token.
        if _settings(entry) != settings:
            hass.config_entries.async_schedule_reload(entry.entry_id)

    entry.async_on_unload(entry.add_update_listener(_async_entry_updated))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    if entry.data[CONF_SOURCE] != SOURCE_LOCAL:
        # Backfill of the energy statistics and the place's energy (needs the recorder).
        await async_setup_history(hass, entry)
    return ENTRY_DONE


def _settings(entry: MeterHubConfigEntry) -> tuple[dict[str, Any], Mapping[str, Any]]:
    """What the user set for ``entry``: its options and connection data."""
    data = {key: value for key, value in entry.data.items() if key not in RUNTIME_DATA_KEYS}
    return data, dict(entry.options)


async def async_unload_entry(hass: HomeAssistant, entry: MeterHubConfigEntry) -> bool | None:
    """Unload a config entry."""
    return await async_unload_platforms(hass, entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: MeterHubConfigEntry) -> None:
    """Delete what a removed cloud entry kept in storage: its last reading and its history.

    The call budget stays: its limits are the IP address's and the account's, whoever calls.
    """
    if entry.data[CONF_SOURCE] != SOURCE_LOCAL:
        await reading_store(hass, entry.data[CONF_ACCOUNT_ID]).async_remove()
        await history_store(hass, entry.entry_id).async_remove()


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: MeterHubConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Let the user remove a device of a meter that no longer reports."""
    identifiers = {ident for domain, ident in device.identifiers if domain == DOMAIN}
    for serial, meter in entry.runtime_data.data.items():
        if serial in identifiers or identifiers & meter.reading.externals.keys():
            return False
    return True
