"""Setting up and unloading entries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import ConfigEntries, ConfigEntryState
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components import meter_hub
from simulator.homewizard import FakeHomeWizard

from .conftest import local_entry


async def test_local_entry_sets_up_and_unloads(
    hass: HomeAssistant, local_setup: MockConfigEntry
) -> None:
    """A reachable device sets up with its sensors, and unloads cleanly."""
    assert local_setup.state is ConfigEntryState.LOADED
    state = hass.states.get("sensor.p1_meter_energy_import_tariff_1")
    assert state is not None
    assert state.state == "9876.543"
    assert state.attributes["unit_of_measurement"] == "kWh"

    assert await hass.config_entries.async_unload(local_setup.entry_id)
    await hass.async_block_till_done()
    assert local_setup.state is ConfigEntryState.NOT_LOADED


async def test_unreachable_device_retries_setup(
    hass: HomeAssistant, homewizard: FakeHomeWizard
) -> None:
    """A device that does not answer makes Home Assistant retry the setup later."""
    entry = local_entry(homewizard)
    await homewizard.stop()
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY


async def test_setup_and_unload_return_what_home_assistant_expects(
    hass: HomeAssistant, homewizard: FakeHomeWizard
) -> None:
    """True up to Home Assistant 2026.10; None from 2026.11 on, which added
    ``async_unload_platforms_or_raise`` (a boolean is still taken from a custom integration, but
    only None is what 2026.11 asks for)."""
    results: list[object] = []

    def recording(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any) -> Any:
            results.append(result := await method(*args))
            return result

        return call

    entry = local_entry(homewizard)
    entry.add_to_hass(hass)
    with (
        patch.object(meter_hub, "async_setup_entry", recording(meter_hub.async_setup_entry)),
        patch.object(meter_hub, "async_unload_entry", recording(meter_hub.async_unload_entry)),
    ):
        assert await hass.config_entries.async_setup(entry.entry_id)
        assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED
    expected = None if hasattr(ConfigEntries, "async_unload_platforms_or_raise") else True
    assert results == [expected, expected]
