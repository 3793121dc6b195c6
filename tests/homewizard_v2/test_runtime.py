"""A HomeWizard entry on API v2, set up against the simulator's HTTPS devices."""

from __future__ import annotations

from ipaddress import ip_address
import json
import logging

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.sensor import SensorDeviceClass, SensorStateClass
from homeassistant.config_entries import SOURCE_ZEROCONF, ConfigEntryState
from homeassistant.const import CONF_HOST, STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.meter_hub.const import (
    CONF_API_VERSION,
    CONF_PRODUCT_TYPE,
    CONF_SERIAL,
    CONF_SOURCE,
    CONF_TOKEN,
    DOMAIN,
    SOURCE_LOCAL,
)
from simulator.homewizard_v2 import FakeHomeWizardV2
from simulator.tls import SimulatorAuthority
from tests.conftest import async_poll

from .conftest import USER

pytestmark = pytest.mark.usefixtures("integration_trusts_the_simulator")


async def setup_v2(hass: HomeAssistant, fake: FakeHomeWizardV2) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=fake.device["product_name"],
        unique_id=fake.serial,
        data={
            CONF_SOURCE: SOURCE_LOCAL,
            CONF_HOST: fake.host,
            CONF_SERIAL: fake.serial,
            CONF_PRODUCT_TYPE: fake.device["product_type"],
            CONF_API_VERSION: 2,
            CONF_TOKEN: fake.users[USER],
        },
    )
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


def entity_id(hass: HomeAssistant, domain: str, unique_id: str) -> str:
    found = er.async_get(hass).async_get_entity_id(domain, DOMAIN, unique_id)
    assert found is not None, unique_id
    return found


async def test_p1_meter_with_batteries(
    hass: HomeAssistant,
    device: FakeHomeWizardV2,
    freezer: FrozenDateTimeFactory,
    entity_registry_enabled_by_default: None,
) -> None:
    entry = await setup_v2(hass, device)
    assert entry.state is ConfigEntryState.LOADED
    serial = device.serial
    # the same unique ids as on API v1, for the same quantities
    assert hass.states.get(entity_id(hass, "sensor", f"{serial}_power_w")).state == "-543"
    assert hass.states.get(entity_id(hass, "sensor", f"{serial}_energy_import_t1_kwh")).state == (
        "10830.511"
    )
    # the battery mode, the permissions, charge to full and the cloud connection are controls
    mode = hass.states.get(entity_id(hass, "select", f"{serial}_battery_mode"))
    assert mode.state == "zero"
    assert mode.attributes["options"] == ["zero", "to_full", "standby"]  # API 2.2.0
    battery_power = hass.states.get(entity_id(hass, "sensor", f"{serial}_battery_group_power_w"))
    assert battery_power.state == "-404"
    assert hass.states.get(entity_id(hass, "sensor", f"{serial}_wifi_rssi_db")).state == "-77"
    assert hass.states.get(entity_id(hass, "sensor", f"{serial}_uptime_s")).state == "356"
    switches = {
        key: hass.states.get(entity_id(hass, domain, f"{serial}_{key}")).state
        for domain, key in (
            ("switch", "cloud_enabled"),
            ("binary_sensor", "api_v1_enabled"),
            ("switch", "battery_charge_allowed"),
            ("switch", "battery_discharge_allowed"),
            ("switch", "battery_charge_to_full"),
        )
    }
    assert switches == {
        "cloud_enabled": STATE_ON,
        "api_v1_enabled": STATE_ON,
        "battery_charge_allowed": STATE_ON,
        "battery_discharge_allowed": STATE_ON,
        "battery_charge_to_full": STATE_OFF,
    }
    # a switch the device stops reporting becomes unavailable
    device.system.pop("api_v1_enabled")
    await async_poll(hass, freezer)
    state = hass.states.get(entity_id(hass, "binary_sensor", f"{serial}_api_v1_enabled"))
    assert state.state == STATE_UNAVAILABLE


@pytest.mark.parametrize("device_profile", ["HWE-BAT"])
async def test_plug_in_battery(
    hass: HomeAssistant, device: FakeHomeWizardV2, entity_registry_enabled_by_default: None
) -> None:
    await setup_v2(hass, device)
    serial = device.serial
    charge_id = entity_id(hass, "sensor", f"{serial}_state_of_charge_pct")
    charge = hass.states.get(charge_id)
    assert charge.state == "50"
    assert charge.attributes["device_class"] == SensorDeviceClass.BATTERY
    assert charge.attributes["state_class"] == SensorStateClass.MEASUREMENT
    assert hass.states.get(entity_id(hass, "sensor", f"{serial}_battery_cycles")).state == "123"
    assert hass.states.get(entity_id(hass, "sensor", f"{serial}_power_w")).state == "-404"
    assert "/api/batteries" not in device.request_count
    registry = er.async_get(hass)
    assert registry.async_get(charge_id).device_id is not None


async def test_diagnostics_never_show_the_token(
    hass: HomeAssistant, device: FakeHomeWizardV2, hass_client: ClientSessionGenerator
) -> None:
    token = device.users[USER]
    entry = await setup_v2(hass, device)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert token not in json.dumps(diagnostics)
    assert diagnostics["source"]["data"]["system"]["uptime_s"] == 356


async def test_revoked_token_fails_the_poll_without_showing_it(
    hass: HomeAssistant,
    device: FakeHomeWizardV2,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = device.users[USER]
    entry = await setup_v2(hass, device)
    assert entry.state is ConfigEntryState.LOADED
    device.revoke(USER)
    await async_poll(hass, freezer)
    power = hass.states.get(entity_id(hass, "sensor", f"{device.serial}_power_w"))
    assert power.state == STATE_UNAVAILABLE
    assert "refuses the token" in caplog.text
    assert token not in caplog.text


async def _announce(hass: HomeAssistant, announcer: FakeHomeWizardV2, serial: str) -> str:
    """``announcer`` announces the v2 service of ``serial``; the flow's abort reason."""
    host, port = announcer.host.split(":")
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_ZEROCONF},
        data=ZeroconfServiceInfo(
            ip_address=ip_address(host),
            ip_addresses=[ip_address(host)],
            port=int(port),
            hostname="p1meter.local.",
            type="_homewizard._tcp.local.",
            name="p1meter._homewizard._tcp.local.",
            properties={
                "api_version": "2.2.0",
                "id": f"appliance/p1dongle/{serial}",
                "product_type": "HWE-P1",
                "serial": serial,
            },
        ),
    )
    assert result["type"] is FlowResultType.ABORT
    return str(result["reason"])


@pytest.mark.usefixtures("refused_handshakes")  # the pushing socket, cut when a fake stops
async def test_an_announcement_moves_a_v2_entry_only_to_the_device_itself(
    hass: HomeAssistant, device: FakeHomeWizardV2, authority: SimulatorAuthority
) -> None:
    """A known serial at a new address: the address must prove to be the device (its
    certificate and the token) before the entry moves; a spoofer changes nothing."""
    entry = await setup_v2(hass, device)
    home = entry.data[CONF_HOST]
    # another device that announces our serial: its certificate names another device
    spoofer = FakeHomeWizardV2(authority, "HWE-P1", common_name="appliance/p1dongle/5c2fafffffff")
    await spoofer.start()
    spoofer.users[USER] = device.users[USER]
    try:
        assert await _announce(hass, spoofer, device.serial) == "unverified_address"
        assert entry.data[CONF_HOST] == home
        assert spoofer.request_count.get("/api/measurement", 0) == 0
    finally:
        await spoofer.stop()
    # the device itself at a new address (same certificate, same token): the entry moves
    moved = FakeHomeWizardV2(authority, "HWE-P1")
    await moved.start()
    moved.users[USER] = device.users[USER]
    try:
        assert await _announce(hass, moved, device.serial) == "already_configured"
        await hass.async_block_till_done()
        assert entry.data[CONF_HOST] == moved.host
        assert entry.state is ConfigEntryState.LOADED
    finally:
        await moved.stop()
