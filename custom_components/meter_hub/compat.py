"""What differs between the Home Assistant releases Meter Hub supports (2025.4 up to 2026.11).

Every such difference lives here, detected once at import by the feature itself (not by version
numbers, which say nothing about a patched or backported release), so that the rest of the
integration reads as if there were one Home Assistant. Each shim says when it can go: once the
minimum in ``hacs.json`` is at or above the release in its "drop when" line, delete the shim and
use the newer API at its call sites.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final, Literal

from homeassistant.components.recorder.models import StatisticMetaData
from homeassistant.components.sensor import SensorDeviceClass
from homeassistant.config_entries import ConfigEntries, ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import DOMAIN as HOMEASSISTANT_DOMAIN, HomeAssistant
from homeassistant.helpers import device_registry as dr, issue_registry as ir, restore_state

__all__ = [
    "ENTRY_DONE",
    "HAS_UNIT_CLASS",
    "KILO_VOLT_AMPERE_REACTIVE_HOUR",
    "REACTIVE_ENERGY",
    "EntryResult",
    "RepairsFlowResult",
    "async_delete_reauth_issue",
    "async_unload_platforms",
    "device_config_entry_ids",
    "last_stored_state",
    "set_parent_device",
    "vol",
]

# --- validation schemas ---------------------------------------------------------------------------
# Home Assistant 2026.9 replaced voluptuous by probatio. ``import voluptuous`` still works at run
# time (it resolves to probatio's stand-in), but type checkers read the voluptuous package, whose
# schemas Home Assistant's signatures no longer accept. Import ``vol`` from here.
# Drop when the minimum is >= 2026.9 (then ``import probatio as vol`` where it is used).
try:
    import probatio as vol  # type: ignore[import-not-found, unused-ignore]
except ImportError:
    import voluptuous as vol  # type: ignore[no-redef, unused-ignore]

# --- repairs --------------------------------------------------------------------------------------
# Home Assistant types the steps of a repairs flow with ``RepairsFlowResult`` since a release after
# 2026.2 (2026.11 has it); older releases with the generic ``FlowResult``.
# Drop when the minimum is >= 2026.11 (then import it from homeassistant.components.repairs).
try:
    from homeassistant.components.repairs import RepairsFlowResult  # type: ignore[attr-defined, unused-ignore]
except ImportError:
    from homeassistant.data_entry_flow import FlowResult as RepairsFlowResult  # type: ignore[assignment, unused-ignore]

# --- statistics metadata --------------------------------------------------------------------------
# Home Assistant 2025.10 added ``unit_class`` to the statistics metadata and deprecated leaving it
# out; older releases have no such field. Drop when the minimum is >= 2025.10.
HAS_UNIT_CLASS: Final = "unit_class" in (
    StatisticMetaData.__required_keys__ | StatisticMetaData.__optional_keys__
)

# --- sensor device classes ------------------------------------------------------------------------
# Home Assistant 2025.6 added the reactive energy device class and its units (merged 2025-05-16);
# before, such a sensor has no device class and its unit ("kvarh") as plain text.
# Drop when the minimum is >= 2025.6 (then SensorDeviceClass.REACTIVE_ENERGY and
# UnitOfReactiveEnergy.KILO_VOLT_AMPERE_REACTIVE_HOUR).
REACTIVE_ENERGY: Final[SensorDeviceClass | None] = getattr(
    SensorDeviceClass, "REACTIVE_ENERGY", None
)
KILO_VOLT_AMPERE_REACTIVE_HOUR: Final = "kvarh"

# --- devices --------------------------------------------------------------------------------------
# Home Assistant 2026.8 gives a device a single config entry (``DeviceEntry.config_entry_id``) and
# links a device to its parent by the parent's device id (``DeviceInfo.via_device_id``). Since 2026.9
# it reports ``via_device`` (the parent's identifier; stops working in 2027.8), since 2026.10
# ``DeviceEntry.config_entries`` (stops working in 2027.10). Drop when the minimum is >= 2026.8.
HAS_VIA_DEVICE_ID: Final = "via_device_id" in dr.DeviceInfo.__optional_keys__
HAS_DEVICE_CONFIG_ENTRY_ID: Final = hasattr(dr.DeviceEntry, "config_entry_id")


def set_parent_device(
    hass: HomeAssistant, device: dr.DeviceInfo, config_entry_id: str, parent: tuple[str, str]
) -> None:
    """Make ``device`` a sub-device of the device ``parent`` (an identifier) of the entry.

    The parent must be registered first; without it, ``device`` stays unlinked.
    """
    if not HAS_VIA_DEVICE_ID:
        device["via_device"] = parent
        return
    registry = dr.async_get(hass)
    found = registry.async_get_device_by_identifier(parent, config_entry_id)  # type: ignore[attr-defined, unused-ignore]
    if found is not None:
        device["via_device_id"] = found.id  # type: ignore[typeddict-unknown-key, unused-ignore]


def device_config_entry_ids(hass: HomeAssistant, device_id: str) -> set[str]:
    """The ids of the config entries the device ``device_id`` belongs to (none if unknown)."""
    device = dr.async_get(hass).async_get(device_id)
    if device is None:
        return set()
    if HAS_DEVICE_CONFIG_ENTRY_ID:
        return {device.config_entry_id}  # type: ignore[attr-defined, unused-ignore]
    return set(device.config_entries)


# --- reauthentication ----------------------------------------------------------------------------
def async_delete_reauth_issue(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Remove the repair issue of the entry's reauth flow, after aborting that flow.

    Home Assistant 2025.4 leaves the issue behind when the flow is aborted from outside; 2025.5
    removes it with the flow (then this is a no-op). Drop when the minimum is >= 2025.5.
    """
    ir.async_delete_issue(
        hass, HOMEASSISTANT_DOMAIN, f"config_entry_reauth_{entry.domain}_{entry.entry_id}"
    )


# --- setup and unload of an entry -----------------------------------------------------------------
# Home Assistant 2026.11 wants ``async_setup_entry`` and ``async_unload_entry`` to return None and
# to raise when they fail (it added ``async_unload_platforms_or_raise`` for that); older releases
# need True for success (None fails the setup; the unload asserts a boolean).
# Drop when the minimum is >= 2026.11 (then both return None).
ENTRY_METHODS_RETURN_NONE: Final = hasattr(ConfigEntries, "async_unload_platforms_or_raise")
type EntryResult = Literal[True] | None
ENTRY_DONE: Final[EntryResult] = None if ENTRY_METHODS_RETURN_NONE else True


async def async_unload_platforms(
    hass: HomeAssistant, entry: ConfigEntry, platforms: Iterable[Platform]
) -> bool | None:
    """Unload the platforms of ``entry``; the result for ``async_unload_entry`` to return."""
    if ENTRY_METHODS_RETURN_NONE:
        await hass.config_entries.async_unload_platforms_or_raise(entry, platforms)  # type: ignore[attr-defined, unused-ignore]
        return None
    return await hass.config_entries.async_unload_platforms(entry, platforms)


# --- restored states ------------------------------------------------------------------------------
# Home Assistant 2026.11 keeps the states to restore by entity registry id, and the ones still by
# entity id elsewhere; ``async_get_stored_state`` finds either. Before, ``last_states`` held them all.
# Drop when the minimum is >= 2026.11 (then call ``async_get_stored_state``).
def last_stored_state(hass: HomeAssistant, entity_id: str) -> restore_state.StoredState | None:
    """The state ``entity_id`` had when it was last removed (a stop, a reload), if kept."""
    data = restore_state.async_get(hass)
    getter: Callable[[str], restore_state.StoredState | None] | None = getattr(
        data, "async_get_stored_state", None
    )
    if getter is not None:
        return getter(entity_id)
    states: dict[str, restore_state.StoredState] = getattr(data, "last_states", {})
    return states.get(entity_id)
