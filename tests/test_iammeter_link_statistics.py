"""A linked meter's outage and return, with the recorder: entities stay, 0 phantom kWh.

The cloud's counter lags the meter's by minutes; while the meter does not answer, the cloud's
values stand in. Falling back to the cloud (lower) and coming back (a little below the cloud's
last value, as rounding does) must never look like a drop or a reset: the recorded sum is what
the meter counted.
"""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import CONF_HOST
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
import pytest

from custom_components.meter_hub.const import CONF_LOCAL_METERS, DOMAIN
from simulator.iammeter import VENDOR_EXAMPLE_LOGIN, FakeIamMeterCloud, Phase

from .conftest import StartMeter, async_poll, async_setup_cloud
from .test_counter_statistics import PERIOD, _compile_until, _floor, _sum

SN = "DA2BED94"


@pytest.fixture
def mock_recorder_before_hass(async_test_recorder: Any) -> None:
    """Let the recorder's database fixtures resolve before ``hass``."""


async def test_local_cloud_local_books_no_phantom_energy(
    recorder_mock: Any,
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    start_meter: StartMeter,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    account = await async_setup_cloud(hass, cloud)
    registry = er.async_get(hass)
    counter = registry.async_get_entity_id("sensor", DOMAIN, f"{SN}_energy_import_kwh")
    power = registry.async_get_entity_id("sensor", DOMAIN, f"{SN}_power_w")
    assert counter is not None
    assert power is not None

    def state(entity_id: str) -> str:
        found = hass.states.get(entity_id)
        assert found is not None
        return found.state

    freezer.tick(60)
    fake = await start_meter("WEM3080", serial=SN)
    fake.imported = [float(state(counter)) + 0.25]  # the cloud lags the meter
    fake.power = [2345.0]
    hass.config_entries.async_update_entry(
        account, options={CONF_LOCAL_METERS: {SN: {CONF_HOST: fake.host}}}
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    assert float(state(counter)) == pytest.approx(fake.imported[0])
    # the statistics start from the first compiled period's state
    compiled = _floor(dt_util.utcnow())
    freezer.move_to(compiled + PERIOD + timedelta(seconds=1))
    await async_poll(hass, freezer, 1)
    compiled = await _compile_until(hass, compiled, dt_util.utcnow())
    # (the sum so far holds the cloud's history, which the backfill wrote)
    start, sum_at_start = float(state(counter)), await _sum(hass, counter)
    seen: list[float] = []

    async def step(seconds: float) -> None:
        nonlocal compiled
        await async_poll(hass, freezer, seconds)
        assert state(power) != "unavailable"
        seen.append(float(state(counter)))
        compiled = await _compile_until(hass, compiled, dt_util.utcnow())

    for _ in range(5):  # live, counting
        fake.imported[0] += 0.01
        await step(1)
    live = fake.imported[0]

    # the meter stops answering for four cloud polls: the cloud's counter is below its last
    fake.status = 500
    for _ in range(4):
        await step(300)
    assert seen[-1] == pytest.approx(live)  # its last sure value, never the cloud's lower one
    assert state(power) != "2345.0"  # the cloud's power stands in

    # the meter counted on meanwhile, and the cloud has it now: from the cloud
    meter = cloud.account(VENDOR_EXAMPLE_LOGIN[0]).meter(SN)
    meter.phases = (Phase(225, meter.phases[0].import_kwh + 0.5, 0),)  # type: ignore[union-attr]
    await step(300)
    from_cloud = seen[-1]
    assert from_cloud > live

    # back, a little below the cloud's last value (the cloud rounds to 0.01 kWh): held, for
    # longer than a reset takes to be believed
    fake.status = None
    fake.imported = [from_cloud - 0.004]
    fake.power = [640.0]
    for _ in range(4):
        await step(200)
    assert state(power) == "640.0"
    assert seen[-1] == pytest.approx(from_cloud)
    fake.imported = [from_cloud + 0.01]
    await step(1)
    end = seen[-1]
    assert end == pytest.approx(from_cloud + 0.01)
    assert seen == sorted(seen)
    assert caplog.text.count("does not answer at") == 1
    assert caplog.text.count("answers at") == 1

    freezer.move_to(_floor(dt_util.utcnow()) + PERIOD + timedelta(seconds=1))
    await _compile_until(hass, compiled, dt_util.utcnow())
    booked = await _sum(hass, counter) - sum_at_start
    assert booked == pytest.approx(end - start, abs=0.001)
    await hass.async_block_till_done(wait_background_tasks=True)
