"""The counter rule end to end (issue 13): a HomeWizard device over real HTTP, the real recorder.

Hypothesis scripts a true, non-decreasing import counter with spikes up and down, missing values,
errors, outages and restarts injected; the recorder compiles its 5-minute statistics from the
states the sensor wrote, and their sum must be the true consumption to 0.001 kWh.
"""

from __future__ import annotations

from datetime import datetime, timedelta
import itertools
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.recorder.statistics import get_last_short_term_statistics
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er, restore_state
from homeassistant.helpers.recorder import get_instance
from homeassistant.util import dt as dt_util
from hypothesis import HealthCheck, given, settings, strategies as st
import pytest
from pytest_homeassistant_custom_component.common import async_fire_time_changed
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
    do_adhoc_statistics,
)

from custom_components.meter_hub.const import DOMAIN
from simulator.homewizard import FakeHomeWizard

from .conftest import async_setup_local
from .fault_records import CaseRecord, fault_record

__all__ = ["fault_record"]  # the fixture

START = datetime(2025, 1, 15, 12, 0, 1, tzinfo=dt_util.UTC)
PERIOD = timedelta(minutes=5)
POLL = timedelta(seconds=5)
_numbers = itertools.count(1)

# (what the device serves instead of the true counter, seconds to the next poll, house kW)
EVENTS = st.sampled_from(["true", "spike", "dip", "missing", "error", "restart"])
STEPS = st.lists(
    st.tuples(EVENTS, st.sampled_from([5, 5, 10, 30, 65, 600]), st.floats(0, 30)),
    min_size=1,
    max_size=25,
)


@pytest.fixture
def mock_recorder_before_hass(async_test_recorder: Any, freezer: FrozenDateTimeFactory) -> None:
    """Recorder before hass, and the clock frozen before the recorder starts."""
    freezer.move_to(START)


def _floor(at: datetime) -> datetime:
    return at.replace(minute=at.minute - at.minute % 5, second=0, microsecond=0)


async def _compile_until(hass: HomeAssistant, compiled: datetime, until: datetime) -> datetime:
    """Compile every 5-minute period that ended by ``until``, as the recorder does."""
    await async_wait_recording_done(hass)
    while compiled + PERIOD <= until:
        do_adhoc_statistics(hass, start=compiled)
        compiled += PERIOD
        await async_wait_recording_done(hass)
    return compiled


def _forget_restored_states(hass: HomeAssistant) -> None:
    """Drop the states Home Assistant would restore (kept by entity id, and from 2026.11 also
    by entity registry id)."""
    stored = restore_state.async_get(hass)
    for name in ("last_states", "last_states_by_entity_id", "last_states_by_entity_registry_id"):
        getattr(stored, name, {}).clear()


async def _sum(hass: HomeAssistant, statistic_id: str) -> float:
    result = await get_instance(hass).async_add_executor_job(
        get_last_short_term_statistics, hass, 1, statistic_id, {statistic_id}, {"sum"}
    )
    return float(result[statistic_id][0]["sum"] or 0.0)


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS)
async def test_the_recorded_sum_is_the_true_consumption(
    recorder_mock: Any,
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    socket_enabled: None,
    fault_record: CaseRecord,
    steps: list[tuple[str, int, float]],
) -> None:
    fault_record.checks += 1
    # a device of its own: nothing is restored from the entity of the example before
    _forget_restored_states(hass)
    fake = FakeHomeWizard("HWE-P1")
    fake.device["serial"] = f"5c2fab{next(_numbers):06x}"
    true = float(fake.data["total_power_import_kwh"])
    await fake.start()
    entry = await async_setup_local(hass, fake)
    entity_id = er.async_get(hass).async_get_entity_id(
        "sensor", DOMAIN, f"{fake.device['serial']}_energy_import_kwh"
    )
    assert entity_id is not None
    try:
        # The first period holds the state the statistics start from.
        compiled = _floor(dt_util.utcnow())
        freezer.move_to(compiled + PERIOD + POLL)
        async_fire_time_changed(hass)
        await hass.async_block_till_done(wait_background_tasks=True)
        compiled = await _compile_until(hass, compiled, dt_util.utcnow())
        start = true
        last = "true"
        for step, seconds, power_kw in steps:
            # a dip is one reading: lower readings in a row over a minute are a new meter
            event = last = "true" if step == last == "dip" else step
            fake.status = 500 if event == "error" else None
            fake.data["total_power_import_kwh"] = round(
                {"spike": true + 1e6, "dip": true / 2}.get(event, true), 3
            )
            if event == "missing":
                del fake.data["total_power_import_kwh"]
            if event == "restart":
                assert await hass.config_entries.async_reload(entry.entry_id)
            freezer.tick(POLL)
            async_fire_time_changed(hass)
            await hass.async_block_till_done(wait_background_tasks=True)
            true += power_kw * seconds / 3600
            freezer.tick(timedelta(seconds=seconds) - POLL)
            compiled = await _compile_until(hass, compiled, dt_util.utcnow())
        # good readings (no more consumption) until the true value shows: a device that served a
        # stale value and then caught up is believed once that is confirmed (3 readings over
        # 60 s); a poll after a restart may come a tick late. Then their period compiled.
        fake.status = None
        fake.data["total_power_import_kwh"] = round(true, 3)
        for _ in range(40):  # at most 200 s: the rule asks for 60 s of readings
            freezer.tick(POLL)
            async_fire_time_changed(hass)
            await hass.async_block_till_done(wait_background_tasks=True)
            if hass.states.get(entity_id).state == str(round(true, 3)):
                break
        assert hass.states.get(entity_id).state == str(round(true, 3))
        freezer.move_to(_floor(dt_util.utcnow()) + PERIOD + POLL)
        await _compile_until(hass, compiled, dt_util.utcnow())
        phantom = await _sum(hass, entity_id) - (round(true, 3) - start)
        fault_record.phantom_kwh += max(phantom, 0.0)
        assert phantom == pytest.approx(0.0, abs=0.001)
    finally:
        await hass.config_entries.async_remove(entry.entry_id)
        await fake.stop()
    fault_record.completed = True
