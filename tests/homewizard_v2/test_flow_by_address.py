"""A device that speaks only API v2 (the Plug-In Battery), added by its address.

The host form reads API v1 first; a device without it is known by the name in its certificate
(verified against the CA the integration trusts), then paired. Every flow talks to the simulator's
HTTPS devices on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
import ssl
import time
from unittest.mock import patch

from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import CONF_HOST
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResult, FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.meter_hub.api.homewizard.errors import CannotConnect, NotHomeWizard
from custom_components.meter_hub.api.homewizard.tls import create_naming_context, read_device_name
from custom_components.meter_hub.const import (
    CONF_API_VERSION,
    CONF_PRODUCT_TYPE,
    CONF_SERIAL,
    CONF_SOURCE,
    CONF_TOKEN,
    DOMAIN,
    SOURCE_LOCAL,
)
from simulator.homewizard import FakeHomeWizard
from simulator.homewizard_v2 import FakeHomeWizardV2
from simulator.tls import SimulatorAuthority

from .test_pairing_flow import fast_pairing, wait_for_pairing  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.usefixtures("refused_handshakes")


@contextlib.asynccontextmanager
async def serving(fake: FakeHomeWizardV2) -> AsyncIterator[FakeHomeWizardV2]:
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def battery(
    socket_enabled: None, authority: SimulatorAuthority
) -> AsyncIterator[FakeHomeWizardV2]:
    async with serving(FakeHomeWizardV2(authority, "HWE-BAT", button_window=0.5)) as fake:
        yield fake


async def enter_host(hass: HomeAssistant, host: str) -> FlowResult:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "local"}
    )
    return await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_HOST: host})


async def enter_host_of(hass: HomeAssistant, fake: FakeHomeWizardV2) -> FlowResult:
    """The host form's answer for ``fake``, which listens only meanwhile."""
    async with serving(fake):
        return await enter_host(hass, fake.host)


async def test_battery_entered_by_address_is_paired(
    hass: HomeAssistant, battery: FakeHomeWizardV2
) -> None:
    result = await enter_host(hass, battery.host)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "pair_confirm"
    assert result["description_placeholders"] == {"name": "Plug-In Battery", "host": battery.host}
    # the /api probe asked without a token and was told to get one
    assert battery.request_count == {"/api": 1}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    assert result["progress_action"] == "pair_battery"
    pressed = time.monotonic()
    battery.press()
    result = await wait_for_pairing(hass, result["flow_id"])
    print(f"battery paired {time.monotonic() - pressed:.3f} s after the press")  # noqa: T201
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Plug-In Battery"
    ((_, token),) = battery.users.items()
    assert result["data"] == {
        CONF_SOURCE: SOURCE_LOCAL,
        CONF_HOST: battery.host,
        CONF_SERIAL: battery.serial,
        CONF_PRODUCT_TYPE: "HWE-BAT",
        CONF_API_VERSION: 2,
        CONF_TOKEN: token,
    }


async def test_kwh_meter_by_address_is_named_for_its_kind(
    hass: HomeAssistant, socket_enabled: None, authority: SimulatorAuthority
) -> None:
    """The kWh meters share one certificate type: the form names the kind until it is paired."""
    meter = FakeHomeWizardV2(authority, "HWE-KWH3")
    result = await enter_host_of(hass, meter)
    assert result["step_id"] == "pair_confirm"
    assert result["description_placeholders"] == {"name": "kWh Meter", "host": meter.host}


async def test_certificate_of_another_ca_is_no_device(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    """A v2 look-alike whose certificate the integration's CA did not sign: nothing is sent."""
    stranger = SimulatorAuthority()
    fake = FakeHomeWizardV2(stranger, "HWE-BAT")
    try:
        result = await enter_host_of(hass, fake)
    finally:
        stranger.cleanup()
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "local"
    assert result["errors"] == {"base": "cannot_connect"}
    assert fake.request_count == {}


async def test_device_without_released_v2_is_not_paired(
    hass: HomeAssistant, socket_enabled: None, authority: SimulatorAuthority
) -> None:
    """An energy socket's certificate: its v2 is not released, the form keeps its error."""
    fake = FakeHomeWizardV2(authority, "HWE-BAT", common_name="appliance/energysocket/5c2fafaa0000")
    result = await enter_host_of(hass, fake)
    assert result["step_id"] == "local"
    assert result["errors"] == {"base": "cannot_connect"}


async def test_known_battery_at_its_address_is_already_configured(
    hass: HomeAssistant, battery: FakeHomeWizardV2
) -> None:
    battery.users["local/home-assistant"] = token = "0123456789ABCDEF0123456789ABCDEF"
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=battery.serial,
        data={
            CONF_SOURCE: SOURCE_LOCAL,
            CONF_HOST: "192.0.2.1",
            CONF_SERIAL: battery.serial,
            CONF_PRODUCT_TYPE: "HWE-BAT",
            CONF_API_VERSION: 2,
            CONF_TOKEN: token,
        },
    )
    entry.add_to_hass(hass)
    result = await enter_host(hass, battery.host)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_HOST] == battery.host  # its token proved the address
    await hass.async_block_till_done()
    assert battery.users == {"local/home-assistant": token}


async def test_name_must_be_a_device_name(
    socket_enabled: None, authority: SimulatorAuthority
) -> None:
    fake = FakeHomeWizardV2(authority, "HWE-BAT", common_name="www.example.com")
    async with serving(fake):
        naming = create_naming_context(authority.ca_file)
        assert naming.verify_mode is ssl.CERT_REQUIRED  # the chain is verified all the same
        with pytest.raises(NotHomeWizard, match="does not name a HomeWizard device"):
            await read_device_name(fake.host, naming, 5)


async def test_silent_address_is_given_up(
    socket_enabled: None, authority: SimulatorAuthority
) -> None:
    """A host that accepts the connection but never answers the handshake: no device there."""
    release = asyncio.Event()

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(CannotConnect, match=r"did not answer within 0\.1 s"):
            await read_device_name(
                f"127.0.0.1:{port}", create_naming_context(authority.ca_file), 0.1
            )
    finally:
        release.set()
        server.close()
        await server.wait_closed()


async def test_meter_with_api_v1_switched_off_is_paired(
    hass: HomeAssistant, authority: SimulatorAuthority, homewizard: FakeHomeWizard
) -> None:
    """API v1 answers "not enabled" (``api_v1_enabled`` false): its API v2 is paired instead."""
    async with serving(FakeHomeWizardV2(authority, "HWE-P1", v1=homewizard)) as p1:
        homewizard.device["serial"] = p1.serial
        homewizard.api_enabled = False
        # the simulator's v2 is on another port of 127.0.0.1; a real device has both on one address
        with patch("custom_components.meter_hub.flow_pairing.v2_host", return_value=p1.host):
            result = await enter_host(hass, homewizard.host)
        assert result["step_id"] == "pair_confirm"
        assert result["description_placeholders"] == {"name": "P1 Meter", "host": p1.host}
        p1.press()
        await hass.config_entries.flow.async_configure(result["flow_id"], {})
        result = await wait_for_pairing(hass, result["flow_id"])
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_HOST] == p1.host
    assert result["data"][CONF_API_VERSION] == 2


async def test_v1_device_with_its_api_off_is_told_so(
    hass: HomeAssistant, homewizard: FakeHomeWizard
) -> None:
    """No API v2 at the address (nothing on port 443): the form says to switch API v1 on."""
    homewizard.api_enabled = False
    result = await enter_host(hass, homewizard.host)
    assert result["step_id"] == "local"
    assert result["errors"] == {"base": "api_not_enabled"}
