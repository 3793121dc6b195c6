"""Controls of HomeWizard devices (API v1): the socket's switch, lock and status light, identify,
the cloud connection; over real HTTP against the simulator, and the requests each poll costs.
"""

from __future__ import annotations

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.button import DOMAIN as BUTTON_DOMAIN, SERVICE_PRESS
from homeassistant.components.number import ATTR_VALUE, DOMAIN as NUMBER_DOMAIN, SERVICE_SET_VALUE
from homeassistant.components.switch import DOMAIN as SWITCH_DOMAIN
from homeassistant.const import (
    SERVICE_TURN_OFF,
    SERVICE_TURN_ON,
    STATE_OFF,
    STATE_ON,
    EntityCategory,
)
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import pytest

from custom_components.meter_hub.api.homewizard.parser import parse_state, parse_system
from custom_components.meter_hub.local_coordinator import SETTINGS_INTERVAL
from simulator.homewizard import FakeHomeWizard

from .conftest import (
    MakeFake,
    async_call,
    async_poll,
    async_setup_local,
    categories_of,
    entity_of,
    state_of,
)


def _entity_id(hass: HomeAssistant, platform: str, fake: FakeHomeWizard, key: str) -> str | None:
    return entity_of(hass, platform, fake.device["serial"], key)


async def test_socket_controls_write_and_read_back(
    hass: HomeAssistant, make_fake: MakeFake
) -> None:
    """Switch, lock, brightness, identify and cloud change the device; HA shows what it reads."""
    fake = await make_fake("HWE-SKT")
    await async_setup_local(hass, fake)
    power = _entity_id(hass, SWITCH_DOMAIN, fake, "switch_on")
    lock = _entity_id(hass, SWITCH_DOMAIN, fake, "switch_lock")
    cloud = _entity_id(hass, SWITCH_DOMAIN, fake, "cloud_enabled")
    brightness = _entity_id(hass, NUMBER_DOMAIN, fake, "brightness")
    identify = _entity_id(hass, BUTTON_DOMAIN, fake, "identify")
    watts = _entity_id(hass, "sensor", fake, "power_w")
    assert (state_of(hass, power), state_of(hass, lock), state_of(hass, cloud)) == (
        STATE_ON,
        STATE_OFF,
        STATE_ON,
    )
    assert state_of(hass, brightness) == "100"
    assert categories_of(hass, lock, cloud, brightness, identify) == {EntityCategory.CONFIG}
    assert categories_of(hass, power) == {None}

    await async_call(hass, SWITCH_DOMAIN, SERVICE_TURN_OFF, power)
    assert fake.state is not None
    assert fake.state["power_on"] is False
    assert state_of(hass, power) == STATE_OFF
    assert state_of(hass, watts) == "0.0"  # the refresh after the write read the device
    await async_call(hass, SWITCH_DOMAIN, SERVICE_TURN_ON, power)
    assert state_of(hass, power) == STATE_ON
    assert state_of(hass, watts) == "87.4"  # the load draws again

    await async_call(hass, SWITCH_DOMAIN, SERVICE_TURN_ON, lock)
    assert fake.state["switch_lock"] is True
    assert state_of(hass, lock) == STATE_ON

    await async_call(hass, NUMBER_DOMAIN, SERVICE_SET_VALUE, brightness, **{ATTR_VALUE: 50})
    assert fake.state["brightness"] == 128
    assert state_of(hass, brightness) == "50"

    await async_call(hass, BUTTON_DOMAIN, SERVICE_PRESS, identify)
    assert fake.identify_count == 1

    await async_call(hass, SWITCH_DOMAIN, SERVICE_TURN_OFF, cloud)
    assert fake.system == {"cloud_enabled": False}
    assert state_of(hass, cloud) == STATE_OFF


async def test_locked_socket_refuses_switching(hass: HomeAssistant, make_fake: MakeFake) -> None:
    """With the switch lock on, switching is refused with a translated error; nothing is sent."""
    fake = await make_fake("HWE-SKT")
    assert fake.state is not None
    fake.state["switch_lock"] = True
    await async_setup_local(hass, fake)
    power = _entity_id(hass, SWITCH_DOMAIN, fake, "switch_on")
    with pytest.raises(HomeAssistantError) as caught:
        await async_call(hass, SWITCH_DOMAIN, SERVICE_TURN_OFF, power)
    assert caught.value.translation_key == "switch_locked"
    assert fake.request_count["/api/v1/state"] == 1  # the first poll's read, no write
    assert fake.state["power_on"] is True
    assert state_of(hass, power) == STATE_ON


@pytest.mark.parametrize(
    ("fault", "translation_key"),
    [
        ("locked_behind_our_back", "write_rejected"),
        ("status", "write_failed"),
        ("api_disabled", "api_disabled"),
    ],
)
async def test_failed_write_raises_translated_error(
    hass: HomeAssistant, make_fake: MakeFake, fault: str, translation_key: str
) -> None:
    """A refused or failed write is a translated error; the state stays what the device said."""
    fake = await make_fake("HWE-SKT")
    await async_setup_local(hass, fake)
    power = _entity_id(hass, SWITCH_DOMAIN, fake, "switch_on")
    assert fake.state is not None
    if fault == "locked_behind_our_back":
        fake.state["switch_lock"] = True  # in the app, since the last poll
    elif fault == "status":
        fake.status = 500
    else:
        fake.api_enabled = False
    with pytest.raises(HomeAssistantError) as caught:
        await async_call(hass, SWITCH_DOMAIN, SERVICE_TURN_OFF, power)
    assert caught.value.translation_key == translation_key
    assert fake.state["power_on"] is True
    assert state_of(hass, power) == STATE_ON


async def test_requests_per_poll(
    hass: HomeAssistant, make_fake: MakeFake, freezer: FrozenDateTimeFactory
) -> None:
    """A poll is one request (two for the socket); the settings are read every 10 minutes."""
    p1, socket = await make_fake("HWE-P1"), await make_fake("HWE-SKT")
    for fake in (p1, socket):
        await async_setup_local(hass, fake)
        fake.request_count.clear()
    for _ in range(10):
        await async_poll(hass, freezer)
    assert dict(p1.request_count) == {"/api/v1/data": 10}
    assert dict(socket.request_count) == {"/api/v1/data": 10, "/api/v1/state": 10}
    await async_poll(hass, freezer, SETTINGS_INTERVAL.total_seconds())
    assert p1.request_count["/api/v1/system"] == socket.request_count["/api/v1/system"] == 1
    assert "/api/v1/state" not in p1.request_count


async def test_device_without_control_endpoints(
    hass: HomeAssistant, make_fake: MakeFake, freezer: FrozenDateTimeFactory
) -> None:
    """Firmware without /api/v1/state or /api/v1/system (404): no such entities, asked once."""
    fake = await make_fake("HWE-SKT")
    fake.state = fake.system = None
    await async_setup_local(hass, fake)
    for platform, key in ((SWITCH_DOMAIN, "switch_on"), (SWITCH_DOMAIN, "cloud_enabled")):
        assert _entity_id(hass, platform, fake, key) is None
    assert _entity_id(hass, NUMBER_DOMAIN, fake, "brightness") is None
    assert _entity_id(hass, BUTTON_DOMAIN, fake, "identify") is not None
    await async_poll(hass, freezer, SETTINGS_INTERVAL.total_seconds() + 5)
    assert fake.request_count["/api/v1/system"] == 1
    assert fake.request_count["/api/v1/state"] == 1


def test_parse_state_and_system() -> None:
    """Only well-typed values are taken; brightness becomes percent."""
    assert parse_state({"power_on": True, "switch_lock": False, "brightness": 127}) == {
        "switch_on": True,
        "switch_lock": False,
        "brightness": 50,
    }
    assert parse_state({"power_on": 1, "switch_lock": "no", "brightness": 256}) == {}
    assert parse_system({"cloud_enabled": False}) == {"cloud_enabled": False}
    assert parse_system({"cloud_enabled": "false"}) == {}
