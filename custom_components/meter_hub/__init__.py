"""Meter Hub: IAMMETER cloud accounts and HomeWizard devices in Home Assistant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.const import CONF_USERNAME, Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import (
    config_validation as cv,
    device_registry as dr,
    entity_registry as er,
)
from homeassistant.helpers.typing import ConfigType

from .cloud_coordinator import cloud_entry_title, reading_store
from .compat import ENTRY_DONE, EntryResult, async_unload_platforms, device_config_entry_ids
from .const import (
    CONF_ACCOUNT_ID,
    CONF_SERIAL,
    CONF_SOURCE,
    DOMAIN,
    LOGGER,
    RUNTIME_DATA_KEYS,
    SOURCE_LOCAL,
)
from .coordinator import MeterHubConfigEntry, MeterHubCoordinator, SourceRuntime, external_device_id
from .entity import meter_device_info
from .history import history_store
from .iammeter_link import async_setup_links
from .iammeter_local_coordinator import IamMeterLocalCoordinator
from .local_coordinator import async_create_local_coordinator
from .runtime import (
    async_create_cloud_runtime,
    is_cloud_entry,
    is_homewizard_entry,
    is_iammeter_local_entry,
)
from .services import async_setup_services

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions (they check their target's entry when called)."""
    async_setup_services(hass)
    return True


async def async_migrate_entry(hass: HomeAssistant, entry: MeterHubConfigEntry) -> bool:
    """Bring an entry of an older release up to date (``False``: one of a newer release)."""
    if entry.version > 2:
        return False
    if entry.version == 1:
        if entry.data[CONF_SOURCE] == SOURCE_LOCAL:
            await _async_scope_external_meters(hass, entry, entry.data[CONF_SERIAL])
        hass.config_entries.async_update_entry(entry, version=2, minor_version=1)
    return True


async def _async_scope_external_meters(
    hass: HomeAssistant, entry: MeterHubConfigEntry, serial: str
) -> None:
    """Version 1 -> 2: external meters' ids get their parent's serial as a prefix.

    Version 1 named them by type and id alone (``gas_meter_legacy_gas_value``), so two P1 meters
    with the same (or no) gas meter id competed for one entity. Only the ids change: entity ids,
    names, areas and the statistics (which follow the entity id) stay. Every id of a HomeWizard
    entry that does not start with its serial is one of an external meter; a cloud entry has none.
    """
    prefix = f"{serial}_"

    @callback
    def scoped(entity: er.RegistryEntry) -> dict[str, Any] | None:
        if entity.unique_id.startswith(prefix):
            return None
        return {"new_unique_id": prefix + entity.unique_id}

    await er.async_migrate_entries(hass, entry.entry_id, scoped)
    entities, devices = er.async_get(hass), dr.async_get(hass)
    for device in dr.async_entries_for_config_entry(devices, entry.entry_id):
        old = {ident for domain, ident in device.identifiers if domain == DOMAIN}
        if not old or serial in old or all(ident.startswith(prefix) for ident in old):
            continue
        own_entities = [
            entity
            for entity in er.async_entries_for_device(
                entities, device.id, include_disabled_entities=True
            )
            if entity.config_entry_id == entry.entry_id
        ]
        if device_config_entry_ids(hass, device.id) != {entry.entry_id} and not own_entities:
            # A device two meters shared in version 1 belongs to the one whose entities it
            # carries; the other gets a device of its own at setup.
            devices.async_update_device(device.id, remove_config_entry_id=entry.entry_id)
            continue
        new = {(DOMAIN, ident if ident.startswith(prefix) else prefix + ident) for ident in old}
        LOGGER.debug("Device identifiers %s scoped to %s", sorted(old), serial)
        devices.async_update_device(
            device.id,
            new_identifiers=new | {ident for ident in device.identifiers if ident[0] != DOMAIN},
        )


async def async_setup_entry(hass: HomeAssistant, entry: MeterHubConfigEntry) -> EntryResult:
    """Set up a HomeWizard device or an IAMMETER account from a config entry."""
    runtime = await _async_create_runtime(hass, entry)
    coordinator = runtime.coordinator
    await coordinator.async_config_entry_first_refresh()
    entry.runtime_data = runtime

    # Register the meters before their entities, so sub-devices can name them as their parent.
    registry = dr.async_get(hass)
    for meter in coordinator.data.values():
        registry.async_get_or_create(
            config_entry_id=entry.entry_id, **meter_device_info(meter.info)
        )

    if is_cloud_entry(entry):
        # Before the settings are taken: adopting a local entry of a meter adds its address.
        await async_setup_links(hass, entry, entry.runtime_data.coordinator)
    settings = _settings(entry)

    async def _async_entry_updated(hass: HomeAssistant, entry: MeterHubConfigEntry) -> None:
        # Reload for new options or connection settings (reauth, reconfigure), not for a token.
        if _settings(entry) != settings:
            hass.config_entries.async_schedule_reload(entry.entry_id)

    entry.async_on_unload(entry.add_update_listener(_async_entry_updated))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    # What the source pushes; a cloud entry's backfill and place energy (needs the recorder).
    await runtime.async_start()
    return ENTRY_DONE


async def _async_create_runtime(
    hass: HomeAssistant, entry: MeterHubConfigEntry
) -> SourceRuntime[MeterHubCoordinator]:
    """The runtime data of ``entry``'s source, before its first poll."""
    if is_iammeter_local_entry(entry):
        return SourceRuntime(IamMeterLocalCoordinator(hass, entry))
    if is_homewizard_entry(entry):
        return SourceRuntime(await async_create_local_coordinator(hass, entry))
    if not is_cloud_entry(entry):  # pragma: no cover - every entry is of one of the sources
        raise NotImplementedError(entry.data[CONF_SOURCE])
    if entry.title == entry.data[CONF_USERNAME]:
        # Entries of earlier versions were named after the user name (often an e-mail
        # address), which Home Assistant writes into log lines the README asks to share.
        hass.config_entries.async_update_entry(
            entry, title=cloud_entry_title(entry.data[CONF_ACCOUNT_ID])
        )
    return await async_create_cloud_runtime(hass, entry)


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
    for serial, meter in entry.runtime_data.coordinator.data.items():
        reported = {external_device_id(serial, ext) for ext in meter.reading.externals.values()}
        if serial in identifiers or identifiers & reported:
            return False
    return True
