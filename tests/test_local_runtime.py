"""A HomeWizard entry at run time: polling, failures, the counter guard, dynamic and stale entities.

The device is a fake on 127.0.0.1 served over real HTTP; time is moved with ``freezer``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
import logging
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.event import async_track_state_change_event
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    mock_restore_cache_with_extra_data,
)

from custom_components.meter_hub import async_remove_config_entry_device
from custom_components.meter_hub.api.controls import DeviceControls
from custom_components.meter_hub.const import DOMAIN
from custom_components.meter_hub.local_coordinator import LocalCoordinator
from custom_components.meter_hub.sensor import GUARD_KEY, MeterReadingSensor
from simulator.homewizard import FakeHomeWizard

from .conftest import MakeFake, async_poll, async_setup_local, meter_device
from .fault_records import is_traceback

IMPORT = "sensor.p1_meter_energy_import"
IMPORT_T1 = "sensor.p1_meter_energy_import_tariff_1"
POWER = "sensor.p1_meter_power"
GAS = "sensor.gas_meter_gas"
WATER = "sensor.water_meter_water"
WATER_ID = "5730303431303032393837363534333231"
LOGGER_NAME = "custom_components.meter_hub"


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


def _records(
    caplog: pytest.LogCaptureFixture, level: int = logging.INFO
) -> list[logging.LogRecord]:
    """Our log records at ``level`` or above."""
    return [
        record
        for record in caplog.records
        if record.name.startswith(LOGGER_NAME) and record.levelno >= level
    ]


async def _run_loop(rounds: int = 50, until: Callable[[], bool] | None = None) -> None:
    """Let the event loop run (I/O included) without waiting for a timer: time may be frozen."""
    for _ in range(rounds * (20 if until else 1)):
        if until is not None and until():
            return
        await asyncio.sleep(0)
    assert until is None, "the condition never became true"


def _history(hass: HomeAssistant, entity_id: str) -> list[str]:
    """Collect every state ``entity_id`` is given from now on."""
    states: list[str] = []

    @callback
    def _changed(event: Event[EventStateChangedData]) -> None:
        new: State | None = event.data["new_state"]
        states.append(new.state if new else "removed")

    async_track_state_change_event(hass, [entity_id], _changed)
    return states


async def _write_nothing(client: DeviceControls) -> None:
    """A control write that changes nothing (a P1 meter has no controls)."""


# --- polling ------------------------------------------------------------------------------------


async def test_polls_every_5_seconds_by_default(
    hass: HomeAssistant, homewizard: FakeHomeWizard, freezer: FrozenDateTimeFactory
) -> None:
    entry = await async_setup_local(hass, homewizard)
    coordinator = entry.runtime_data.coordinator
    assert isinstance(coordinator, LocalCoordinator)
    assert coordinator.update_interval == timedelta(seconds=5)
    polls = homewizard.request_count["/api/v1/data"]

    # Home Assistant spreads polls over the second (up to 1 s early): 3.5 s is surely too soon
    await async_poll(hass, freezer, 3.5)
    assert homewizard.request_count["/api/v1/data"] == polls
    await async_poll(hass, freezer, 1.5)
    assert homewizard.request_count["/api/v1/data"] == polls + 1
    for _ in range(10):
        await async_poll(hass, freezer, 5)
    assert homewizard.request_count["/api/v1/data"] == polls + 11


@pytest.mark.parametrize("seconds", [1, 60])
async def test_poll_interval_option(
    hass: HomeAssistant, homewizard: FakeHomeWizard, freezer: FrozenDateTimeFactory, seconds: int
) -> None:
    entry = await async_setup_local(hass, homewizard, scan_interval=seconds)
    assert entry.runtime_data.coordinator.update_interval == timedelta(seconds=seconds)
    polls = homewizard.request_count["/api/v1/data"]
    if seconds > 2:
        await async_poll(hass, freezer, seconds - 1.5)
        assert homewizard.request_count["/api/v1/data"] == polls
        await async_poll(hass, freezer, 1.5)
    else:
        await async_poll(hass, freezer, seconds)
    assert homewizard.request_count["/api/v1/data"] == polls + 1
    for _ in range(10):
        await async_poll(hass, freezer, seconds)
    assert homewizard.request_count["/api/v1/data"] == polls + 11


async def test_polls_never_overlap(hass: HomeAssistant, homewizard: FakeHomeWizard) -> None:
    """A slow device: a refresh asked for meanwhile (a control's read-back, update_entity) waits.

    A control's read-back refreshes past Home Assistant's debouncer, so only the coordinator's
    own poll lock keeps it from polling next to the slow poll (and publishing out of order).
    """
    assert await async_setup_component(hass, "homeassistant", {})
    entry = await async_setup_local(hass, homewizard)
    coordinator = entry.runtime_data.coordinator
    homewizard.max_in_flight = 0
    homewizard.hang = True

    first = hass.async_create_task(coordinator.async_refresh())
    await _run_loop(until=lambda: homewizard.in_flight > 0)
    second = hass.async_create_task(coordinator.async_control(_write_nothing))
    third = hass.async_create_task(
        hass.services.async_call(
            "homeassistant", "update_entity", {"entity_id": POWER}, blocking=True
        )
    )
    await asyncio.sleep(0.1)
    assert homewizard.in_flight == 1

    homewizard.release()
    await asyncio.gather(first, second, third)
    assert homewizard.max_in_flight == 1
    assert coordinator.last_update_success
    assert _state(hass, POWER) == "-412"


async def test_scheduled_poll_waits_for_a_slow_one(
    hass: HomeAssistant, homewizard: FakeHomeWizard, freezer: FrozenDateTimeFactory
) -> None:
    entry = await async_setup_local(hass, homewizard, scan_interval=1)
    homewizard.max_in_flight = 0
    homewizard.hang = True
    requests = homewizard.request_count.total()
    # a poll starts and hangs; several intervals pass (less than the 10 s timeout)
    freezer.tick(timedelta(seconds=1))
    async_fire_time_changed(hass)
    await _run_loop(until=lambda: homewizard.in_flight == 1)
    for _ in range(7):
        freezer.tick(timedelta(seconds=1))
        async_fire_time_changed(hass)
        await _run_loop()
        assert homewizard.in_flight == 1
    assert homewizard.request_count.total() == requests + 1

    homewizard.release()
    await hass.async_block_till_done(wait_background_tasks=True)
    await async_poll(hass, freezer, 1)
    assert homewizard.max_in_flight == 1
    assert entry.runtime_data.coordinator.last_update_success


# --- failures -----------------------------------------------------------------------------------


async def test_unreachable_during_operation_logs_once_each_way(
    hass: HomeAssistant,
    homewizard: FakeHomeWizard,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = await async_setup_local(hass, homewizard)
    port = int(homewizard.host.rpartition(":")[2])
    caplog.clear()

    await homewizard.stop()
    for _ in range(5):
        await async_poll(hass, freezer)
    assert _state(hass, IMPORT) == STATE_UNAVAILABLE
    assert _state(hass, GAS) == STATE_UNAVAILABLE
    (bad,) = _records(caplog)
    assert bad.levelno == logging.ERROR
    assert bad.getMessage().startswith("Error fetching P1 meter data: Cannot read the meter: ")
    assert "cannot connect to" in bad.getMessage()
    assert entry.state is ConfigEntryState.LOADED

    caplog.clear()
    await homewizard.start(port)
    for _ in range(3):
        await async_poll(hass, freezer)
    assert _state(hass, IMPORT) == "15234.567"
    assert _state(hass, GAS) == "3312.874"
    (good,) = _records(caplog)
    assert good.levelno == logging.INFO
    assert good.getMessage() == "Fetching P1 meter data recovered"


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(({"body": b"<html>busy</html>"}, "did not answer JSON"), id="not-json"),
        pytest.param(({"body": b"[1, 2, 3]"}, "answered a JSON list, not an object"), id="list"),
        pytest.param(({"body": b'"text"'}, "answered a JSON str, not an object"), id="string"),
        pytest.param(({"body": b"[" * 60_000}, "did not answer JSON"), id="deeply-nested"),
        pytest.param(({"status": 500}, "answered with HTTP status 500"), id="http-500"),
        pytest.param(({"data": {}}, None), id="empty-object"),
    ],
)
async def test_malformed_payload_makes_entities_unavailable_with_a_reason(
    hass: HomeAssistant,
    homewizard: FakeHomeWizard,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    case: tuple[dict[str, Any], str | None],
) -> None:
    fault, reason = case
    await async_setup_local(hass, homewizard)
    caplog.clear()
    homewizard.body = fault.get("body")
    homewizard.status = fault.get("status")
    if "data" in fault:
        homewizard.data = fault["data"]
    await async_poll(hass, freezer)
    await async_poll(hass, freezer)

    assert _state(hass, IMPORT) == STATE_UNAVAILABLE
    assert _state(hass, POWER) == STATE_UNAVAILABLE
    if reason is None:
        # a valid but empty measurement: nothing reported, nothing to complain about
        assert _records(caplog, logging.WARNING) == []
    else:
        (record,) = _records(caplog)
        assert record.levelno == logging.ERROR
        assert "Cannot read the meter: " in record.getMessage()
        assert reason in record.getMessage()
    assert [record for record in caplog.records if is_traceback(record)] == []

    homewizard.body = None
    homewizard.status = None
    homewizard.data = FakeHomeWizard("HWE-P1").data
    await async_poll(hass, freezer)
    assert _state(hass, IMPORT) == "15234.567"


async def test_another_device_at_the_address_never_lands_on_this_one(
    hass: HomeAssistant,
    homewizard: FakeHomeWizard,
    make_fake: MakeFake,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The address is handed to another P1 (a new DHCP lease): its readings are refused."""
    entry = await async_setup_local(hass, homewizard)
    port = int(homewizard.host.rpartition(":")[2])
    history = _history(hass, IMPORT)
    await async_poll(hass, freezer)
    caplog.clear()

    await homewizard.stop()
    other = await make_fake("HWE-P1", port=port, serial="5c2faf999999")
    other.data["total_power_import_kwh"] = 99999.0
    other.data["active_power_w"] = 4000
    other.data["external"][1]["value"] = 999.0
    for _ in range(3):
        await async_poll(hass, freezer)

    assert _state(hass, IMPORT) == STATE_UNAVAILABLE
    assert _state(hass, POWER) == STATE_UNAVAILABLE
    assert _state(hass, WATER) == STATE_UNAVAILABLE
    assert "99999.0" not in history
    assert list(entry.runtime_data.coordinator.data) == ["5c2fafa1b2c3"]
    (record,) = _records(caplog)
    assert "Another device (5c2faf999999) answers at" in record.getMessage()
    # the other device got no device of its own in this entry
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    assert {ident for d in devices for _, ident in d.identifiers} == {
        "5c2fafa1b2c3",
        "5c2fafa1b2c3_gas_meter_4730303539303033313233343536373138",
        f"5c2fafa1b2c3_water_meter_{WATER_ID}",
    }

    await other.stop()
    await homewizard.start(port)
    await async_poll(hass, freezer)
    assert _state(hass, IMPORT) == "15234.567"
    assert history == [STATE_UNAVAILABLE, "15234.567"]


async def test_another_device_at_startup_retries(
    hass: HomeAssistant, homewizard: FakeHomeWizard
) -> None:
    homewizard.device["serial"] = "5c2faf999999"
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="P1 meter",
        unique_id="5c2fafa1b2c3",
        data={
            "source": "local",
            "host": homewizard.host,
            "serial": "5c2fafa1b2c3",
            "product_type": "HWE-P1",
        },
    )
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "Another device (5c2faf999999) answers at" in (entry.reason or "")


# --- the counter guard: no phantom energy -------------------------------------------------------


async def test_counter_glitch_never_reaches_the_state(
    hass: HomeAssistant,
    homewizard: FakeHomeWizard,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """0, a dip, a missing value: all within a minute, none of them is ever the state."""
    await async_setup_local(hass, homewizard)
    history = _history(hass, IMPORT)
    gas_history = _history(hass, GAS)
    caplog.clear()

    homewizard.data["total_power_import_kwh"] = 0
    homewizard.data["external"][0]["value"] = 0
    await async_poll(hass, freezer)
    assert _state(hass, IMPORT) == "15234.567"
    assert _state(hass, GAS) == "3312.874"
    homewizard.data["total_power_import_kwh"] = 15200.001
    homewizard.data["external"][0]["value"] = 3000.5
    await async_poll(hass, freezer, 20)
    assert _state(hass, IMPORT) == "15234.567"
    homewizard.data["total_power_import_kwh"] = 14000.0
    await async_poll(hass, freezer, 30)
    assert _state(hass, IMPORT) == "15234.567"
    # back within the minute, a bit higher
    homewizard.data["total_power_import_kwh"] = 15234.6
    homewizard.data["external"][0]["value"] = 3312.9
    await async_poll(hass, freezer, 5)
    assert _state(hass, IMPORT) == "15234.6"
    assert _state(hass, GAS) == "3312.9"
    # a lower value later starts a new hold, it does not inherit the old one
    homewizard.data["total_power_import_kwh"] = 15000.0
    await async_poll(hass, freezer, 30)
    assert _state(hass, IMPORT) == "15234.6"

    assert history == ["15234.6"]
    assert gas_history == ["3312.9"]
    assert _records(caplog, logging.WARNING) == []


async def test_lower_counter_that_persists_is_accepted_once_after_the_hold(
    hass: HomeAssistant,
    homewizard: FakeHomeWizard,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A replaced meter starts low: accepted after 60 s, with one warning, and followed after."""
    await async_setup_local(hass, homewizard)
    history = _history(hass, IMPORT)
    caplog.clear()

    homewizard.data["total_power_import_kwh"] = 0.5
    await async_poll(hass, freezer)  # the first lower reading starts the hold
    for _ in range(11):  # 55 s
        await async_poll(hass, freezer)
        assert _state(hass, IMPORT) == "15234.567"
    await async_poll(hass, freezer)  # 60 s
    assert _state(hass, IMPORT) == "0.5"
    homewizard.data["total_power_import_kwh"] = 0.75
    for _ in range(3):
        await async_poll(hass, freezer)
    assert _state(hass, IMPORT) == "0.75"

    assert history == ["0.5", "0.75"]
    (warning,) = _records(caplog, logging.WARNING)
    assert warning.levelno == logging.WARNING
    assert warning.getMessage() == (
        "5c2fafa1b2c3_energy_import_kwh stayed below its last value for 60 s of observation "
        "(0.5, was 15234.567, 13 polls): accepting it as a meter reset"
    )


async def test_restored_counter_guards_against_a_dip_after_restart(
    hass: HomeAssistant,
    homewizard: FakeHomeWizard,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Home Assistant restarts while the meter glitches: the value from before the restart holds."""
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State(IMPORT, "15300.0"),
                {"native_value": 15300.0, "native_unit_of_measurement": "kWh"},
            ),
            (
                State(IMPORT_T1, "9000.0"),
                {"native_value": 9000.0, "native_unit_of_measurement": "kWh"},
            ),
        ],
    )
    await async_setup_local(hass, homewizard)
    # the device reports 15234.567, lower than before the restart: held
    assert _state(hass, IMPORT) == "15300.0"
    # the restored 9000 is lower than the device's 9876.543: the device wins at once
    assert _state(hass, IMPORT_T1) == "9876.543"

    homewizard.data["total_power_import_kwh"] = 15300.25
    await async_poll(hass, freezer)
    assert _state(hass, IMPORT) == "15300.25"


async def test_reload_keeps_the_guard(
    hass: HomeAssistant, homewizard: FakeHomeWizard, freezer: FrozenDateTimeFactory
) -> None:
    entry = await async_setup_local(hass, homewizard)
    homewizard.data["total_power_import_kwh"] = 15234.6
    await async_poll(hass, freezer)
    homewizard.data["total_power_import_kwh"] = 0
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert _state(hass, IMPORT) == "15234.6"


# --- dynamic entities and stale devices ---------------------------------------------------------


@pytest.mark.parametrize("device_profile", ["HWE-P1-1phase"])
async def test_new_data_point_and_meter_get_entities_without_reload(
    hass: HomeAssistant, homewizard: FakeHomeWizard, freezer: FrozenDateTimeFactory
) -> None:
    entry = await async_setup_local(hass, homewizard)
    coordinator = entry.runtime_data.coordinator
    assert hass.states.get("sensor.p1_meter_power_phase_2") is None
    assert hass.states.get("sensor.p1_meter_energy_import") is None

    homewizard.data["active_power_l2_w"] = 123
    homewizard.data["total_power_import_kwh"] = 13462.548
    homewizard.data["external"] = [
        {
            "unique_id": "G0001",
            "type": "gas_meter",
            "timestamp": 250115121000,
            "value": 100.5,
            "unit": "m3",
        }
    ]
    await async_poll(hass, freezer)

    assert entry.runtime_data.coordinator is coordinator  # no reload
    assert _state(hass, "sensor.p1_meter_power_phase_2") == "123"
    assert _state(hass, "sensor.p1_meter_energy_import") == "13462.548"
    gas = hass.states.get("sensor.gas_meter_gas")
    assert gas is not None
    assert gas.state == "100.5"
    assert gas.attributes["unit_of_measurement"] == "m³"
    assert gas.attributes["device_class"] == "gas"
    device = meter_device(hass, "5c2fafd4e5f6_gas_meter_G0001")
    assert device is not None
    parent = meter_device(hass, "5c2fafd4e5f6")
    assert parent is not None
    assert device.via_device_id == parent.id
    assert device.model == "Gas meter"


async def test_external_meter_gone_for_good_loses_its_device(
    hass: HomeAssistant,
    homewizard: FakeHomeWizard,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = await async_setup_local(hass, homewizard)
    entity_registry = er.async_get(hass)
    assert meter_device(hass, f"5c2fafa1b2c3_water_meter_{WATER_ID}") is not None
    assert entry.runtime_data.coordinator.device_gone_after == timedelta(hours=1)

    del homewizard.data["external"][1]
    await async_poll(hass, freezer)
    assert _state(hass, WATER) == STATE_UNAVAILABLE
    # still there after 59 minutes: a meter may be quiet for a while
    for _ in range(59):
        await async_poll(hass, freezer, 60)
    assert meter_device(hass, f"5c2fafa1b2c3_water_meter_{WATER_ID}") is not None
    assert _state(hass, WATER) == STATE_UNAVAILABLE

    caplog.clear()
    await async_poll(hass, freezer, 60)
    await async_poll(hass, freezer, 60)
    assert meter_device(hass, f"5c2fafa1b2c3_water_meter_{WATER_ID}") is None
    assert entity_registry.async_get(WATER) is None
    assert hass.states.get(WATER) is None
    assert "Removing Water meter: not reported for" in caplog.text
    # the P1 and its gas meter stay
    assert _state(hass, GAS) == "3312.874"
    assert meter_device(hass, "5c2fafa1b2c3") is not None

    # the water meter comes back: its device and sensors return, under the same ids
    homewizard.data["external"].append(FakeHomeWizard("HWE-P1").data["external"][1])
    await async_poll(hass, freezer)
    assert _state(hass, WATER) == "456.789"
    assert (
        entity_registry.async_get(WATER).unique_id == f"5c2fafa1b2c3_water_meter_{WATER_ID}_value"
    )


async def test_unreachable_device_keeps_its_meters(
    hass: HomeAssistant, homewizard: FakeHomeWizard, freezer: FrozenDateTimeFactory
) -> None:
    """An unreachable P1 says nothing about its meters: none is removed while it is away."""
    await async_setup_local(hass, homewizard)
    port = int(homewizard.host.rpartition(":")[2])
    await homewizard.stop()
    for _ in range(3):
        await async_poll(hass, freezer, 3600)
    assert meter_device(hass, f"5c2fafa1b2c3_water_meter_{WATER_ID}") is not None
    await homewizard.start(port)
    await async_poll(hass, freezer)
    assert _state(hass, WATER) == "456.789"


async def test_states_are_written_only_when_they_change(
    hass: HomeAssistant, homewizard: FakeHomeWizard, freezer: FrozenDateTimeFactory
) -> None:
    await async_setup_local(hass, homewizard)
    power = _history(hass, POWER)
    energy = _history(hass, IMPORT)
    for _ in range(3):
        await async_poll(hass, freezer)
    homewizard.data["active_power_w"] = 100
    await async_poll(hass, freezer)
    assert power == ["100"]
    assert energy == []


async def test_user_may_remove_only_gone_devices(
    hass: HomeAssistant, homewizard: FakeHomeWizard, freezer: FrozenDateTimeFactory
) -> None:
    entry = await async_setup_local(hass, homewizard)
    p1 = meter_device(hass, "5c2fafa1b2c3")
    water = meter_device(hass, f"5c2fafa1b2c3_water_meter_{WATER_ID}")
    assert p1 is not None
    assert water is not None
    assert not await async_remove_config_entry_device(hass, entry, p1)
    assert not await async_remove_config_entry_device(hass, entry, water)
    del homewizard.data["external"][1]
    await async_poll(hass, freezer)
    assert await async_remove_config_entry_device(hass, entry, water)


async def test_malformed_stored_reference_is_ignored(
    hass: HomeAssistant, homewizard: FakeHomeWizard
) -> None:
    """A guard reference that is not numbers (a damaged store) restores nothing."""
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State(IMPORT, "15300.0"),
                {
                    "native_value": 15300.0,
                    "native_unit_of_measurement": "kWh",
                    GUARD_KEY: {"value": "15300.0", "at": None, "confirmed_at": None},
                },
            )
        ],
    )
    await async_setup_local(hass, homewizard)
    assert _state(hass, IMPORT) == "15234.567"


async def test_no_sensor_is_created_again_at_each_poll(
    hass: HomeAssistant, homewizard: FakeHomeWizard, freezer: FrozenDateTimeFactory
) -> None:
    """Also those disabled by default (the smart meter identifier): Home Assistant never adds
    them, and each poll would create them again (a cost on every poll, nothing visible)."""
    await async_setup_local(hass, homewizard)
    original = MeterReadingSensor.__init__
    with patch.object(
        MeterReadingSensor, "__init__", autospec=True, side_effect=original
    ) as created:
        for _ in range(3):
            await async_poll(hass, freezer)
    assert created.call_count == 0
