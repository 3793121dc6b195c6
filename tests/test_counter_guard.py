"""The counter rule (issue 13, items 1-3): the guard itself, and what Home Assistant shows.

Each finding of the review is reproduced first: a spike up published at once; a hold that counted
wall time across an outage; no reference after a restart while the sensor was unavailable; two
low cloud answers 5 minutes apart taken as a reset. The backfill's findings are in
``test_history.py`` (``test_plan_books_no_glitched_sample``).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.helpers.event import async_track_state_change_event
import pytest
from pytest_homeassistant_custom_component.common import (
    async_fire_time_changed,
    mock_restore_cache_with_extra_data,
)

from custom_components.meter_hub.cloud_coordinator import POLL_MARGIN
from custom_components.meter_hub.const import (
    CLOUD_COUNTER_RESET,
    CLOUD_SCAN_INTERVAL,
    LOCAL_COUNTER_RESET,
)
from custom_components.meter_hub.counter_guard import (
    ELECTRICITY,
    GAS,
    WATER,
    CounterGuard,
    ResetRule,
    RiseBound,
    rise_bound,
)
from simulator.homewizard import FakeHomeWizard
from simulator.iammeter import FakeIamMeterCloud

from .conftest import async_poll, async_setup_cloud, async_setup_local

IMPORT = "sensor.p1_meter_energy_import"
GAS_SENSOR = "sensor.gas_meter_gas"
CLOUD_IMPORT = "sensor.iammeter_da2bed94_energy_import"
SINGLE_SN = "DA2BED94"
LOGGER_NAME = "custom_components.meter_hub"
TRUE = 15_234.567
SPIKE = 1_015_234.567


def _guard(rule: ResetRule = LOCAL_COUNTER_RESET) -> CounterGuard:
    guard = CounterGuard("counter", ELECTRICITY, rule)
    guard.restore(TRUE, 0.0)
    return guard


def _history(hass: HomeAssistant, entity_id: str) -> list[str]:
    """Every state ``entity_id`` gets from now on."""
    states: list[str] = []

    @callback
    def changed(event: Event[EventStateChangedData]) -> None:
        if (new := event.data["new_state"]) is not None:
            states.append(new.state)

    async_track_state_change_event(hass, entity_id, changed)
    return states


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith(LOGGER_NAME) and record.levelno == level
    ]


# --- the bounds ---------------------------------------------------------------------------------


def test_rise_bounds_per_quantity() -> None:
    assert rise_bound("energy", "kWh") == ELECTRICITY
    assert rise_bound("energy", "Wh") == RiseBound(400_000.0, 100.0)
    # reactive energy: the same 400 (kvar instead of kW), with or without its device class
    assert rise_bound("reactive_energy", "kvarh") == rise_bound(None, "kvarh") == ELECTRICITY
    assert rise_bound("reactive_energy", "varh") == RiseBound(400_000.0, 100.0)
    assert rise_bound("energy", "GJ").per_hour == pytest.approx(1.44)
    assert rise_bound("gas", "m³") == GAS
    assert rise_bound("water", "m³") == WATER
    assert rise_bound(None, "L").per_hour == 100_000.0
    assert rise_bound(None, "pulses") == RiseBound(1000.0, 1.0)
    # 400 kW for 5 s, plus the allowance
    assert ELECTRICITY.allows(0.65, 5.0)
    assert not ELECTRICITY.allows(0.7, 5.0)
    assert ELECTRICITY.allows(1e6, None)


# --- the guard, with explicit times -------------------------------------------------------------


def test_a_spike_up_is_never_published_and_its_return_books_nothing() -> None:
    guard = _guard()
    assert guard.accept(SPIKE, 5.0) == TRUE
    assert guard.accept(SPIKE, 10.0) == TRUE
    assert guard.accept(TRUE + 0.001, 15.0) == TRUE + 0.001


def test_a_rise_within_the_bound_is_published_and_a_catch_up_after_an_outage_too() -> None:
    guard = _guard()
    assert guard.accept(TRUE + 0.5, 5.0) == TRUE + 0.5  # 360 kW for 5 s: possible
    # an hour of outage (no reading): 300 kWh used meanwhile is possible, 500 is not
    assert guard.accept(TRUE + 500.5, 3605.0) == TRUE + 0.5
    assert guard.accept(TRUE + 300.5, 3605.0) == TRUE + 300.5


def test_a_slow_spoof_faster_than_the_bound_never_gets_through() -> None:
    guard = _guard()
    now, value = 0.0, TRUE
    for _ in range(100):
        now += 5.0
        value += 2.0  # 1.44 MW
        assert guard.accept(value, now) == TRUE


@pytest.mark.parametrize("spike", [0.7, 98.0, 1e4, 1e6])
def test_a_spike_that_persists_is_held(spike: float) -> None:
    """Readings keep coming, all too high (and climbing on at 60 kW): the time they are seen
    does not make them plausible for an hour; the true value back is published."""
    guard = _guard()
    for n in range(1, 700):  # 58 minutes at 5 s
        assert guard.accept(TRUE + spike + n * 0.083, 5.0 * n) == TRUE
    assert guard.accept(TRUE + 2.0, 3500.0) == TRUE + 2.0


def test_a_long_too_high_series_is_judged_on_the_whole_time_after_an_hour() -> None:
    """The meter counted on while a wrong value stood (or a stale spell ran long): it is not
    held for ever."""
    guard = _guard()
    now = 5.0
    while (value := TRUE + 0.7 + now * 0.002) > guard.accept(value, now):
        now += 5.0
    assert now == 3605.0  # an hour after the series began
    assert guard.published == value


def test_a_stale_value_then_a_catch_up_is_believed_once_confirmed() -> None:
    """A device repeats its last value for 10 minutes (a lost telegram), then catches up: the
    time it repeated itself counts, once the catch-up is confirmed as a reset is (3 readings
    over 60 s)."""
    guard = _guard()
    for n in range(1, 121):
        assert guard.accept(TRUE, 5.0 * n) == TRUE
    assert guard.accept(TRUE + 5.0, 605.0) == TRUE
    assert guard.accept(TRUE + 5.0, 635.0) == TRUE
    assert guard.accept(TRUE + 5.01, 665.0) == TRUE + 5.01


def test_a_glitch_on_a_counter_that_stood_still_is_never_published() -> None:
    """An idle counter (the other tariff, export at night) is read again and again: a one-poll
    spike is judged on the time since the last reading, not since the value was first read."""
    guard = _guard()
    for n in range(1, 8641):  # 12 hours at 5 s, the counter standing still
        assert guard.accept(TRUE, 5.0 * n) == TRUE
    assert guard.accept(TRUE + 1000.0, 43_205.0) == TRUE  # possible in 12 h, not in 5 s
    assert guard.accept(TRUE, 43_210.0) == TRUE
    assert guard.accept(TRUE + 1000.0, 43_215.0) == TRUE  # twice, not confirmed
    assert guard.accept(TRUE + 0.01, 43_220.0) == TRUE + 0.01


def test_the_confirmation_of_a_reading_survives_a_restart() -> None:
    guard = CounterGuard("counter", ELECTRICITY, LOCAL_COUNTER_RESET)
    guard.restore(TRUE, 0.0, 43_200.0)  # first read 12 hours before it was last read
    assert guard.accept(TRUE + 1000.0, 43_205.0) == TRUE
    # the time Home Assistant was stopped counts: an hour, 400 kWh at most
    guard = CounterGuard("counter", ELECTRICITY, LOCAL_COUNTER_RESET)
    guard.restore(TRUE, 0.0, 43_200.0)
    assert guard.accept(TRUE + 300.0, 46_800.0) == TRUE + 300.0


def test_a_spike_after_an_outage_is_judged_on_the_whole_time() -> None:
    guard = _guard()
    assert guard.accept(TRUE + 98.0, 5.0) == TRUE
    guard.interrupt()  # 15 minutes without an answer: 98 kWh are possible now (100)
    assert guard.accept(TRUE + 98.0, 905.0) == TRUE + 98.0


def test_glitch_outage_glitch_is_not_a_reset() -> None:
    """The review: a glitch, 70 s of outage, the same glitch again: accepted (wall time)."""
    guard = _guard()
    assert guard.accept(0.0, 5.0) == TRUE
    guard.interrupt()  # HTTP 500 or the field missing, for 70 s
    assert guard.accept(0.0, 75.0) == TRUE
    assert guard.accept(0.0, 80.0) == TRUE


def test_a_reset_needs_polls_and_observed_time() -> None:
    guard = _guard()
    assert guard.accept(0.1, 0.0) == TRUE
    assert guard.accept(0.1, 59.0) == TRUE  # 2 polls, 59 s
    assert guard.accept(0.1, 60.0) == 0.1  # 3 polls, 60 s
    guard = _guard()
    assert guard.accept(0.1, 0.0) == TRUE
    assert guard.accept(0.1, 100.0) == TRUE  # 2 polls only
    # a lower series that is not self-consistent starts again
    assert guard.accept(0.05, 105.0) == TRUE
    assert guard.accept(0.05, 110.0) == TRUE
    assert guard.accept(0.05, 164.0) == TRUE
    assert guard.accept(0.06, 165.0) == 0.06


def test_a_return_to_the_level_ends_a_hold(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    guard = _guard()
    for now in (5.0, 10.0, 15.0):
        assert guard.accept(0.0, now) == TRUE
    assert guard.accept(TRUE, 20.0) == TRUE
    assert _records(caplog, logging.INFO) == [
        "counter went down from 15234.567 to 0.0: holding 15234.567 until it is confirmed or back",
        "counter is back to a plausible value (15234.567): the hold of 0.0 ended, nothing booked",
    ]
    assert guard.accept(SPIKE, 25.0) == TRUE
    assert guard.accept(SPIKE + 1, 30.0) == TRUE
    assert _records(caplog, logging.WARNING) == [
        "counter rose faster than possible in 5 s from 15234.567 to 1015234.567: "
        "holding 15234.567 until it is confirmed or back"
    ]


def test_a_tiny_dip_is_held_quietly(caplog: pytest.LogCaptureFixture) -> None:
    guard = _guard()
    assert guard.accept(TRUE - 0.001, 5.0) == TRUE
    assert _records(caplog, logging.INFO) == _records(caplog, logging.WARNING) == []


def test_the_cloud_rule_is_stated_in_its_polls() -> None:
    """The review: two low answers 5 minutes apart were a reset (15,042.9 kWh booked)."""
    guard = _guard(CLOUD_COUNTER_RESET)
    assert guard.accept(0.095, 0.0) == TRUE
    assert guard.accept(0.095, 305.0) == TRUE
    assert guard.accept(0.1, 610.0) == 0.1  # the third poll, 10 minutes observed


def test_time_unknown_after_an_upgrade_takes_the_first_rise() -> None:
    guard = CounterGuard("counter", ELECTRICITY, LOCAL_COUNTER_RESET)
    guard.restore(9000.0, None)
    assert guard.accept(0.0, 0.0) == 9000.0
    assert guard.accept(9876.5, 5.0) == 9876.5
    assert guard.accept(SPIKE, 10.0) == 9876.5


# --- Home Assistant: HomeWizard over real HTTP --------------------------------------------------


async def test_a_spike_up_never_reaches_the_state(
    hass: HomeAssistant,
    homewizard: FakeHomeWizard,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The review: 15,234.567 -> 1,015,234.567 kWh was published at once."""
    await async_setup_local(hass, homewizard)
    history = _history(hass, IMPORT)
    gas_history = _history(hass, GAS_SENSOR)
    homewizard.data["total_power_import_kwh"] = SPIKE
    homewizard.data["external"][0]["value"] = 1_003_312.874
    await async_poll(hass, freezer)
    await async_poll(hass, freezer)
    homewizard.data["total_power_import_kwh"] = TRUE + 0.001
    homewizard.data["external"][0]["value"] = 3312.875
    await async_poll(hass, freezer)
    assert history == ["15234.568"]
    assert gas_history == ["3312.875"]
    assert len(_records(caplog, logging.WARNING)) == 2


@pytest.mark.parametrize("outage", ["http-500", "field-missing"])
async def test_glitch_outage_glitch_never_reaches_the_state(
    hass: HomeAssistant, homewizard: FakeHomeWizard, freezer: FrozenDateTimeFactory, outage: str
) -> None:
    """The review: a glitch, 70 s of outage, the same glitch: the whole counter booked again."""
    await async_setup_local(hass, homewizard)
    history = _history(hass, IMPORT)
    homewizard.data["total_power_import_kwh"] = 0.0
    await async_poll(hass, freezer)
    if outage == "http-500":
        homewizard.status = 500
    else:
        del homewizard.data["total_power_import_kwh"]
    for _ in range(14):
        await async_poll(hass, freezer)
    homewizard.status = None
    homewizard.data["total_power_import_kwh"] = 0.0
    await async_poll(hass, freezer)
    await async_poll(hass, freezer)
    assert hass.states.get(IMPORT).state == str(TRUE)
    assert [state for state in history if state != STATE_UNAVAILABLE] == [str(TRUE)]


async def test_restart_while_unavailable_keeps_the_reference(
    hass: HomeAssistant, homewizard: FakeHomeWizard, freezer: FrozenDateTimeFactory
) -> None:
    """The review: after a restart while the sensor was unavailable, whatever came first was
    published."""
    entry = await async_setup_local(hass, homewizard)
    homewizard.status = 500
    await async_poll(hass, freezer)
    assert hass.states.get(IMPORT).state == STATE_UNAVAILABLE
    # Home Assistant stops now (the entities store their data) and starts with a glitch
    homewizard.status = None
    homewizard.data["total_power_import_kwh"] = 0.0
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(IMPORT).state == str(TRUE)
    homewizard.data["total_power_import_kwh"] = SPIKE
    await async_poll(hass, freezer)
    assert hass.states.get(IMPORT).state == str(TRUE)


async def test_the_stored_reference_is_used_after_a_restart(
    hass: HomeAssistant, homewizard: FakeHomeWizard, freezer: FrozenDateTimeFactory
) -> None:
    stored = {"native_value": None, "native_unit_of_measurement": "kWh"}
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State(IMPORT, STATE_UNAVAILABLE),
                # stopped a minute ago
                {**stored, "counter_guard": {"value": 15234.5, "at": time.time() - 60}},
            ),
            # an older release's data of an unavailable sensor: its last numeric state is lost,
            # the device's value is the first reference
            (State(f"{IMPORT}_tariff_1", STATE_UNAVAILABLE), stored),
            # no stored data at all: the last numeric state, higher than the device's 5358.024
            (State(f"{IMPORT}_tariff_2", "6000.0"), {}),
        ],
    )
    homewizard.data["total_power_import_kwh"] = SPIKE
    await async_setup_local(hass, homewizard)
    assert hass.states.get(IMPORT).state == "15234.5"
    assert hass.states.get(f"{IMPORT}_tariff_1").state == "9876.543"
    assert hass.states.get(f"{IMPORT}_tariff_2").state == "6000.0"


async def test_a_real_meter_replacement_is_accepted_in_the_documented_time(
    hass: HomeAssistant,
    homewizard: FakeHomeWizard,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await async_setup_local(hass, homewizard)
    history = _history(hass, IMPORT)
    value = 0.0
    for _ in range(12):  # 55 s of observation
        value += 0.001
        homewizard.data["total_power_import_kwh"] = round(value, 3)
        await async_poll(hass, freezer)
    assert history == []
    homewizard.data["total_power_import_kwh"] = 0.013
    await async_poll(hass, freezer)  # 60 s, 13 readings
    assert history == ["0.013"]
    (accepted,) = (m for m in _records(caplog, logging.WARNING) if "meter reset" in m)
    assert "60 s of observation" in accepted


# --- Home Assistant: the IAMMETER cloud ---------------------------------------------------------


def _serve_import(cloud: FakeIamMeterCloud, payload: list[dict[str, Any]], value: float) -> None:
    data = copy.deepcopy(payload)
    next(m for m in data if m["sn"] == SINGLE_SN)["values"][3] = value
    body = json.dumps({"data": data, "successful": True, "message": None}).encode()
    cloud.inject_fault(1, endpoint="metersdata", body=body)


async def _cloud_poll(hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    freezer.tick(CLOUD_SCAN_INTERVAL + POLL_MARGIN)
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)


async def test_two_low_cloud_answers_are_no_reset(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    """The review: two low answers 5 minutes apart were a reset (15,042.9 kWh booked)."""
    entry = await async_setup_cloud(hass, cloud)
    payload = entry.runtime_data.coordinator.client.last_meters_payload
    before = hass.states.get(CLOUD_IMPORT).state
    history = _history(hass, CLOUD_IMPORT)
    for _ in range(2):
        _serve_import(cloud, payload, 0.095)
        await _cloud_poll(hass, freezer)
    # a failed poll (the reading is kept) in between does not count either
    cloud.inject_fault(1, status=500, endpoint="metersdata")
    await _cloud_poll(hass, freezer)
    _serve_import(cloud, payload, 0.1)
    await _cloud_poll(hass, freezer)
    assert history == []
    assert hass.states.get(CLOUD_IMPORT).state == before
    # three answers over 10 minutes: a real replacement
    for value in (0.2, 0.3):
        _serve_import(cloud, payload, value)
        await _cloud_poll(hass, freezer)
    assert history == ["0.3"]


async def test_a_cloud_spike_up_never_reaches_the_state(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    entry = await async_setup_cloud(hass, cloud)
    payload = entry.runtime_data.coordinator.client.last_meters_payload
    before = float(hass.states.get(CLOUD_IMPORT).state)
    history = _history(hass, CLOUD_IMPORT)
    _serve_import(cloud, payload, before + 1_000_000)
    await _cloud_poll(hass, freezer)
    assert history == []
    _serve_import(cloud, payload, before + 1)
    await _cloud_poll(hass, freezer)
    assert [float(state) for state in history] == [pytest.approx(before + 1)]
