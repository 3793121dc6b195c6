"""The Plug-In Battery (API v2) as a battery of the energy dashboard, with a v2 P1 meter as grid."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
import pytest

from simulator.homewizard_v2 import FakeHomeWizardV2
from simulator.tls import SimulatorAuthority
from tests.test_energy import (  # noqa: F401 - the energy tests' fixtures
    assert_no_issues,
    async_validate_energy,
    energy,
    mock_recorder_before_hass,
)

from .test_runtime import setup_v2

pytestmark = pytest.mark.usefixtures("integration_trusts_the_simulator")


async def test_battery_and_grid_pass_energy_validation(
    hass: HomeAssistant, socket_enabled: None, authority: SimulatorAuthority
) -> None:
    fakes = [FakeHomeWizardV2(authority, profile) for profile in ("HWE-P1", "HWE-BAT")]
    for fake in fakes:
        await fake.start()
        fake.users["local/home-assistant"] = "0123456789ABCDEF0123456789ABCDEF"
    try:
        for fake in fakes:
            await setup_v2(hass, fake)
        battery = (
            "sensor.plug_in_battery_energy_export",  # out of the battery
            "sensor.plug_in_battery_energy_import",  # into it
        )
        for entity_id in battery:
            assert hass.states.get(entity_id) is not None, entity_id
        validation = await async_validate_energy(
            hass,
            grid=[("sensor.p1_meter_energy_import", "sensor.p1_meter_energy_export")],
            batteries=[battery],
        )
        assert_no_issues(validation, 2)
        refused = await async_validate_energy(
            hass, batteries=[("sensor.plug_in_battery_power", battery[1])]
        )
        assert refused["energy_sources"] != [[]]
    finally:
        for fake in fakes:
            await fake.stop()
