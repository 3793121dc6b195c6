"""Store new connection data in an entry from a flow, and make the entry run with it."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant, callback

from .const import RUNTIME_DATA_KEYS


@callback
def async_update_entry_data(
    hass: HomeAssistant,
    entry: ConfigEntry,
    updates: dict[str, Any],
    *,
    reload_unchanged: bool = False,
) -> None:
    """Store ``updates`` in ``entry``'s data; exactly one reload follows a change of its settings.

    A loaded entry's update listener (``__init__.py``) reloads it when its settings change, so
    the flow must not reload it too (Home Assistant reports a flow that reloads an entry with an
    update listener from 2026.6 on). An entry that is not loaded has no listener: it is reloaded
    here. ``reload_unchanged`` also reloads an entry whose settings stay the same (signed in
    again after the cloud refused the same password).
    """
    changed = any(
        entry.data.get(key) != value
        for key, value in updates.items()
        if key not in RUNTIME_DATA_KEYS
    )
    # the state before the update: the listener starts its reload at once (an eager task)
    listening = entry.state is ConfigEntryState.LOADED
    hass.config_entries.async_update_entry(entry, data={**entry.data, **updates})
    if (changed and not listening) or (not changed and reload_unchanged):
        hass.config_entries.async_schedule_reload(entry.entry_id)
