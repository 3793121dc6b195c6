"""The energy dashboard accepts the IAMMETER sensors (Home Assistant's own validation).

Uses the helper of tests/test_energy.py: real energy preferences, statistics compiled as the
recorder does, then ``energy.validate.async_validate``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from homeassistant.components.recorder import Recorder
from homeassistant.components.sensor import SensorDeviceClass, SensorStateClass
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest

from simulator.iammeter import FakeIamMeterCloud

from .conftest import async_setup_cloud
from .test_energy import UNIFIED_GRID, assert_no_issues, async_validate_energy

VENDOR_METERSDATA = (
    Path(__file__).parent / "fixtures" / "iammeter" / "metersdata.json"
).read_bytes()
SNS = ["DA2BED94", "B384789C", "674B1E5D", "59C9AB8D", "3FE34ABE"]


@pytest.fixture
def mock_recorder_before_hass(async_test_recorder: Any) -> None:
    """Let the recorder's database fixtures resolve before ``hass`` (see conventions §6.5)."""


@pytest.fixture(autouse=True)
async def energy(
    recorder_mock: Recorder, hass: HomeAssistant, cloud: FakeIamMeterCloud
) -> AsyncIterator[None]:
    """The recorder and the energy integration, as on a real installation."""
    assert await async_setup_component(hass, "energy", {"energy": {}})
    yield
    # The history's first run (the meters' week, at setup) ends before the recorder and the
    # cloud are torn down: Home Assistant 2025.4's recorder closes the database under a running
    # query (a crash).
    await hass.async_block_till_done(wait_background_tasks=True)


def sensor(sn: str, name: str) -> str:
    return f"sensor.iammeter_{sn.lower()}_{name}"


async def test_import_and_export_of_every_meter_pass_energy_validation(
    hass: HomeAssistant, cloud: FakeIamMeterCloud
) -> None:
    """Every shape of the vendor example: single-phase, three-phase, net metering."""
    cloud.inject_fault(endpoint="metersdata", body=VENDOR_METERSDATA)
    await async_setup_cloud(hass, cloud)
    grid = [(sensor(sn, "energy_import"), sensor(sn, "energy_export")) for sn in SNS]
    for pair in grid:
        for entity_id in pair:
            state = hass.states.get(entity_id)
            assert state is not None, entity_id
            assert float(state.state) >= 0

    validation = await async_validate_energy(hass, grid=grid)
    # one grid source per pair since Home Assistant 2026.3, one for all of them before
    assert_no_issues(validation, len(grid) if UNIFIED_GRID else 1)


async def test_per_phase_counters_pass_energy_validation(
    hass: HomeAssistant, cloud: FakeIamMeterCloud
) -> None:
    cloud.inject_fault(endpoint="metersdata", body=VENDOR_METERSDATA)
    await async_setup_cloud(hass, cloud)
    devices = [sensor("674B1E5D", f"energy_import_phase_{n}") for n in (1, 2, 3)]
    validation = await async_validate_energy(hass, devices=devices)
    assert validation["device_consumption"] == [[], [], []]


async def test_power_is_refused_as_energy_and_fits_as_grid_power(
    hass: HomeAssistant, cloud: FakeIamMeterCloud
) -> None:
    """The helper is not blind; the grid power sensor is what the dashboard's grid power takes:
    W, measurement, signed (positive = import)."""
    cloud.inject_fault(endpoint="metersdata", body=VENDOR_METERSDATA)
    await async_setup_cloud(hass, cloud)
    grid_power = sensor("B384789C", "grid_power")
    validation = await async_validate_energy(hass, grid=[(grid_power, None)])
    issues = {
        issue["type"]: issue["affected_entities"] for issue in validation["energy_sources"][0]
    }
    assert issues["entity_unexpected_device_class"] == {(grid_power, "power")}

    state = hass.states.get(grid_power)
    assert state is not None
    assert state.state == "-2747.0"
    assert state.attributes["device_class"] == SensorDeviceClass.POWER
    assert state.attributes["state_class"] == SensorStateClass.MEASUREMENT
    assert state.attributes["unit_of_measurement"] == "W"
