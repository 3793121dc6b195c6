"""Pairing with a HomeWizard API v2 device: discovery, the button, errors, reauth.

Every flow talks HTTPS to the simulator's v2 device on 127.0.0.1, whose certificate comes from the
simulator's CA; the only seam is the SSL context that trusts that CA instead of HomeWizard's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from ipaddress import ip_address
import ssl
import time
from unittest.mock import patch

import aiohttp
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.repairs import repairs_flow_manager
from homeassistant.config_entries import (
    SOURCE_REAUTH,
    SOURCE_USER,
    SOURCE_ZEROCONF,
    ConfigEntryState,
)
from homeassistant.const import ATTR_ENTITY_ID, CONF_HOST, STATE_OFF
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResult, FlowResultType
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.meter_hub.api.homewizard.hosts import v2_host
from custom_components.meter_hub.api.homewizard.models import supports_api_v2
from custom_components.meter_hub.api.homewizard.v2_client import HomeWizardV2Client
from custom_components.meter_hub.const import (
    CONF_API_VERSION,
    CONF_PRODUCT_TYPE,
    CONF_SERIAL,
    CONF_SOURCE,
    CONF_TOKEN,
    DOMAIN,
    SOURCE_LOCAL,
)
from custom_components.meter_hub.flow_pairing import BUTTON_HINTS, PAIRING_INTERVAL, PAIRING_TIME
from custom_components.meter_hub.repairs import async_create_fix_flow
from simulator.homewizard import FakeHomeWizard
from simulator.homewizard_v2 import FakeHomeWizardV2
from simulator.tls import SimulatorAuthority
from tests.conftest import async_poll, async_setup_local

from .test_push import until

FAST = 0.02  # seconds between pairing requests in these tests


@pytest.fixture(autouse=True)
def fast_pairing(integration_trusts_the_simulator: None) -> Iterator[None]:
    """Pairing asks every 20 ms and gives up after a second."""
    with (
        patch("custom_components.meter_hub.flow_pairing.PAIRING_INTERVAL", FAST),
        patch("custom_components.meter_hub.flow_pairing.PAIRING_TIME", 1.0),
    ):
        yield


@pytest.fixture
async def device(
    socket_enabled: None, authority: SimulatorAuthority
) -> AsyncIterator[FakeHomeWizardV2]:
    fake = FakeHomeWizardV2(authority, "HWE-P1", button_window=0.5)
    await fake.start()
    yield fake
    await fake.stop()


def zeroconf_v2(fake: FakeHomeWizardV2, **properties: str) -> ZeroconfServiceInfo:
    """What Home Assistant's zeroconf hands the flow for a ``_homewizard._tcp`` service."""
    props = {
        "api_version": "2.2.0",
        "id": fake.server_hostname,
        "product_name": "P1 Meter",
        "product_type": fake.device["product_type"],
        "serial": fake.serial,
    } | properties
    host, port = fake.host.split(":")
    return ZeroconfServiceInfo(
        ip_address=ip_address(host),
        ip_addresses=[ip_address(host)],
        port=int(port),
        hostname=f"p1meter-{fake.serial[-6:]}.local.",
        type="_homewizard._tcp.local.",
        name=f"p1meter-{fake.serial[-6:]}._homewizard._tcp.local.",
        properties={key: value for key, value in props.items() if value},
    )


async def discover(hass: HomeAssistant, fake: FakeHomeWizardV2) -> FlowResult:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=zeroconf_v2(fake)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "pair_confirm"
    assert result["description_placeholders"] == {"name": "P1 Meter", "host": fake.host}
    return result


async def wait_for_pairing(hass: HomeAssistant, flow_id: str) -> FlowResult:
    """Let the progress step's task end; the flow's next result."""
    await hass.async_block_till_done()
    return await hass.config_entries.flow.async_configure(flow_id)


def assert_v2_entry(result: FlowResult, fake: FakeHomeWizardV2) -> None:
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "P1 Meter"
    ((name, token),) = fake.users.items()
    assert name.startswith("local/meter_hub ")
    assert result["data"] == {
        CONF_SOURCE: SOURCE_LOCAL,
        CONF_HOST: fake.host,
        CONF_SERIAL: fake.serial,
        CONF_PRODUCT_TYPE: "HWE-P1",
        CONF_API_VERSION: 2,
        CONF_TOKEN: token,
    }


async def test_button_pressed_during_the_progress_step(
    hass: HomeAssistant, device: FakeHomeWizardV2
) -> None:
    result = await discover(hass, device)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    assert result["progress_action"] == "pair_p1"
    assert result["description_placeholders"] == {"name": "P1 Meter"}
    # it keeps asking while it waits (not async_block_till_done: that would wait for the pairing)
    async with asyncio.timeout(10):
        while device.request_count.get("/api/user", 0) < 2:  # noqa: ASYNC110 - a count, no event
            await asyncio.sleep(FAST)
    device.press()
    result = await wait_for_pairing(hass, result["flow_id"])
    assert_v2_entry(result, device)
    await hass.async_block_till_done()
    assert result["result"].state is ConfigEntryState.LOADED


async def test_button_pressed_before_the_flow_asks(
    hass: HomeAssistant, device: FakeHomeWizardV2
) -> None:
    device.press()
    result = await discover(hass, device)
    await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert_v2_entry(await wait_for_pairing(hass, result["flow_id"]), device)
    assert device.request_count["/api/user"] == 1


async def test_no_press_within_the_minute_offers_a_retry(
    hass: HomeAssistant, device: FakeHomeWizardV2
) -> None:
    result = await discover(hass, device)
    await hass.config_entries.flow.async_configure(result["flow_id"], {})
    result = await wait_for_pairing(hass, result["flow_id"])
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "pair_timeout"
    assert device.request_count["/api/user"] > 10
    # pressed after the window of the first attempt: the retry pairs
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    device.press()
    assert_v2_entry(await wait_for_pairing(hass, result["flow_id"]), device)


async def test_no_storage_is_explained_then_retried(
    hass: HomeAssistant, device: FakeHomeWizardV2
) -> None:
    device.max_users = 0
    device.press()
    result = await discover(hass, device)
    await hass.config_entries.flow.async_configure(result["flow_id"], {})
    result = await wait_for_pairing(hass, result["flow_id"])
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "pair_no_storage"
    device.max_users = 1  # the user removed a user in the app
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    device.press()
    assert_v2_entry(await wait_for_pairing(hass, result["flow_id"]), device)


@pytest.mark.usefixtures("refused_handshakes")
async def test_another_device_at_the_address_is_refused(
    hass: HomeAssistant, authority: SimulatorAuthority, socket_enabled: None
) -> None:
    other = FakeHomeWizardV2(authority, "HWE-P1", common_name="appliance/p1dongle/aabbccddeeff")
    await other.start()
    try:
        other.press()
        result = await discover(hass, other)
        await hass.config_entries.flow.async_configure(result["flow_id"], {})
        result = await wait_for_pairing(hass, result["flow_id"])
    finally:
        await other.stop()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "untrusted_device"
    assert other.users == {}
    assert other.request_count == {}  # TLS failed before any request was sent


async def test_device_gone_while_pairing(hass: HomeAssistant, device: FakeHomeWizardV2) -> None:
    result = await discover(hass, device)
    device.fail_with = (500, b'{"error": "request:internal-server-error"}')
    await hass.config_entries.flow.async_configure(result["flow_id"], {})
    result = await wait_for_pairing(hass, result["flow_id"])
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "pair_failed"
    device.fail_with = None
    device.press()
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert_v2_entry(await wait_for_pairing(hass, result["flow_id"]), device)


@pytest.mark.parametrize(
    ("properties", "reason"),
    [
        ({"id": ""}, "invalid_discovery_parameters"),
        ({"product_type": "HWE-SKT"}, "api_v2_not_supported"),
    ],
)
async def test_discovery_that_is_not_paired(
    hass: HomeAssistant, device: FakeHomeWizardV2, properties: dict[str, str], reason: str
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=zeroconf_v2(device, **properties)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == reason


def test_every_v2_product_has_a_button_hint() -> None:
    assert set(BUTTON_HINTS.values()) == {"pair_p1", "pair_kwh", "pair_battery"}


async def test_revoked_token_leads_to_pairing_again(
    hass: HomeAssistant, device: FakeHomeWizardV2, freezer: FrozenDateTimeFactory
) -> None:
    device.press()
    result = await discover(hass, device)
    await hass.config_entries.flow.async_configure(result["flow_id"], {})
    entry = (await wait_for_pairing(hass, result["flow_id"]))["result"]
    await hass.async_block_till_done()
    old_token = entry.data[CONF_TOKEN]

    device.users.clear()  # removed in the app
    await async_poll(hass, freezer)
    (flow,) = [
        flow
        for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if flow["context"]["source"] == SOURCE_REAUTH
    ]
    assert flow["step_id"] == "pair_confirm"
    device.press()
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    result = await wait_for_pairing(hass, flow["flow_id"])
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.data[CONF_TOKEN] not in (old_token, None)
    assert entry.state is ConfigEntryState.LOADED


async def test_pairing_finishes_within_a_second_of_the_press(
    hass: HomeAssistant, device: FakeHomeWizardV2
) -> None:
    """With the real interval and the 1 s window users report, a press is never missed."""
    device.button_window = 1.0
    with (
        patch("custom_components.meter_hub.flow_pairing.PAIRING_INTERVAL", PAIRING_INTERVAL),
        patch("custom_components.meter_hub.flow_pairing.PAIRING_TIME", PAIRING_TIME),
    ):
        result = await discover(hass, device)
        await hass.config_entries.flow.async_configure(result["flow_id"], {})
        await asyncio.sleep(0.3)
        pressed = time.monotonic()
        device.press()
        result = await wait_for_pairing(hass, result["flow_id"])
        elapsed = time.monotonic() - pressed
    assert_v2_entry(result, device)
    print(f"pairing finished {elapsed:.3f} s after the button press")  # noqa: T201
    assert elapsed < PAIRING_INTERVAL + 0.5, elapsed


# --- v1 → v2 ------------------------------------------------------------------------------------


async def move_to_v2(hass: HomeAssistant, entry: MockConfigEntry, v2: FakeHomeWizardV2) -> None:
    """Fix the entry's repair issue: its reauth pairs with ``v2``, the button pressed."""
    assert await async_setup_component(hass, "repairs", {})
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"api_v2_available_{entry.entry_id}")
    assert issue is not None
    manager = repairs_flow_manager(hass)
    assert manager is not None
    result = await manager.async_init(DOMAIN, data={"issue_id": issue.issue_id})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "confirm"
    result = await manager.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    (flow,) = [
        flow
        for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if flow["context"]["source"] == SOURCE_REAUTH
    ]
    v2.press()
    await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    result = await wait_for_pairing(hass, flow["flow_id"])
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()


async def test_v1_entry_moves_to_v2_keeping_every_entity(
    hass: HomeAssistant, device: FakeHomeWizardV2, homewizard: FakeHomeWizard
) -> None:
    homewizard.device["serial"] = device.serial
    homewizard.device["firmware_version"] = "6.00"  # a P1 meter with API v2
    entry = await async_setup_local(hass, homewizard)
    registry = er.async_get(hass)
    # Every entity stays: the sensors (and with them their statistics), the cloud switch and the
    # identify button (the same unique ids over both API versions).
    before = {
        entity.unique_id: entity.entity_id
        for entity in er.async_entries_for_config_entry(registry, entry.entry_id)
    }
    cloud = before[f"{device.serial}_cloud_enabled"]
    assert cloud.startswith("switch.")
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"api_v2_available_{entry.entry_id}")
    assert issue is not None
    assert issue.data == {"entry_id": entry.entry_id, CONF_HOST: "127.0.0.1"}  # port 443

    # the device announces its v2: the issue takes the address it announces, nothing else
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=zeroconf_v2(device)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_HOST] == homewizard.host
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"api_v2_available_{entry.entry_id}")
    assert issue is not None
    assert issue.data[CONF_HOST] == device.host

    await move_to_v2(hass, entry, device)
    assert entry.state is ConfigEntryState.LOADED
    assert entry.data[CONF_API_VERSION] == 2
    assert entry.data[CONF_HOST] == device.host
    after = {
        entity.unique_id: entity.entity_id
        for entity in er.async_entries_for_config_entry(registry, entry.entry_id)
    }
    assert after.items() >= before.items()  # same ids, so the same statistics
    assert hass.states.get(before[f"{device.serial}_power_w"]).state == "-543"
    # the cloud switch now reads and writes the device's API v2
    await hass.services.async_call("switch", "turn_off", {ATTR_ENTITY_ID: cloud}, blocking=True)
    assert device.system["cloud_enabled"] is False
    await until(hass, lambda: hass.states.get(cloud).state == STATE_OFF)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue.issue_id) is None
    assert homewizard.request_count["/api/v1/data"] > 0


async def test_v1_switched_off_leads_to_the_move(
    hass: HomeAssistant,
    homewizard: FakeHomeWizard,
    freezer: FrozenDateTimeFactory,
    socket_enabled: None,
) -> None:
    homewizard.device["firmware_version"] = "6.00"
    entry = await async_setup_local(hass, homewizard)
    issue_id = f"api_v2_available_{entry.entry_id}"
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "api_v2_available"
    assert issue.severity is ir.IssueSeverity.WARNING
    homewizard.api_enabled = False  # api_v1_enabled false answers as a switched-off API
    await async_poll(hass, freezer)
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "api_v1_disabled"
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.data == {"entry_id": entry.entry_id, CONF_HOST: "127.0.0.1"}


async def test_old_firmware_is_not_offered_v2(
    hass: HomeAssistant, homewizard: FakeHomeWizard, freezer: FrozenDateTimeFactory
) -> None:
    entry = await async_setup_local(hass, homewizard)  # P1 firmware 4.19
    homewizard.api_enabled = False
    await async_poll(hass, freezer)
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"api_v2_available_{entry.entry_id}") is None


@pytest.mark.parametrize(
    ("product_type", "firmware", "supported"),
    [
        ("HWE-P1", "5.18", False),
        ("HWE-P1", "6.0201", True),
        ("HWE-KWH3", "5.00", True),
        ("HWE-SKT", "9.00", False),
        ("HWE-BAT", None, True),
        ("HWE-P1", "x", False),
    ],
)
def test_which_devices_move_to_v2(product_type: str, firmware: str | None, supported: bool) -> None:
    assert supports_api_v2(product_type, firmware) is supported


def test_v2_address_of_a_v1_host() -> None:
    assert v2_host("192.168.1.20") == "192.168.1.20"
    assert v2_host("p1.local:8080") == "p1.local"
    assert v2_host("[fe80::1]:80") == "[fe80::1]"


async def test_repair_of_a_removed_entry_aborts(hass: HomeAssistant) -> None:
    flow = await async_create_fix_flow(hass, "api_v2_available_gone", None)
    flow.hass = hass
    result = await flow.async_step_init()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "entry_removed"


async def test_device_that_switched_v1_off_moves_to_v2(
    hass: HomeAssistant,
    authority: SimulatorAuthority,
    homewizard: FakeHomeWizard,
    trust: ssl.SSLContext,
    freezer: FrozenDateTimeFactory,
) -> None:
    """One device, both APIs: ``api_v1_enabled`` false (set over v2) leads to the move."""
    homewizard.device["firmware_version"] = "6.00"
    device = FakeHomeWizardV2(authority, "HWE-P1", v1=homewizard)
    homewizard.device["serial"] = device.serial
    await device.start()
    try:
        entry = await async_setup_local(hass, homewizard)
        device.users["local/app"] = token = "0123456789ABCDEF0123456789ABCDEF"
        async with aiohttp.ClientSession() as session:
            async with session.put(
                f"https://{device.host}/api/system",
                json={"api_v1_enabled": False},
                headers={"Authorization": f"Bearer {token}", "X-Api-Version": "2"},
                ssl=trust,
                server_hostname=device.server_hostname,
            ) as response:
                assert response.status == 200
            client = HomeWizardV2Client(
                session,
                device.host,
                device_name=device.server_hostname,
                ssl_context=trust,
                token=token,
            )
            _, reading = await client.measurement(device.serial)
        assert reading.values["api_v1_enabled"] is False
        await async_poll(hass, freezer)
        assert hass.states.get("sensor.p1_meter_power").state == "unavailable"
        issue = ir.async_get(hass).async_get_issue(DOMAIN, f"api_v2_available_{entry.entry_id}")
        assert issue is not None
        assert issue.translation_key == "api_v1_disabled"
        # the simulator's v2 is on another port of 127.0.0.1; a real device has both on one address
        ir.async_create_issue(
            hass,
            DOMAIN,
            issue.issue_id,
            is_fixable=True,
            severity=issue.severity,
            translation_key=issue.translation_key,
            translation_placeholders=issue.translation_placeholders,
            data={"entry_id": entry.entry_id, CONF_HOST: device.host},
        )
        await move_to_v2(hass, entry, device)
        assert entry.data[CONF_API_VERSION] == 2
        assert hass.states.get("sensor.p1_meter_power").state == "-543"
        assert hass.states.get("binary_sensor.p1_meter_local_api_v1").state == "off"
    finally:
        await device.stop()


async def test_device_entered_by_address_with_v2_is_paired(
    hass: HomeAssistant, device: FakeHomeWizardV2, homewizard: FakeHomeWizard
) -> None:
    """The host form reads API v1; a device that has v2 goes on to the pairing."""
    homewizard.device["serial"] = device.serial
    homewizard.device["firmware_version"] = "6.00"
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "local"}
    )
    # the simulator's v2 is on another port of 127.0.0.1; a real device has both on one address
    with patch("custom_components.meter_hub.flow_pairing.v2_host", return_value=device.host):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_HOST: homewizard.host}
        )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "pair_confirm"
    device.press()
    await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert_v2_entry(await wait_for_pairing(hass, result["flow_id"]), device)


async def test_device_unreadable_right_after_pairing(
    hass: HomeAssistant, device: FakeHomeWizardV2
) -> None:
    """The token is given, then the device stops answering: no entry, the user is told."""
    device.press()
    result = await discover(hass, device)
    await hass.config_entries.flow.async_configure(result["flow_id"], {})
    await hass.async_block_till_done()
    assert device.users  # paired
    device.fail_with = (500, b'{"error": "request:internal-server-error"}')
    result = await hass.config_entries.flow.async_configure(result["flow_id"])
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "cannot_connect"
    assert not hass.config_entries.async_entries(DOMAIN)


async def test_device_added_meanwhile_gets_the_new_token(
    hass: HomeAssistant, device: FakeHomeWizardV2
) -> None:
    """Another flow added the device while this one paired: its entry takes this pairing."""
    result = await discover(hass, device)
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=device.serial,
        data={
            CONF_SOURCE: SOURCE_LOCAL,
            CONF_HOST: device.host,
            CONF_SERIAL: device.serial,
            CONF_PRODUCT_TYPE: "HWE-P1",
            CONF_API_VERSION: 2,
            CONF_TOKEN: "old",
        },
    )
    entry.add_to_hass(hass)
    device.press()
    await hass.config_entries.flow.async_configure(result["flow_id"], {})
    result = await wait_for_pairing(hass, result["flow_id"])
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    ((_, token),) = device.users.items()
    assert entry.data[CONF_TOKEN] == token
