"""Controls of HomeWizard devices over API v2, through the entities, against the simulator.

The P1 meter: cloud connection, status light, identify, reboot, and the Plug-In Batteries it
controls (mode, permissions, charge to full); the kWh meter and the battery have fewer. Every
write changes the fake device, and the entity shows what the device reads back.
"""

from __future__ import annotations

from homeassistant.components.button import DOMAIN as BUTTON_DOMAIN, SERVICE_PRESS
from homeassistant.components.number import ATTR_VALUE, DOMAIN as NUMBER_DOMAIN, SERVICE_SET_VALUE
from homeassistant.components.select import (
    ATTR_OPTION,
    DOMAIN as SELECT_DOMAIN,
    SERVICE_SELECT_OPTION,
)
from homeassistant.components.switch import DOMAIN as SWITCH_DOMAIN
from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.const import (
    SERVICE_TURN_OFF,
    SERVICE_TURN_ON,
    STATE_OFF,
    STATE_ON,
    EntityCategory,
)
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
import pytest

from custom_components.meter_hub.const import CONF_PUSH, DOMAIN
from simulator.homewizard_v2 import FakeHomeWizardV2
from tests.conftest import async_call, categories_of, entity_of, state_of

from .conftest import USER
from .test_push import setup_entry, until

pytestmark = pytest.mark.usefixtures("integration_trusts_the_simulator")


def _id(hass: HomeAssistant, domain: str, fake: FakeHomeWizardV2, key: str) -> str | None:
    return entity_of(hass, domain, fake.serial, key)


async def test_p1_meter_controls_write_and_read_back(
    hass: HomeAssistant, device: FakeHomeWizardV2
) -> None:
    """Each control changes the device; the poll after the write shows the device's state."""
    await setup_entry(hass, device, **{CONF_PUSH: False})
    cloud = _id(hass, SWITCH_DOMAIN, device, "cloud_enabled")
    brightness = _id(hass, NUMBER_DOMAIN, device, "brightness")
    identify = _id(hass, BUTTON_DOMAIN, device, "identify")
    reboot = _id(hass, BUTTON_DOMAIN, device, "reboot")
    mode = _id(hass, SELECT_DOMAIN, device, "battery_mode")
    charge = _id(hass, SWITCH_DOMAIN, device, "battery_charge_allowed")
    discharge = _id(hass, SWITCH_DOMAIN, device, "battery_discharge_allowed")
    to_full = _id(hass, SWITCH_DOMAIN, device, "battery_charge_to_full")
    assert categories_of(hass, cloud, brightness, identify, reboot) == {EntityCategory.CONFIG}
    # the batteries' controls are what their owner uses: on the device page, not in its settings
    assert categories_of(hass, mode, charge, discharge, to_full) == {None}
    # the controls show these states; no sensor shows them a second time
    for domain, key in (
        ("binary_sensor", "cloud_enabled"),
        ("binary_sensor", "battery_charge_allowed"),
        ("sensor", "battery_mode"),
        ("sensor", "status_led_brightness_pct"),
    ):
        assert _id(hass, domain, device, key) is None, key
    assert state_of(hass, brightness) == "100"
    assert state_of(hass, mode) == "zero"

    await async_call(hass, SWITCH_DOMAIN, SERVICE_TURN_OFF, cloud)
    assert device.system["cloud_enabled"] is False
    assert state_of(hass, cloud) == STATE_OFF

    await async_call(hass, NUMBER_DOMAIN, SERVICE_SET_VALUE, brightness, **{ATTR_VALUE: 40})
    assert device.system["status_led_brightness_pct"] == 40
    assert state_of(hass, brightness) == "40"

    await async_call(hass, BUTTON_DOMAIN, SERVICE_PRESS, identify)
    assert device.identified == 1

    # standby forbids both; allowing one turns the mode back to zero (the vendor's rules)
    await async_call(hass, SELECT_DOMAIN, SERVICE_SELECT_OPTION, mode, **{ATTR_OPTION: "standby"})
    assert device.batteries is not None
    assert (device.batteries["mode"], device.batteries["permissions"]) == ("standby", [])
    assert (state_of(hass, mode), state_of(hass, charge), state_of(hass, discharge)) == (
        "standby",
        STATE_OFF,
        STATE_OFF,
    )
    await async_call(hass, SWITCH_DOMAIN, SERVICE_TURN_ON, charge)
    assert device.batteries["permissions"] == ["charge_allowed"]
    assert (state_of(hass, mode), state_of(hass, charge), state_of(hass, discharge)) == (
        "zero",
        STATE_ON,
        STATE_OFF,
    )

    # charging to full: the permissions are the device's to keep until it ends
    await async_call(hass, SWITCH_DOMAIN, SERVICE_TURN_ON, to_full)
    assert (device.batteries["mode"], device.batteries["charge_to_full"]) == ("to_full", True)
    assert (state_of(hass, mode), state_of(hass, to_full)) == ("to_full", STATE_ON)
    with pytest.raises(HomeAssistantError) as refused:
        await async_call(hass, SWITCH_DOMAIN, SERVICE_TURN_ON, discharge)
    assert refused.value.translation_key == "battery_charging_to_full"
    assert device.batteries["permissions"] == ["charge_allowed"]
    await async_call(hass, SWITCH_DOMAIN, SERVICE_TURN_OFF, to_full)
    assert (state_of(hass, mode), state_of(hass, to_full)) == ("zero", STATE_OFF)

    await async_call(hass, SWITCH_DOMAIN, SERVICE_TURN_ON, discharge)
    assert device.batteries["permissions"] == ["charge_allowed", "discharge_allowed"]
    assert state_of(hass, discharge) == STATE_ON


async def test_written_state_comes_with_the_push(
    hass: HomeAssistant, device: FakeHomeWizardV2
) -> None:
    """While the device pushes, a write is followed by no poll: the device pushes the change."""
    entry = await setup_entry(hass, device)
    push = entry.runtime_data.coordinator.push
    await until(hass, lambda: push is not None and push.pushing)
    mode = _id(hass, SELECT_DOMAIN, device, "battery_mode")
    cloud = _id(hass, SWITCH_DOMAIN, device, "cloud_enabled")
    reads = (device.request_count["/api/system"], device.request_count["/api/batteries"])
    await async_call(hass, SWITCH_DOMAIN, SERVICE_TURN_OFF, cloud)
    await async_call(hass, SELECT_DOMAIN, SERVICE_SELECT_OPTION, mode, **{ATTR_OPTION: "standby"})
    await until(
        hass, lambda: state_of(hass, cloud) == STATE_OFF and state_of(hass, mode) == "standby"
    )
    # one PUT each, no read: the state came over the socket
    assert (device.request_count["/api/system"], device.request_count["/api/batteries"]) == (
        reads[0] + 1,
        reads[1] + 1,
    )


async def test_reboot_drops_the_socket_and_the_device_comes_back(
    hass: HomeAssistant, device: FakeHomeWizardV2
) -> None:
    device.reboot_seconds = 0.3
    entry = await setup_entry(hass, device)
    push = entry.runtime_data.coordinator.push
    assert push is not None
    await until(hass, lambda: push.pushing)
    reboot = _id(hass, BUTTON_DOMAIN, device, "reboot")
    registry_entry = er.async_get(hass).async_get(reboot or "")
    assert registry_entry is not None
    assert registry_entry.original_device_class == "restart"
    await async_call(hass, BUTTON_DOMAIN, SERVICE_PRESS, reboot)
    assert device.reboots == 1
    await until(hass, lambda: push.reconnects == 1 and push.pushing)
    assert device.system["uptime_s"] == 0


@pytest.mark.parametrize("device_profile", ["HWE-KWH1"])
async def test_kwh_meter_has_neither_status_light_nor_identify(
    hass: HomeAssistant, device: FakeHomeWizardV2
) -> None:
    await setup_entry(hass, device, **{CONF_PUSH: False})
    assert _id(hass, SWITCH_DOMAIN, device, "cloud_enabled") is not None
    assert _id(hass, BUTTON_DOMAIN, device, "reboot") is not None
    assert _id(hass, SELECT_DOMAIN, device, "battery_mode") is not None
    assert _id(hass, NUMBER_DOMAIN, device, "brightness") is None
    assert _id(hass, BUTTON_DOMAIN, device, "identify") is None


@pytest.mark.parametrize("device_profile", ["HWE-BAT"])
async def test_plug_in_battery_blinks_and_dims_but_keeps_its_cloud(
    hass: HomeAssistant, device: FakeHomeWizardV2
) -> None:
    """The battery's cloud connection is read-only, and it cannot be rebooted (system.mdx)."""
    await setup_entry(hass, device, **{CONF_PUSH: False})
    brightness = _id(hass, NUMBER_DOMAIN, device, "brightness")
    assert state_of(hass, brightness) == "80"
    await async_call(hass, NUMBER_DOMAIN, SERVICE_SET_VALUE, brightness, **{ATTR_VALUE: 10})
    assert state_of(hass, brightness) == "10"
    await async_call(
        hass, BUTTON_DOMAIN, SERVICE_PRESS, _id(hass, BUTTON_DOMAIN, device, "identify")
    )
    assert device.identified == 1
    assert state_of(hass, _id(hass, "binary_sensor", device, "cloud_enabled")) == STATE_ON
    assert _id(hass, SWITCH_DOMAIN, device, "cloud_enabled") is None
    assert _id(hass, BUTTON_DOMAIN, device, "reboot") is None
    assert _id(hass, SELECT_DOMAIN, device, "battery_mode") is None


async def test_predictive_mode_from_api_2_3(hass: HomeAssistant, device: FakeHomeWizardV2) -> None:
    device.device["api_version"] = "2.3.0"
    assert device.battery_group is not None
    device.battery_group.modes = (*device.battery_group.modes, "predictive")
    await setup_entry(hass, device, **{CONF_PUSH: False})
    mode = _id(hass, SELECT_DOMAIN, device, "battery_mode")
    state = hass.states.get(mode or "")
    assert state is not None
    assert state.attributes["options"] == ["zero", "to_full", "standby", "predictive"]
    await async_call(
        hass, SELECT_DOMAIN, SERVICE_SELECT_OPTION, mode, **{ATTR_OPTION: "predictive"}
    )
    assert device.batteries is not None
    assert device.batteries["mode"] == "predictive"
    assert state_of(hass, mode) == "predictive"


@pytest.mark.parametrize(
    ("status", "body", "translation_key", "shown"),
    [
        (400, b'{"error":"json:parameter-invalid-type:cloud_enabled"}', "write_rejected", True),
        (500, b'{"error":"request:internal-server-error"}', "write_failed", False),
    ],
)
async def test_a_refused_write_is_a_translated_error(
    hass: HomeAssistant,
    device: FakeHomeWizardV2,
    status: int,
    body: bytes,
    translation_key: str,
    shown: bool,
) -> None:
    await setup_entry(hass, device, **{CONF_PUSH: False})
    cloud = _id(hass, SWITCH_DOMAIN, device, "cloud_enabled")
    device.fail_with = (status, body)
    with pytest.raises(HomeAssistantError) as failed:
        await async_call(hass, SWITCH_DOMAIN, SERVICE_TURN_OFF, cloud)
    assert failed.value.translation_domain == DOMAIN
    assert failed.value.translation_key == translation_key
    # the device's reason is in the message where it gave one
    assert ("parameter-invalid-type" in str(failed.value.translation_placeholders)) is shown
    assert device.system["cloud_enabled"] is True


async def test_a_refused_token_on_a_write_starts_the_reauth(
    hass: HomeAssistant, device: FakeHomeWizardV2
) -> None:
    entry = await setup_entry(hass, device, **{CONF_PUSH: False})
    token = device.users.pop(USER)
    assert not list(entry.async_get_active_flows(hass, {SOURCE_REAUTH}))
    with pytest.raises(HomeAssistantError) as refused:
        await async_call(
            hass, BUTTON_DOMAIN, SERVICE_PRESS, _id(hass, BUTTON_DOMAIN, device, "identify")
        )
    assert refused.value.translation_key == "token_refused"
    assert token not in str(refused.value)
    await hass.async_block_till_done()
    assert list(entry.async_get_active_flows(hass, {SOURCE_REAUTH}))
