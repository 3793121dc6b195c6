"""IAMMETER meters on the local network at run time: outages, reboots, a replaced meter, glitches.

Every poll talks HTTP to a fake meter on 127.0.0.1; nothing of the integration is mocked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
import json

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.meter_hub.compat import REACTIVE_ENERGY
from custom_components.meter_hub.const import DOMAIN
from simulator.iammeter_local import FakeIamMeter

from .conftest import async_poll, async_setup_iammeter_local, meter_device


@pytest.fixture
async def meter(socket_enabled: None) -> AsyncIterator[FakeIamMeter]:
    fake = FakeIamMeter("WEM3080T-NEM")
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def entry(hass: HomeAssistant, meter: FakeIamMeter) -> MockConfigEntry:
    return await async_setup_iammeter_local(hass, meter)


def _state(hass: HomeAssistant, key: str, serial: str = "5DB50BF4") -> str:
    entity_id = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{serial}_{key}")
    assert entity_id is not None, key
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


async def test_outage_and_return(
    hass: HomeAssistant,
    meter: FakeIamMeter,
    entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    port = int(meter.host.rpartition(":")[2])
    await meter.stop()
    await async_poll(hass, freezer, 1)
    assert _state(hass, "power_w") == STATE_UNAVAILABLE
    assert _state(hass, "energy_import_kwh") == STATE_UNAVAILABLE
    await meter.start(port)
    await async_poll(hass, freezer, 1)
    assert _state(hass, "energy_import_kwh") == "2975.0"


async def test_reboot_not_ready_makes_no_device(
    hass: HomeAssistant,
    meter: FakeIamMeter,
    entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """After a reboot the meter answers with null values and serial "null": no values, no device."""
    meter.not_ready_polls = 2
    for _ in range(2):
        await async_poll(hass, freezer, 1)
        assert _state(hass, "power_w") == STATE_UNAVAILABLE
    assert meter_device(hass, "null") is None
    await async_poll(hass, freezer, 1)
    assert _state(hass, "power_w") == "1260.0"


async def test_meter_replaced_at_the_same_address(
    hass: HomeAssistant,
    meter: FakeIamMeter,
    entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Another meter's readings are never booked on this one, nor does it get a device."""
    meter.serial = "NEWMETER"
    meter.net_import = 5.0
    await async_poll(hass, freezer, 1)
    assert _state(hass, "energy_import_kwh") == STATE_UNAVAILABLE
    assert meter_device(hass, "NEWMETER") is None
    meter.serial = "5DB50BF4"
    meter.net_import = 2975.0
    await async_poll(hass, freezer, 1)
    assert _state(hass, "energy_import_kwh") == "2975.0"


async def test_counter_glitch_is_held(
    hass: HomeAssistant,
    meter: FakeIamMeter,
    entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """One reading far above what the meter can have measured is not published."""
    meter.net_import = 1_000_000.0
    await async_poll(hass, freezer, 1)
    assert _state(hass, "energy_import_kwh") != "1000000.0"
    meter.net_import = 2975.001
    await async_poll(hass, freezer, 1)
    assert _state(hass, "energy_import_kwh") == "2975.001"


async def test_diagnostics_hide_the_password_and_serial(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    meter: FakeIamMeter,
) -> None:
    """(Without the frozen clock: diagnostics fail under it on Home Assistant 2025.4.)"""
    meter.password = "s3cret"
    config_entry = await async_setup_iammeter_local(
        hass, meter, **{CONF_USERNAME: "admin", CONF_PASSWORD: "s3cret"}
    )
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, config_entry)
    text = json.dumps(diagnostics)
    assert "s3cret" not in text
    assert meter.serial not in text
    assert diagnostics["source"] == {
        "shape": "three_phase_net",
        "model": "WEM3080T",
        "firmware": "i.91.065.3",
    }


async def test_net_metering_switched_makes_the_totals_unavailable(
    hass: HomeAssistant,
    meter: FakeIamMeter,
    entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Other counters are never booked as this one's: no jump, no drop taken for a reset."""
    meter.net_metering = False
    for _ in range(120):
        await async_poll(hass, freezer, 1)
        assert _state(hass, "energy_import_kwh") == STATE_UNAVAILABLE
        assert _state(hass, "energy_export_kwh") == STATE_UNAVAILABLE
    assert _state(hass, "energy_import_l1_kwh") == "1523.456"
    assert _state(hass, "power_w") == "1260.0"
    meter.net_metering = True
    await async_poll(hass, freezer, 1)
    assert _state(hass, "energy_import_kwh") == "2975.0"


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_reactive_energy_is_a_guarded_counter(
    hass: HomeAssistant,
    meter: FakeIamMeter,
    entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """kvarh counters per phase, total_increasing, under the counter rule like the kWh ones."""
    key = "reactive_energy_capacitive_l1_kvarh"
    entity_id = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"5DB50BF4_{key}")
    assert entity_id is not None
    state = hass.states.get(entity_id)
    assert state is not None
    assert state.state == "258.703"
    assert state.attributes["unit_of_measurement"] == "kvarh"
    assert state.attributes["state_class"] == "total_increasing"
    assert state.attributes.get("device_class") == (REACTIVE_ENERGY and "reactive_energy")
    meter.reactive[0][2] = 1_000_000.0
    await async_poll(hass, freezer, 1)
    assert _state(hass, key) == "258.703"
    meter.reactive[0][2] = 258.71
    await async_poll(hass, freezer, 1)
    assert _state(hass, key) == "258.71"
    assert _state(hass, "reactive_energy_inductive_l3_kvarh") == "0.007"
