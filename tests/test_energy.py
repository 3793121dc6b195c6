"""The energy dashboard accepts our sensors: Home Assistant's own validation, with real preferences.

``async_validate_energy`` saves energy preferences that use the given entity ids, compiles long-term
statistics the way the recorder does every 5 minutes, and returns Home Assistant's validation. Any
source can use it: add a test that sets up its entry and passes its sensors' entity ids.

Grid preferences changed shape in Home Assistant 2026.3 (one source per import/export pair instead
of ``flow_from``/``flow_to`` lists); the helper writes whichever shape the installed version uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from homeassistant.components.energy import data as energy_data
from homeassistant.components.energy.validate import async_validate
from homeassistant.components.recorder import Recorder
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
    do_adhoc_statistics,
)

from simulator.homewizard import FakeHomeWizard

from .conftest import MakeFake, async_setup_local

# One grid connection per pair (import, export); either may be None.
type GridPair = tuple[str | None, str | None]

# Home Assistant 2026.3 moved grid sources to the unified shape (storage minor version 3).
UNIFIED_GRID = getattr(energy_data, "STORAGE_MINOR_VERSION", 1) >= 3

P1_IMPORT = "sensor.p1_meter_energy_import"
P1_EXPORT = "sensor.p1_meter_energy_export"
P1_IMPORT_T = ["sensor.p1_meter_energy_import_tariff_1", "sensor.p1_meter_energy_import_tariff_2"]
P1_EXPORT_T = ["sensor.p1_meter_energy_export_tariff_1", "sensor.p1_meter_energy_export_tariff_2"]
P1_GAS = "sensor.gas_meter_gas"
P1_WATER = "sensor.water_meter_water"
WTR_WATER = "sensor.watermeter_total_water_usage"


@pytest.fixture
def mock_recorder_before_hass(async_test_recorder: Any) -> None:
    """Let the recorder's database fixtures resolve before ``hass`` (see conventions §6.5)."""


@pytest.fixture(autouse=True)
async def energy(recorder_mock: Recorder, hass: HomeAssistant) -> None:
    """The recorder and the energy integration, as on a real installation."""
    assert await async_setup_component(hass, "energy", {"energy": {}})


def _grid_sources(grid: Sequence[GridPair]) -> list[dict[str, Any]]:
    """Grid preferences in the shape the installed Home Assistant stores."""
    if not grid:
        return []
    if UNIFIED_GRID:
        return [
            {
                "type": "grid",
                "stat_energy_from": stat_from,
                "stat_energy_to": stat_to,
                "stat_cost": None,
                "entity_energy_price": None,
                "number_energy_price": None,
                "stat_compensation": None,
                "entity_energy_price_export": None,
                "number_energy_price_export": None,
                "cost_adjustment_day": 0.0,
            }
            for stat_from, stat_to in grid
        ]
    price = {"entity_energy_price": None, "number_energy_price": None}
    return [
        {
            "type": "grid",
            "flow_from": [
                {"stat_energy_from": stat_from, "stat_cost": None, **price}
                for stat_from, _ in grid
                if stat_from
            ],
            "flow_to": [
                {"stat_energy_to": stat_to, "stat_compensation": None, **price}
                for _, stat_to in grid
                if stat_to
            ],
            "cost_adjustment_day": 0.0,
        }
    ]


async def async_validate_energy(
    hass: HomeAssistant,
    *,
    grid: Sequence[GridPair] = (),
    gas: Sequence[str] = (),
    water: Sequence[str] = (),
    devices: Sequence[str] = (),
    batteries: Sequence[tuple[str, str]] = (),
) -> dict[str, list[list[dict[str, Any]]]]:
    """Save energy preferences with these entity ids; return Home Assistant's validation.

    The result has one list of issues per source (all grid pairs are one source before 2026.3)
    and per device; an empty list means the dashboard accepts that source.
    """
    # What the recorder does every 5 minutes: record the states, compile their statistics.
    await async_wait_recording_done(hass)
    now = dt_util.utcnow()
    do_adhoc_statistics(
        hass, start=now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
    )
    await async_wait_recording_done(hass)

    sources: list[dict[str, Any]] = _grid_sources(grid)
    price = {"stat_cost": None, "entity_energy_price": None, "number_energy_price": None}
    sources += [{"type": "gas", "stat_energy_from": stat, **price} for stat in gas]
    sources += [{"type": "water", "stat_energy_from": stat, **price} for stat in water]
    # a battery: (energy out of it, energy into it)
    sources += [
        {"type": "battery", "stat_energy_from": stat_from, "stat_energy_to": stat_to}
        for stat_from, stat_to in batteries
    ]
    manager = await energy_data.async_get_manager(hass)
    await manager.async_update(
        {
            "energy_sources": sources,  # type: ignore[typeddict-item]
            "device_consumption": [{"stat_consumption": stat, "name": None} for stat in devices],
        }
    )
    validation: dict[str, list[list[dict[str, Any]]]] = (await async_validate(hass)).as_dict()
    return validation


def assert_no_issues(validation: dict[str, list[list[dict[str, Any]]]], sources: int) -> None:
    """Every one of ``sources`` energy sources (and every device) is accepted as it is."""
    assert len(validation["energy_sources"]) == sources
    assert validation["energy_sources"] == [[]] * sources
    assert all(issues == [] for issues in validation["device_consumption"])


def _grid_count(pairs: int) -> int:
    return pairs if UNIFIED_GRID else 1


@pytest.mark.parametrize(
    "grid",
    [
        pytest.param([(P1_IMPORT, P1_EXPORT)], id="totals"),
        pytest.param(list(zip(P1_IMPORT_T, P1_EXPORT_T, strict=True)), id="per-tariff"),
    ],
)
async def test_p1_grid_gas_and_water_pass_energy_validation(
    hass: HomeAssistant,
    homewizard: FakeHomeWizard,
    make_fake: MakeFake,
    grid: list[GridPair],
) -> None:
    await async_setup_local(hass, homewizard)
    await async_setup_local(hass, await make_fake("HWE-WTR"))
    await async_setup_local(hass, await make_fake("HWE-SKT"))
    for entity_id in [stat for pair in grid for stat in pair if stat] + [P1_GAS, P1_WATER]:
        assert hass.states.get(entity_id) is not None, entity_id

    validation = await async_validate_energy(
        hass,
        grid=grid,
        gas=[P1_GAS],
        water=[P1_WATER, WTR_WATER],
        devices=["sensor.energy_socket_energy_import"],
    )
    assert_no_issues(validation, _grid_count(len(grid)) + 3)
    assert validation["device_consumption"] == [[]]


@pytest.mark.parametrize("device_profile", ["HWE-KWH3", "SDM630-wifi", "HWE-KWH1", "SDM230-wifi"])
async def test_kwh_meters_pass_energy_validation(
    hass: HomeAssistant, homewizard: FakeHomeWizard, device_profile: str
) -> None:
    await async_setup_local(hass, homewizard)
    prefix = (
        "sensor.kwh_meter_3_phase"
        if device_profile in ("HWE-KWH3", "SDM630-wifi")
        else "sensor.kwh_meter"
    )
    validation = await async_validate_energy(
        hass, grid=[(f"{prefix}_energy_import", f"{prefix}_energy_export")]
    )
    assert_no_issues(validation, 1)


async def test_validation_does_reject_unfit_sensors(
    hass: HomeAssistant, homewizard: FakeHomeWizard, make_fake: MakeFake
) -> None:
    """The helper is not blind: power as grid import, a plain volume as water are refused."""
    await async_setup_local(hass, homewizard)
    await async_setup_local(hass, await make_fake("HWE-WTR"))
    validation = await async_validate_energy(
        hass,
        grid=[("sensor.p1_meter_power", None)],
        water=["sensor.watermeter_water_flow"],
    )
    grid_issues, water_issues = (
        {issue["type"]: issue["affected_entities"] for issue in issues}
        for issues in validation["energy_sources"]
    )
    assert grid_issues["entity_unexpected_device_class"] == {("sensor.p1_meter_power", "power")}
    assert water_issues["entity_unexpected_device_class"] == {
        ("sensor.watermeter_water_flow", "volume_flow_rate")
    }
