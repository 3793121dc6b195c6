"""Pairing with a HomeWizard API v2 device: discovery, the button, errors, reauth.

Every flow talks HTTPS to the simulator's v2 device on 127.0.0.1, whose certificate comes from the
simulator's CA; the only seam is the SSL context that trusts that CA instead of HomeWizard's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from ipaddress import ip_address
import time
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_REAUTH, SOURCE_ZEROCONF, ConfigEntryState
from homeassistant.const import CONF_HOST
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResult, FlowResultType
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
import pytest

from custom_components.meter_hub.api.homewizard_v2 import create_ssl_context
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
from simulator.homewizard_v2 import FakeHomeWizardV2
from simulator.tls import SimulatorAuthority

from .conftest import async_poll

FAST = 0.02  # seconds between pairing requests in these tests


@pytest.fixture(scope="module")
def authority() -> Iterator[SimulatorAuthority]:
    ca = SimulatorAuthority()
    yield ca
    ca.cleanup()


@pytest.fixture(autouse=True)
def trust_the_simulator(authority: SimulatorAuthority) -> Iterator[None]:
    """The test seam: the integration trusts the simulator's CA; pairing asks every 20 ms."""
    context = create_ssl_context(authority.ca_file)

    async def simulator_context() -> Any:
        return context

    with (
        patch("custom_components.meter_hub.flow_pairing.shared_ssl_context", simulator_context),
        patch(
            "custom_components.meter_hub.local_coordinator.shared_ssl_context", simulator_context
        ),
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
    await asyncio.sleep(5 * FAST)
    asked = device.request_count["/api/user"]
    assert asked >= 2  # it keeps asking while it waits
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
