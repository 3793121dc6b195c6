"""Sensors of every HomeWizard device: state, unit, device class, state class, precision, devices.

Each device profile of the simulator is served on 127.0.0.1 and set up as a real config entry;
every entity it creates is checked against the table below (and, in addition, a snapshot).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components.meter_hub.api.model import phase_key
from custom_components.meter_hub.sensor import SENSORS
from simulator.homewizard import PROFILES, FakeHomeWizard

from .conftest import async_setup_local, meter_device

FIXTURES = Path(__file__).parent / "fixtures" / "homewizard"


class E(NamedTuple):
    """What one entity must look like (with every entity enabled)."""

    object_id: str
    state: str
    unit: str | None
    device_class: str | None
    state_class: str | None
    precision: int | None
    category: str | None
    enabled_by_default: bool


# Reviewed against the vendor document and the simulator payloads: values as sent (power factor
# 0..1 as percent), timestamps YYMMDDhhmmss in the meter's (Home Assistant's) time zone, which is
# US/Pacific in tests; HWE-SKT and the kWh meters report their single register as the total.
EXPECTED: dict[str, list[E]] = {
    "HWE-KWH1": [
        E("kwh_meter_apparent_current", "8.402", "A", "current", "measurement", 2, None, False),
        E(
            "kwh_meter_apparent_power",
            "1929.17",
            "VA",
            "apparent_power",
            "measurement",
            0,
            None,
            False,
        ),
        E("kwh_meter_current", "8.214", "A", "current", "measurement", 2, None, True),
        E("kwh_meter_energy_export", "2.04", "kWh", "energy", "total_increasing", 3, None, True),
        E("kwh_meter_energy_import", "512.733", "kWh", "energy", "total_increasing", 3, None, True),
        E("kwh_meter_frequency", "49.98", "Hz", "frequency", "measurement", 2, None, True),
        E("kwh_meter_power", "1843.2", "W", "power", "measurement", 0, None, True),
        E("kwh_meter_power_factor", "95.5", "%", "power_factor", "measurement", 0, None, False),
        E("kwh_meter_power_phase_1", "1843.2", "W", "power", "measurement", 0, None, True),
        E("kwh_meter_reactive_current", "1.765", "A", "current", "measurement", 2, None, False),
        E(
            "kwh_meter_reactive_power",
            "405.3",
            "var",
            "reactive_power",
            "measurement",
            0,
            None,
            False,
        ),
        E("kwh_meter_voltage", "229.61", "V", "voltage", "measurement", 1, None, True),
        E("kwh_meter_wi_fi_ssid", "Meter Hub Lab", None, None, None, None, "diagnostic", True),
        E("kwh_meter_wi_fi_strength", "78", "%", None, "measurement", None, "diagnostic", True),
    ],
    "HWE-KWH3": [
        E(
            "kwh_meter_3_phase_apparent_current",
            "22.71",
            "A",
            "current",
            "measurement",
            2,
            None,
            False,
        ),
        E(
            "kwh_meter_3_phase_apparent_current_phase_1",
            "7.58",
            "A",
            "current",
            "measurement",
            2,
            None,
            False,
        ),
        E(
            "kwh_meter_3_phase_apparent_current_phase_2",
            "7.55",
            "A",
            "current",
            "measurement",
            2,
            None,
            False,
        ),
        E(
            "kwh_meter_3_phase_apparent_current_phase_3",
            "7.58",
            "A",
            "current",
            "measurement",
            2,
            None,
            False,
        ),
        E(
            "kwh_meter_3_phase_apparent_power",
            "5292.6",
            "VA",
            "apparent_power",
            "measurement",
            0,
            None,
            False,
        ),
        E(
            "kwh_meter_3_phase_apparent_power_phase_1",
            "1769.2",
            "VA",
            "apparent_power",
            "measurement",
            0,
            None,
            False,
        ),
        E(
            "kwh_meter_3_phase_apparent_power_phase_2",
            "1758.2",
            "VA",
            "apparent_power",
            "measurement",
            0,
            None,
            False,
        ),
        E(
            "kwh_meter_3_phase_apparent_power_phase_3",
            "1765.2",
            "VA",
            "apparent_power",
            "measurement",
            0,
            None,
            False,
        ),
        E("kwh_meter_3_phase_current", "22.5", "A", "current", "measurement", 2, None, True),
        E(
            "kwh_meter_3_phase_current_phase_1",
            "7.51",
            "A",
            "current",
            "measurement",
            2,
            None,
            True,
        ),
        E(
            "kwh_meter_3_phase_current_phase_2",
            "7.47",
            "A",
            "current",
            "measurement",
            2,
            None,
            True,
        ),
        E(
            "kwh_meter_3_phase_current_phase_3",
            "7.52",
            "A",
            "current",
            "measurement",
            2,
            None,
            True,
        ),
        E(
            "kwh_meter_3_phase_energy_export",
            "9120.716",
            "kWh",
            "energy",
            "total_increasing",
            3,
            None,
            True,
        ),
        E(
            "kwh_meter_3_phase_energy_import",
            "1804.35",
            "kWh",
            "energy",
            "total_increasing",
            3,
            None,
            True,
        ),
        E("kwh_meter_3_phase_frequency", "50.01", "Hz", "frequency", "measurement", 2, None, True),
        E("kwh_meter_3_phase_power", "-5210.4", "W", "power", "measurement", 0, None, True),
        E(
            "kwh_meter_3_phase_power_factor",
            "98.4",
            "%",
            "power_factor",
            "measurement",
            0,
            None,
            False,
        ),
        E(
            "kwh_meter_3_phase_power_factor_phase_1",
            "98.3",
            "%",
            "power_factor",
            "measurement",
            0,
            None,
            False,
        ),
        E(
            "kwh_meter_3_phase_power_factor_phase_2",
            "98.5",
            "%",
            "power_factor",
            "measurement",
            0,
            None,
            False,
        ),
        E(
            "kwh_meter_3_phase_power_factor_phase_3",
            "98.5",
            "%",
            "power_factor",
            "measurement",
            0,
            None,
            False,
        ),
        E("kwh_meter_3_phase_power_phase_1", "-1740.2", "W", "power", "measurement", 0, None, True),
        E("kwh_meter_3_phase_power_phase_2", "-1731.9", "W", "power", "measurement", 0, None, True),
        E("kwh_meter_3_phase_power_phase_3", "-1738.3", "W", "power", "measurement", 0, None, True),
        E(
            "kwh_meter_3_phase_reactive_current",
            "2.94",
            "A",
            "current",
            "measurement",
            2,
            None,
            False,
        ),
        E(
            "kwh_meter_3_phase_reactive_current_phase_1",
            "0.98",
            "A",
            "current",
            "measurement",
            2,
            None,
            False,
        ),
        E(
            "kwh_meter_3_phase_reactive_current_phase_2",
            "0.97",
            "A",
            "current",
            "measurement",
            2,
            None,
            False,
        ),
        E(
            "kwh_meter_3_phase_reactive_current_phase_3",
            "0.99",
            "A",
            "current",
            "measurement",
            2,
            None,
            False,
        ),
        E(
            "kwh_meter_3_phase_reactive_power",
            "686.1",
            "var",
            "reactive_power",
            "measurement",
            0,
            None,
            False,
        ),
        E(
            "kwh_meter_3_phase_reactive_power_phase_1",
            "228.7",
            "var",
            "reactive_power",
            "measurement",
            0,
            None,
            False,
        ),
        E(
            "kwh_meter_3_phase_reactive_power_phase_2",
            "225.9",
            "var",
            "reactive_power",
            "measurement",
            0,
            None,
            False,
        ),
        E(
            "kwh_meter_3_phase_reactive_power_phase_3",
            "231.5",
            "var",
            "reactive_power",
            "measurement",
            0,
            None,
            False,
        ),
        E(
            "kwh_meter_3_phase_voltage_phase_1",
            "233.4",
            "V",
            "voltage",
            "measurement",
            1,
            None,
            True,
        ),
        E(
            "kwh_meter_3_phase_voltage_phase_2",
            "232.87",
            "V",
            "voltage",
            "measurement",
            1,
            None,
            True,
        ),
        E(
            "kwh_meter_3_phase_voltage_phase_3",
            "233.05",
            "V",
            "voltage",
            "measurement",
            1,
            None,
            True,
        ),
        E(
            "kwh_meter_3_phase_wi_fi_ssid",
            "Meter Hub Lab",
            None,
            None,
            None,
            None,
            "diagnostic",
            True,
        ),
        E(
            "kwh_meter_3_phase_wi_fi_strength",
            "81",
            "%",
            None,
            "measurement",
            None,
            "diagnostic",
            True,
        ),
    ],
    "HWE-P1-1phase": [
        E("p1_meter_active_tariff", "1", None, "enum", None, None, None, True),
        E("p1_meter_current_phase_1", "1", "A", "current", "measurement", 2, None, True),
        E("p1_meter_dsmr_version", "42", None, None, None, None, "diagnostic", True),
        E(
            "p1_meter_energy_export_tariff_1",
            "811.2",
            "kWh",
            "energy",
            "total_increasing",
            3,
            None,
            True,
        ),
        E(
            "p1_meter_energy_export_tariff_2",
            "1904.655",
            "kWh",
            "energy",
            "total_increasing",
            3,
            None,
            True,
        ),
        E(
            "p1_meter_energy_import_tariff_1",
            "7342.118",
            "kWh",
            "energy",
            "total_increasing",
            3,
            None,
            True,
        ),
        E(
            "p1_meter_energy_import_tariff_2",
            "6120.43",
            "kWh",
            "energy",
            "total_increasing",
            3,
            None,
            True,
        ),
        E("p1_meter_long_power_failures", "1", None, None, None, None, "diagnostic", True),
        E("p1_meter_power", "318", "W", "power", "measurement", 0, None, True),
        E("p1_meter_power_failures", "3", None, None, None, None, "diagnostic", True),
        E("p1_meter_power_phase_1", "318", "W", "power", "measurement", 0, None, True),
        E(
            "p1_meter_smart_meter_identifier",
            "E0042006114477036",
            None,
            None,
            None,
            None,
            "diagnostic",
            False,
        ),
        E(
            "p1_meter_smart_meter_model",
            "Landis + Gyr  E350",
            None,
            None,
            None,
            None,
            "diagnostic",
            True,
        ),
        E("p1_meter_voltage_phase_1", "232.1", "V", "voltage", "measurement", 1, None, True),
        E("p1_meter_voltage_sags_phase_1", "0", None, None, None, None, "diagnostic", True),
        E("p1_meter_voltage_swells_phase_1", "1", None, None, None, None, "diagnostic", True),
        E("p1_meter_wi_fi_ssid", "Meter Hub Lab", None, None, None, None, "diagnostic", True),
        E("p1_meter_wi_fi_strength", "72", "%", None, "measurement", None, "diagnostic", True),
    ],
    "HWE-P1": [
        E("gas_meter_gas", "3312.874", "m³", "gas", "total_increasing", 3, None, True),
        E(
            "gas_meter_last_reading",
            "2025-01-15T20:10:00+00:00",
            None,
            "timestamp",
            None,
            None,
            "diagnostic",
            True,
        ),
        E("p1_meter_active_tariff", "2", None, "enum", None, None, None, True),
        E("p1_meter_average_demand", "1876.0", "W", "power", "measurement", 0, None, True),
        E("p1_meter_current_phase_1", "-5", "A", "current", "measurement", 2, None, True),
        E("p1_meter_current_phase_2", "2", "A", "current", "measurement", 2, None, True),
        E("p1_meter_current_phase_3", "1", "A", "current", "measurement", 2, None, True),
        E("p1_meter_dsmr_version", "50", None, None, None, None, "diagnostic", True),
        E("p1_meter_energy_export", "3210.987", "kWh", "energy", "total_increasing", 3, None, True),
        E(
            "p1_meter_energy_export_tariff_1",
            "1234.5",
            "kWh",
            "energy",
            "total_increasing",
            3,
            None,
            True,
        ),
        E(
            "p1_meter_energy_export_tariff_2",
            "1976.487",
            "kWh",
            "energy",
            "total_increasing",
            3,
            None,
            True,
        ),
        E(
            "p1_meter_energy_import",
            "15234.567",
            "kWh",
            "energy",
            "total_increasing",
            3,
            None,
            True,
        ),
        E(
            "p1_meter_energy_import_tariff_1",
            "9876.543",
            "kWh",
            "energy",
            "total_increasing",
            3,
            None,
            True,
        ),
        E(
            "p1_meter_energy_import_tariff_2",
            "5358.024",
            "kWh",
            "energy",
            "total_increasing",
            3,
            None,
            True,
        ),
        E("p1_meter_frequency", "50.02", "Hz", "frequency", "measurement", 2, None, True),
        E("p1_meter_long_power_failures", "2", None, None, None, None, "diagnostic", True),
        E("p1_meter_peak_demand_this_month", "4321.0", "W", "power", None, 0, None, True),
        E(
            "p1_meter_peak_demand_time_this_month",
            "2025-01-15T02:30:15+00:00",
            None,
            "timestamp",
            None,
            None,
            None,
            True,
        ),
        E("p1_meter_power", "-412", "W", "power", "measurement", 0, None, True),
        E("p1_meter_power_failures", "7", None, None, None, None, "diagnostic", True),
        E("p1_meter_power_phase_1", "-1210", "W", "power", "measurement", 0, None, True),
        E("p1_meter_power_phase_2", "533", "W", "power", "measurement", 0, None, True),
        E("p1_meter_power_phase_3", "265", "W", "power", "measurement", 0, None, True),
        E(
            "p1_meter_smart_meter_identifier",
            "E0051002731458219",
            None,
            None,
            None,
            None,
            "diagnostic",
            False,
        ),
        E(
            "p1_meter_smart_meter_model",
            "ISKRA  2M550T-101",
            None,
            None,
            None,
            None,
            "diagnostic",
            True,
        ),
        E("p1_meter_voltage_phase_1", "231.2", "V", "voltage", "measurement", 1, None, True),
        E("p1_meter_voltage_phase_2", "229.8", "V", "voltage", "measurement", 1, None, True),
        E("p1_meter_voltage_phase_3", "230.4", "V", "voltage", "measurement", 1, None, True),
        E("p1_meter_voltage_sags_phase_1", "2", None, None, None, None, "diagnostic", True),
        E("p1_meter_voltage_sags_phase_2", "1", None, None, None, None, "diagnostic", True),
        E("p1_meter_voltage_sags_phase_3", "0", None, None, None, None, "diagnostic", True),
        E("p1_meter_voltage_swells_phase_1", "0", None, None, None, None, "diagnostic", True),
        E("p1_meter_voltage_swells_phase_2", "3", None, None, None, None, "diagnostic", True),
        E("p1_meter_voltage_swells_phase_3", "0", None, None, None, None, "diagnostic", True),
        E("p1_meter_wi_fi_ssid", "Meter Hub Lab", None, None, None, None, "diagnostic", True),
        E("p1_meter_wi_fi_strength", "86", "%", None, "measurement", None, "diagnostic", True),
        E(
            "water_meter_last_reading",
            "2025-01-15T20:05:00+00:00",
            None,
            "timestamp",
            None,
            None,
            "diagnostic",
            True,
        ),
        E("water_meter_water", "456.789", "m³", "water", "total_increasing", 3, None, True),
    ],
    "HWE-SKT": [
        E("energy_socket_energy_export", "0", "kWh", "energy", "total_increasing", 3, None, True),
        E(
            "energy_socket_energy_import",
            "41.207",
            "kWh",
            "energy",
            "total_increasing",
            3,
            None,
            True,
        ),
        E("energy_socket_power", "87.4", "W", "power", "measurement", 0, None, True),
        E("energy_socket_power_phase_1", "87.4", "W", "power", "measurement", 0, None, True),
        E("energy_socket_wi_fi_ssid", "Meter Hub Lab", None, None, None, None, "diagnostic", True),
        E("energy_socket_wi_fi_strength", "64", "%", None, "measurement", None, "diagnostic", True),
    ],
    "HWE-WTR": [
        E(
            "watermeter_total_water_usage",
            "284.615",
            "m³",
            "water",
            "total_increasing",
            3,
            None,
            True,
        ),
        E(
            "watermeter_water_flow",
            "6.5",
            "L/min",
            "volume_flow_rate",
            "measurement",
            1,
            None,
            True,
        ),
        E("watermeter_water_usage_offset", "0", "m³", "volume", None, 3, "diagnostic", False),
        E("watermeter_wi_fi_ssid", "Meter Hub Lab", None, None, None, None, "diagnostic", True),
        E("watermeter_wi_fi_strength", "67", "%", None, "measurement", None, "diagnostic", True),
    ],
    "SDM230-wifi": [
        E("kwh_meter_energy_export", "17.385", "kWh", "energy", "total_increasing", 3, None, True),
        E("kwh_meter_energy_import", "2841", "kWh", "energy", "total_increasing", 3, None, True),
        E("kwh_meter_power", "1210.5", "W", "power", "measurement", 0, None, True),
        E("kwh_meter_power_phase_1", "1210.5", "W", "power", "measurement", 0, None, True),
        E("kwh_meter_wi_fi_ssid", "Meter Hub Lab", None, None, None, None, "diagnostic", True),
        E("kwh_meter_wi_fi_strength", "90", "%", None, "measurement", None, "diagnostic", True),
    ],
    "SDM630-wifi": [
        E(
            "kwh_meter_3_phase_energy_export",
            "6488.02",
            "kWh",
            "energy",
            "total_increasing",
            3,
            None,
            True,
        ),
        E(
            "kwh_meter_3_phase_energy_import",
            "3120.664",
            "kWh",
            "energy",
            "total_increasing",
            3,
            None,
            True,
        ),
        E("kwh_meter_3_phase_power", "-2715.3", "W", "power", "measurement", 0, None, True),
        E("kwh_meter_3_phase_power_phase_1", "-905.1", "W", "power", "measurement", 0, None, True),
        E("kwh_meter_3_phase_power_phase_2", "-905.2", "W", "power", "measurement", 0, None, True),
        E("kwh_meter_3_phase_power_phase_3", "-905", "W", "power", "measurement", 0, None, True),
        E(
            "kwh_meter_3_phase_wi_fi_ssid",
            "Meter Hub Lab",
            None,
            None,
            None,
            None,
            "diagnostic",
            True,
        ),
        E(
            "kwh_meter_3_phase_wi_fi_strength",
            "58",
            "%",
            None,
            "measurement",
            None,
            "diagnostic",
            True,
        ),
    ],
}

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


def _entity_table(hass: HomeAssistant, entry: MockConfigEntry) -> list[dict[str, Any]]:
    """Every entity of ``entry`` with what a user sees of it, sorted by entity id."""
    table = []
    registry = er.async_get(hass)
    for entity in sorted(
        er.async_entries_for_config_entry(registry, entry.entry_id), key=lambda e: e.entity_id
    ):
        state = hass.states.get(entity.entity_id)
        attributes = dict(state.attributes) if state else {}
        table.append(
            {
                "entity_id": entity.entity_id,
                "unique_id": entity.unique_id,
                "translation_key": entity.translation_key,
                "name": attributes.get("friendly_name"),
                "state": state.state if state else None,
                "unit": attributes.get("unit_of_measurement"),
                "device_class": attributes.get("device_class"),
                "state_class": attributes.get("state_class"),
                "options": attributes.get("options"),
                "precision": (entity.options.get("sensor") or {}).get(
                    "suggested_display_precision"
                ),
                "category": entity.entity_category.value if entity.entity_category else None,
                "disabled_by": entity.disabled_by.value if entity.disabled_by else None,
            }
        )
    return table


def _check(hass: HomeAssistant, expected: E) -> None:
    entity_id = f"sensor.{expected.object_id}"
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    entity = er.async_get(hass).async_get(entity_id)
    assert entity is not None
    actual = E(
        expected.object_id,
        state.state,
        state.attributes.get("unit_of_measurement"),
        state.attributes.get("device_class"),
        state.attributes.get("state_class"),
        (entity.options.get("sensor") or {}).get("suggested_display_precision"),
        entity.entity_category.value if entity.entity_category else None,
        expected.enabled_by_default,
    )
    assert actual == expected


# --- every profile ------------------------------------------------------------------------------


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
@pytest.mark.parametrize("device_profile", sorted(PROFILES))
async def test_every_entity_of_every_device(
    hass: HomeAssistant,
    homewizard: FakeHomeWizard,
    device_profile: str,
    snapshot: SnapshotAssertion,
) -> None:
    entry = await async_setup_local(hass, homewizard)
    expected = EXPECTED[device_profile]
    registry = er.async_get(hass)
    entity_ids = {
        e.entity_id
        for e in er.async_entries_for_config_entry(registry, entry.entry_id)
        if e.domain == "sensor"  # the controls are in the snapshot and in test_controls.py
    }
    assert entity_ids == {f"sensor.{row.object_id}" for row in expected}
    for row in expected:
        _check(hass, row)
    assert _entity_table(hass, entry) == snapshot


@pytest.mark.parametrize("device_profile", sorted(PROFILES))
async def test_rarely_used_entities_are_disabled_by_default(
    hass: HomeAssistant, homewizard: FakeHomeWizard, device_profile: str
) -> None:
    entry = await async_setup_local(hass, homewizard)
    registry = er.async_get(hass)
    for row in EXPECTED[device_profile]:
        entity = registry.async_get(f"sensor.{row.object_id}")
        assert entity is not None
        if row.enabled_by_default:
            assert entity.disabled_by is None, row.object_id
            assert hass.states.get(entity.entity_id) is not None
        else:
            assert entity.disabled_by is er.RegistryEntryDisabler.INTEGRATION, row.object_id
            assert hass.states.get(entity.entity_id) is None
    assert entry.state is ConfigEntryState.LOADED


def test_per_phase_voltage_current_power_and_energy_stay_enabled() -> None:
    """What users asked for stays on; only rarely used quantities start disabled."""
    for key in ("power_w", "voltage_v", "current_a"):
        for phase in (1, 2, 3):
            assert SENSORS[phase_key(key, phase)].entity_registry_enabled_default
        assert SENSORS[key].entity_registry_enabled_default
    for key, description in SENSORS.items():
        if key.startswith(("energy_import", "energy_export", "water_total")):
            assert description.entity_registry_enabled_default, key
    disabled = {key for key, d in SENSORS.items() if not d.entity_registry_enabled_default}
    per_phase = {
        phase_key(quantity, phase)
        for quantity in (
            "power_factor",
            "apparent_power_va",
            "reactive_power_var",
            "apparent_current_a",
            "reactive_current_a",
            "frequency_hz",
            "reactive_energy_inductive_kvarh",
            "reactive_energy_capacitive_kvarh",
        )
        for phase in (1, 2, 3)
    }
    assert disabled == per_phase | {
        "power_factor",
        "apparent_power_va",
        "reactive_power_var",
        "apparent_current_a",
        "reactive_current_a",
        "meter_id",
        "water_offset_m3",
        "smart_meter_measured_at",
        "uptime_s",
    }


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


async def test_names_use_translation_placeholders(
    hass: HomeAssistant, local_setup: MockConfigEntry
) -> None:
    names = {
        "sensor.p1_meter_energy_import_tariff_2": "P1 meter Energy import tariff 2",
        "sensor.p1_meter_energy_export": "P1 meter Energy export",
        "sensor.p1_meter_power_phase_3": "P1 meter Power phase 3",
        "sensor.p1_meter_voltage_sags_phase_1": "P1 meter Voltage sags phase 1",
        "sensor.p1_meter_peak_demand_this_month": "P1 meter Peak demand this month",
        "sensor.gas_meter_gas": "Gas meter Gas",
        "sensor.water_meter_last_reading": "Water meter Last reading",
    }
    for entity_id, name in names.items():
        assert hass.states.get(entity_id).attributes["friendly_name"] == name
    tariff = hass.states.get("sensor.p1_meter_active_tariff")
    assert tariff.attributes["options"] == ["1", "2", "3", "4"]


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
    ("payload", "rows", "models"),
    [
        pytest.param(
            "external_heat_gj",
            [
                E("heat_meter_energy", "48.317", "GJ", "energy", "total_increasing", 3, None, True),
                E(
                    "heat_meter_last_reading",
                    "2025-02-01T15:05:00+00:00",
                    None,
                    "timestamp",
                    None,
                    None,
                    "diagnostic",
                    True,
                ),
                E(
                    "inlet_heat_meter_volume",
                    "19.04",
                    "m³",
                    "volume",
                    "total_increasing",
                    3,
                    None,
                    True,
                ),
                E(
                    "inlet_heat_meter_last_reading",
                    "2025-02-01T15:05:00+00:00",
                    None,
                    "timestamp",
                    None,
                    None,
                    "diagnostic",
                    True,
                ),
                E(
                    "warm_water_meter_water",
                    "61.2",
                    "m³",
                    "water",
                    "total_increasing",
                    3,
                    None,
                    True,
                ),
                E(
                    "warm_water_meter_last_reading",
                    "2025-02-01T15:00:00+00:00",
                    None,
                    "timestamp",
                    None,
                    None,
                    "diagnostic",
                    True,
                ),
            ],
            {
                "5c2fafa1b2c3_heat_meter_48303031323334": "Heat meter",
                "5c2fafa1b2c3_inlet_heat_meter_48303031323335": "Inlet heat meter",
                "5c2fafa1b2c3_warm_water_meter_57303031323336": "Warm water meter",
            },
            id="heat-in-gj",
        ),
        pytest.param(
            "external_unknown_type",
            [
                E(
                    "cooling_meter_energy",
                    "12.5",
                    "kWh",
                    "energy",
                    "total_increasing",
                    3,
                    None,
                    True,
                ),
                E(
                    "cooling_meter_last_reading",
                    "2025-03-01T17:30:00+00:00",
                    None,
                    "timestamp",
                    None,
                    None,
                    "diagnostic",
                    True,
                ),
                # sent with a negative value, no unit and an impossible time: kept, unavailable
                E(
                    "water_meter_reading",
                    "unavailable",
                    None,
                    None,
                    "total_increasing",
                    3,
                    None,
                    True,
                ),
                E(
                    "water_meter_last_reading",
                    "unavailable",
                    None,
                    "timestamp",
                    None,
                    None,
                    "diagnostic",
                    True,
                ),
            ],
            {
                "5c2fafa1b2c3_cooling_meter_43303031": "Cooling meter",
                "5c2fafa1b2c3_water_meter_57303033": "Water meter",
            },
            id="unknown-type",
        ),
        pytest.param(
            "legacy_gas_only",
            [
                E("gas_meter_gas", "1877.203", "m³", "gas", "total_increasing", 3, None, True),
                E(
                    "gas_meter_last_reading",
                    "2024-07-01T06:00:00+00:00",
                    None,
                    "timestamp",
                    None,
                    None,
                    "diagnostic",
                    True,
                ),
            ],
            {"5c2fafa1b2c3_gas_meter_4730303432303031": "Gas meter"},
            id="legacy-gas-fields",
        ),
    ],
)
async def test_external_meter_kinds(
    hass: HomeAssistant,
    homewizard: FakeHomeWizard,
    payload: str,
    rows: list[E],
    models: dict[str, str],
) -> None:
    """Heat in GJ is energy, water is water, inlet heat in m³ a volume, unknown types are kept."""
    homewizard.data = _fixture(payload)
    entry = await async_setup_local(hass, homewizard)
    for row in rows:
        _check(hass, row)
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
    assert external == {f"sensor.{row.object_id}" for row in rows}


# --- edge-case payloads -------------------------------------------------------------------------


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
@pytest.mark.parametrize(
    ("device_profile", "payload", "rows"),
    [
        pytest.param(
            "HWE-P1",
            "nulls",
            [
                E(
                    "p1_meter_wi_fi_ssid",
                    "Meter Hub Lab",
                    None,
                    None,
                    None,
                    None,
                    "diagnostic",
                    True,
                ),
                E(
                    "p1_meter_wi_fi_strength",
                    "61",
                    "%",
                    None,
                    "measurement",
                    None,
                    "diagnostic",
                    True,
                ),
                E(
                    "p1_meter_water_flow",
                    "0",
                    "L/min",
                    "volume_flow_rate",
                    "measurement",
                    1,
                    None,
                    True,
                ),
                E(
                    "p1_meter_total_water_usage",
                    "31.207",
                    "m³",
                    "water",
                    "total_increasing",
                    3,
                    None,
                    True,
                ),
            ],
            id="nulls-are-not-reported",
        ),
        pytest.param(
            "HWE-P1",
            "p1_minimal",
            [
                E(
                    "p1_meter_wi_fi_ssid",
                    "Meter Hub Lab",
                    None,
                    None,
                    None,
                    None,
                    "diagnostic",
                    True,
                ),
                E("p1_meter_dsmr_version", "42", None, None, None, None, "diagnostic", True),
                E(
                    "p1_meter_energy_import_tariff_1",
                    "1520.004",
                    "kWh",
                    "energy",
                    "total_increasing",
                    3,
                    None,
                    True,
                ),
                E("p1_meter_power", "742", "W", "power", "measurement", 0, None, True),
            ],
            id="absent-keys-and-no-made-up-total",
        ),
        pytest.param(
            "HWE-SKT",
            "unknown_keys",
            [
                E(
                    "energy_socket_wi_fi_ssid",
                    "Meter Hub Lab",
                    None,
                    None,
                    None,
                    None,
                    "diagnostic",
                    True,
                ),
                E(
                    "energy_socket_wi_fi_strength",
                    "77",
                    "%",
                    None,
                    "measurement",
                    None,
                    "diagnostic",
                    True,
                ),
                E(
                    "energy_socket_energy_import",
                    "88.5",
                    "kWh",
                    "energy",
                    "total_increasing",
                    3,
                    None,
                    True,
                ),
                E(
                    "energy_socket_energy_export",
                    "1.25",
                    "kWh",
                    "energy",
                    "total_increasing",
                    3,
                    None,
                    True,
                ),
                E("energy_socket_power", "230.4", "W", "power", "measurement", 0, None, True),
                E(
                    "energy_socket_power_phase_1",
                    "230.4",
                    "W",
                    "power",
                    "measurement",
                    0,
                    None,
                    True,
                ),
            ],
            id="unknown-keys-are-ignored",
        ),
        pytest.param(
            "HWE-P1",
            "wrong_types",
            [
                E("p1_meter_peak_demand_this_month", "3600.0", "W", "power", None, 0, None, True),
                E("p1_meter_current_phase_1", "3.25", "A", "current", "measurement", 2, None, True),
            ],
            id="wrong-types-are-dropped",
        ),
    ],
)
async def test_edge_case_payloads(
    hass: HomeAssistant, homewizard: FakeHomeWizard, payload: str, rows: list[E]
) -> None:
    homewizard.data = _fixture(payload)
    entry = await async_setup_local(hass, homewizard)
    entity_ids = {
        e.entity_id
        for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        if e.domain == "sensor"
    }
    assert entity_ids == {f"sensor.{row.object_id}" for row in rows}
    for row in rows:
        _check(hass, row)


async def test_p1_without_export_has_no_export_sensors(
    hass: HomeAssistant, homewizard: FakeHomeWizard
) -> None:
    homewizard.data = _fixture("p1_no_export")
    entry = await async_setup_local(hass, homewizard)
    entity_ids = {
        e.entity_id for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    }
    assert not [entity_id for entity_id in entity_ids if "export" in entity_id]
    # import tariff 1 exists although there is no export (the reference integration loses it)
    _check(
        hass,
        E(
            "p1_meter_energy_import_tariff_1",
            "11480.303",
            "kWh",
            "energy",
            "total_increasing",
            3,
            None,
            True,
        ),
    )
    _check(
        hass,
        E(
            "p1_meter_energy_import",
            "20411.908",
            "kWh",
            "energy",
            "total_increasing",
            3,
            None,
            True,
        ),
    )
    _check(hass, E("p1_meter_power_phase_2", "611", "W", "power", "measurement", 0, None, True))
