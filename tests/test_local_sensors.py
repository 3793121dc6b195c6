"""Sensors of every HomeWizard device: the entity tables, what the README promises, parsed values.

Each device profile of the simulator is served on 127.0.0.1 and set up as a real config entry.
Every entity's registry entry and state is in Home Assistant's snapshot (``snapshot_platform``);
the assertions written out here are what the README promises (devices, sub-devices, what starts
disabled, units) and the values that prove a data point is parsed right, reviewed against the
vendor document and the simulator payloads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest.mock import patch

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, snapshot_platform
from syrupy.assertion import SnapshotAssertion

from simulator.homewizard import PROFILES, FakeHomeWizard

from .conftest import async_setup_local, meter_device

FIXTURES = Path(__file__).parent / "fixtures" / "homewizard"

# Values as sent, but: power factor 0..1 as percent; timestamps YYMMDDhhmmss in the meter's (Home
# Assistant's) time zone, which is US/Pacific in tests; HWE-SKT and the kWh meters report their
# single register as the total; text (a meter model with two spaces) exactly as sent.
PARSED: dict[str, dict[str, str]] = {
    "HWE-KWH1": {
        "sensor.kwh_meter_power_factor": "95.5",
        "sensor.kwh_meter_energy_import": "512.733",
        "sensor.kwh_meter_apparent_power": "1929.17",
        "sensor.kwh_meter_reactive_power": "405.3",
    },
    "HWE-KWH3": {
        "sensor.kwh_meter_3_phase_power": "-5210.4",
        "sensor.kwh_meter_3_phase_power_phase_2": "-1731.9",
        "sensor.kwh_meter_3_phase_energy_export": "9120.716",
        "sensor.kwh_meter_3_phase_power_factor_phase_3": "98.5",
    },
    "HWE-P1": {
        "sensor.p1_meter_power": "-412",
        "sensor.p1_meter_current_phase_1": "-5",
        "sensor.p1_meter_energy_import": "15234.567",
        "sensor.p1_meter_energy_export_tariff_2": "1976.487",
        "sensor.p1_meter_active_tariff": "2",
        "sensor.p1_meter_peak_demand_time_this_month": "2025-01-15T02:30:15+00:00",
        "sensor.p1_meter_voltage_swells_phase_2": "3",
        "sensor.gas_meter_gas": "3312.874",
        "sensor.gas_meter_last_reading": "2025-01-15T20:10:00+00:00",
        "sensor.water_meter_water": "456.789",
    },
    "HWE-P1-1phase": {
        "sensor.p1_meter_smart_meter_model": "Landis + Gyr  E350",
        "sensor.p1_meter_energy_import_tariff_2": "6120.43",
    },
    "HWE-SKT": {"sensor.energy_socket_energy_import": "41.207"},
    "HWE-WTR": {
        "sensor.watermeter_water_flow": "6.5",
        "sensor.watermeter_total_water_usage": "284.615",
    },
    "SDM230-wifi": {"sensor.kwh_meter_energy_import": "2841"},
    "SDM630-wifi": {"sensor.kwh_meter_3_phase_power_phase_3": "-905"},
}
# README: what starts disabled (the rest is enabled, per-phase voltage, current, power included).
DISABLED_BY_DEFAULT = (
    "power_factor",
    "apparent_",
    "reactive_",
    "frequency_phase",
    "smart_meter_identifier",
    "water_usage_offset",
)
# The controls' entities are snapshotted on the device that has them all.
SNAPSHOTS = [
    *((profile, Platform.SENSOR) for profile in sorted(PROFILES)),
    *(("HWE-SKT", platform) for platform in (Platform.BUTTON, Platform.NUMBER, Platform.SWITCH)),
]

DEVICES: dict[str, dict[str, str]] = {
    "HWE-KWH1": {
        "name": "kWh meter",
        "model": "kWh Meter 1-phase",
        "sw": "4.12",
        "serial": "5c2faf6a7b8c",
    },
    "HWE-KWH3": {
        "name": "KWh meter 3-phase",
        "model": "kWh Meter 3-phase",
        "sw": "4.12",
        "serial": "5c2faf9d0e1f",
    },
    "HWE-P1": {"name": "P1 meter", "model": "P1 Meter", "sw": "4.19", "serial": "5c2fafa1b2c3"},
    "HWE-P1-1phase": {
        "name": "P1 meter",
        "model": "P1 Meter",
        "sw": "5.18",
        "serial": "5c2fafd4e5f6",
    },
    "HWE-SKT": {
        "name": "Energy Socket",
        "model": "Energy Socket",
        "sw": "3.03",
        "serial": "5c2faf0a1b2c",
    },
    "HWE-WTR": {
        "name": "Watermeter",
        "model": "Watermeter",
        "sw": "2.03",
        "serial": "5c2faf2b3c4d",
    },
    "SDM230-wifi": {
        "name": "kWh meter",
        "model": "kWh Meter 1-phase (SDM230)",
        "sw": "3.06",
        "serial": "3c39e7a0b1c2",
    },
    "SDM630-wifi": {
        "name": "KWh meter 3-phase",
        "model": "kWh Meter 3-phase (SDM630)",
        "sw": "3.06",
        "serial": "3c39e7d3e4f5",
    },
}
P1_GAS_ID = "4730303539303033313233343536373138"
P1_WATER_ID = "5730303431303032393837363534333231"


def _fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def _states(hass: HomeAssistant, entity_ids: Any) -> dict[str, str | None]:
    """The state of each of ``entity_ids`` (None: no such entity)."""
    return {
        entity_id: state.state if (state := hass.states.get(entity_id)) else None
        for entity_id in entity_ids
    }


def _sensor_ids(hass: HomeAssistant, entry: MockConfigEntry) -> set[str]:
    return {
        e.entity_id
        for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        if e.domain == "sensor"
    }


# --- every profile ------------------------------------------------------------------------------


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
@pytest.mark.parametrize(("device_profile", "platform"), SNAPSHOTS)
async def test_entities(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    homewizard: FakeHomeWizard,
    platform: Platform,
    snapshot: SnapshotAssertion,
) -> None:
    """Every entity of each device: registry entry and state."""
    with patch("custom_components.meter_hub.PLATFORMS", [platform]):
        entry = await async_setup_local(hass, homewizard)
    await snapshot_platform(hass, entity_registry, snapshot, entry.entry_id)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
@pytest.mark.parametrize("device_profile", sorted(PARSED))
async def test_values_are_parsed_as_sent(
    hass: HomeAssistant, homewizard: FakeHomeWizard, device_profile: str
) -> None:
    await async_setup_local(hass, homewizard)
    expected = PARSED[device_profile]
    assert _states(hass, expected) == expected


@pytest.mark.parametrize("device_profile", sorted(PROFILES))
async def test_rarely_used_entities_are_disabled_by_default(
    hass: HomeAssistant, homewizard: FakeHomeWizard
) -> None:
    entry = await async_setup_local(hass, homewizard)
    entities = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    assert entities
    for entity in entities:
        rarely_used = any(part in entity.entity_id for part in DISABLED_BY_DEFAULT)
        disabled = entity.disabled_by is er.RegistryEntryDisabler.INTEGRATION
        assert disabled == rarely_used, entity.entity_id
        assert (hass.states.get(entity.entity_id) is None) == disabled, entity.entity_id


@pytest.mark.parametrize("device_profile", sorted(PROFILES))
async def test_one_device_per_homewizard_device(
    hass: HomeAssistant, homewizard: FakeHomeWizard, device_profile: str
) -> None:
    entry = await async_setup_local(hass, homewizard)
    expected = DEVICES[device_profile]
    device = meter_device(hass, expected["serial"])
    assert device is not None
    assert device.name == expected["name"]
    assert device.manufacturer == "HomeWizard"
    assert device.model == expected["model"]
    assert device.model_id == homewizard.device["product_type"]
    assert device.sw_version == expected["sw"]
    assert device.serial_number == expected["serial"]
    assert device.configuration_url == f"http://{homewizard.host}"
    assert device.via_device_id is None
    # every entity of a device without external meters belongs to it
    for entity in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id):
        assert entity.unique_id.startswith(f"{expected['serial']}_")
        if "_meter_" not in entity.unique_id:
            assert entity.device_id == device.id


async def test_no_unit_is_spelled_m3(hass: HomeAssistant, local_setup: MockConfigEntry) -> None:
    units = {state.attributes.get("unit_of_measurement") for state in hass.states.async_all()}
    assert "m3" not in units
    assert "m³" in units


# --- external meters ----------------------------------------------------------------------------


async def test_external_meters_are_sub_devices_of_the_p1(
    hass: HomeAssistant, local_setup: MockConfigEntry
) -> None:
    p1 = meter_device(hass, "5c2fafa1b2c3")
    assert p1 is not None
    for kind, meter_id, name in (
        ("gas_meter", P1_GAS_ID, "Gas meter"),
        ("water_meter", P1_WATER_ID, "Water meter"),
    ):
        device = meter_device(hass, f"5c2fafa1b2c3_{kind}_{meter_id}")
        assert device is not None
        assert device.name == name
        assert device.model == name  # its own model, not the P1's
        assert device.model_id is None
        assert device.serial_number == meter_id
        assert device.via_device_id == p1.id
        entities = er.async_entries_for_device(er.async_get(hass), device.id)
        assert {e.unique_id for e in entities} == {
            f"5c2fafa1b2c3_{kind}_{meter_id}_value",
            f"5c2fafa1b2c3_{kind}_{meter_id}_measured_at",
        }


@pytest.mark.parametrize(
    ("payload", "expected", "models"),
    [
        pytest.param(
            "external_heat_gj",
            {
                "sensor.heat_meter_energy": ("48.317", "GJ", "energy"),
                "sensor.heat_meter_last_reading": ("2025-02-01T15:05:00+00:00", None, "timestamp"),
                "sensor.inlet_heat_meter_volume": ("19.04", "m³", "volume"),
                "sensor.inlet_heat_meter_last_reading": (
                    "2025-02-01T15:05:00+00:00",
                    None,
                    "timestamp",
                ),
                "sensor.warm_water_meter_water": ("61.2", "m³", "water"),
                "sensor.warm_water_meter_last_reading": (
                    "2025-02-01T15:00:00+00:00",
                    None,
                    "timestamp",
                ),
            },
            {
                "5c2fafa1b2c3_heat_meter_48303031323334": "Heat meter",
                "5c2fafa1b2c3_inlet_heat_meter_48303031323335": "Inlet heat meter",
                "5c2fafa1b2c3_warm_water_meter_57303031323336": "Warm water meter",
            },
            id="heat-in-gj",
        ),
        pytest.param(
            "external_unknown_type",
            {
                "sensor.cooling_meter_energy": ("12.5", "kWh", "energy"),
                "sensor.cooling_meter_last_reading": (
                    "2025-03-01T17:30:00+00:00",
                    None,
                    "timestamp",
                ),
                # sent with a negative value, no unit and an impossible time: kept, unavailable
                "sensor.water_meter_reading": ("unavailable", None, None),
                "sensor.water_meter_last_reading": ("unavailable", None, "timestamp"),
            },
            {
                "5c2fafa1b2c3_cooling_meter_43303031": "Cooling meter",
                "5c2fafa1b2c3_water_meter_57303033": "Water meter",
            },
            id="unknown-type",
        ),
        pytest.param(
            "legacy_gas_only",
            {
                "sensor.gas_meter_gas": ("1877.203", "m³", "gas"),
                "sensor.gas_meter_last_reading": ("2024-07-01T06:00:00+00:00", None, "timestamp"),
            },
            {"5c2fafa1b2c3_gas_meter_4730303432303031": "Gas meter"},
            id="legacy-gas-fields",
        ),
    ],
)
async def test_external_meter_kinds(
    hass: HomeAssistant,
    homewizard: FakeHomeWizard,
    payload: str,
    expected: dict[str, tuple[str, str | None, str | None]],
    models: dict[str, str],
) -> None:
    """Heat in GJ is energy, water is water, inlet heat in m³ a volume, unknown types are kept."""
    homewizard.data = _fixture(payload)
    entry = await async_setup_local(hass, homewizard)
    shown = {}
    for entity_id in expected:
        state = hass.states.get(entity_id)
        assert state is not None, entity_id
        attributes = state.attributes
        shown[entity_id] = (
            state.state,
            attributes.get("unit_of_measurement"),
            attributes.get("device_class"),
        )
    assert shown == expected
    registry = dr.async_get(hass)
    p1 = meter_device(hass, "5c2fafa1b2c3")
    assert p1 is not None
    sub_devices = {
        ident: device
        for device in dr.async_entries_for_config_entry(registry, entry.entry_id)
        for _, ident in device.identifiers
        if device.via_device_id is not None
    }
    assert {ident: device.model for ident, device in sub_devices.items()} == models
    assert all(device.via_device_id == p1.id for device in sub_devices.values())
    external = {
        e.entity_id
        for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        if e.device_id != p1.id
    }
    assert external == set(expected)


# --- edge-case payloads -------------------------------------------------------------------------


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
@pytest.mark.parametrize(
    ("device_profile", "payload", "expected"),
    [
        pytest.param(
            "HWE-P1",
            "nulls",
            {
                "sensor.p1_meter_wi_fi_ssid": "Meter Hub Lab",
                "sensor.p1_meter_wi_fi_strength": "61",
                "sensor.p1_meter_water_flow": "0",
                "sensor.p1_meter_total_water_usage": "31.207",
            },
            id="nulls-are-not-reported",
        ),
        pytest.param(
            "HWE-P1",
            "p1_minimal",
            {
                "sensor.p1_meter_wi_fi_ssid": "Meter Hub Lab",
                "sensor.p1_meter_dsmr_version": "42",
                "sensor.p1_meter_energy_import_tariff_1": "1520.004",
                "sensor.p1_meter_power": "742",
            },
            id="absent-keys-and-no-made-up-total",
        ),
        pytest.param(
            "HWE-SKT",
            "unknown_keys",
            {
                "sensor.energy_socket_wi_fi_ssid": "Meter Hub Lab",
                "sensor.energy_socket_wi_fi_strength": "77",
                "sensor.energy_socket_energy_import": "88.5",
                "sensor.energy_socket_energy_export": "1.25",
                "sensor.energy_socket_power": "230.4",
                "sensor.energy_socket_power_phase_1": "230.4",
            },
            id="unknown-keys-are-ignored",
        ),
        pytest.param(
            "HWE-P1",
            "wrong_types",
            {
                "sensor.p1_meter_peak_demand_this_month": "3600.0",
                "sensor.p1_meter_current_phase_1": "3.25",
            },
            id="wrong-types-are-dropped",
        ),
    ],
)
async def test_edge_case_payloads(
    hass: HomeAssistant, homewizard: FakeHomeWizard, payload: str, expected: dict[str, str]
) -> None:
    """Only what is sent, as a valid value, becomes a sensor."""
    homewizard.data = _fixture(payload)
    entry = await async_setup_local(hass, homewizard)
    assert _sensor_ids(hass, entry) == set(expected)
    assert _states(hass, expected) == expected


async def test_p1_without_export_has_no_export_sensors(
    hass: HomeAssistant, homewizard: FakeHomeWizard
) -> None:
    homewizard.data = _fixture("p1_no_export")
    entry = await async_setup_local(hass, homewizard)
    assert not [entity_id for entity_id in _sensor_ids(hass, entry) if "export" in entity_id]
    # import tariff 1 exists although there is no export (the reference integration loses it)
    expected = {
        "sensor.p1_meter_energy_import_tariff_1": "11480.303",
        "sensor.p1_meter_energy_import": "20411.908",
        "sensor.p1_meter_power_phase_2": "611",
    }
    assert _states(hass, expected) == expected
