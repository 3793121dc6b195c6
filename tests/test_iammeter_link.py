"""One IAMMETER meter in a cloud account and on the network: one device, live values, cloud history.

The cloud account and the meter are the simulator's fakes over real HTTP on 127.0.0.1; the flows,
the entry and its pollers are the integration's own, nothing mocked.
"""

from __future__ import annotations

import json

# Imported before a test freezes the clock (see test_cloud_diagnostics.py): mashumaro on Home
# Assistant 2025.4 cannot compile the diagnostics download's dataclasses under a frozen clock.
import aiohasupervisor  # noqa: F401
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_SSDP, SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResult, FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.service_info.ssdp import SsdpServiceInfo
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.meter_hub.const import CONF_LOCAL_METERS, CONF_SCAN_INTERVAL, DOMAIN
from simulator.iammeter import VENDOR_EXAMPLE_LOGIN, FakeIamMeterCloud, Phase
from simulator.iammeter_local import FakeIamMeter

from .conftest import StartMeter, async_poll, async_setup_cloud, meter_device

# The vendor example account's single-phase meter.
SN = "DA2BED94"


async def _submit_host(hass: HomeAssistant, host: str) -> FlowResult:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "local"}
    )
    return await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_HOST: host})


def _entity_id(hass: HomeAssistant, key: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{SN}_{key}")
    assert entity_id is not None, key
    return entity_id


def _state(hass: HomeAssistant, key: str) -> str:
    state = hass.states.get(_entity_id(hass, key))
    assert state is not None, key
    return state.state


async def _meter_ahead_of_the_cloud(
    hass: HomeAssistant,
    start_meter: StartMeter,
    freezer: FrozenDateTimeFactory,
    ahead_kwh: float = 0.25,
) -> FakeIamMeter:
    """The account's meter on the network: its counter ``ahead_kwh`` past the cloud's.

    A minute passes first: the counter guard takes a rise only as fast as time allows.
    """
    freezer.tick(60)
    fake = await start_meter("WEM3080", serial=SN)
    fake.imported = [float(_state(hass, "energy_import_kwh")) + ahead_kwh]
    fake.power = [2345.0]
    return fake


def _assert_one_device_one_set(hass: HomeAssistant, account_id: str) -> None:
    """The meter is one device, of the cloud entry only, and its entities are the entry's."""
    assert [entry.entry_id for entry in hass.config_entries.async_entries(DOMAIN)] == [account_id]
    device = meter_device(hass, SN)
    assert device is not None
    assert set(device.config_entries) == {account_id}
    entities = er.async_entries_for_device(er.async_get(hass), device.id)
    assert entities
    assert {entity.config_entry_id for entity in entities} == {account_id}
    assert len({entity.unique_id for entity in entities}) == len(entities)


async def test_link_by_address(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    start_meter: StartMeter,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The address of a meter of the account links it: live values on the account's entities."""
    account = await async_setup_cloud(hass, cloud)
    fake = await _meter_ahead_of_the_cloud(hass, start_meter, freezer)
    result = await _submit_host(hass, fake.host)
    assert result["step_id"] == "iammeter_link_confirm"
    assert result["description_placeholders"] == {
        "serial": SN,
        "host": fake.host,
        "account": account.title,
    }
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "iammeter_linked"
    await hass.async_block_till_done(wait_background_tasks=True)
    assert account.options == {CONF_LOCAL_METERS: {SN: {CONF_HOST: fake.host}}}
    assert account.state is ConfigEntryState.LOADED
    _assert_one_device_one_set(hass, account.entry_id)
    assert _state(hass, "power_w") == "2345.0"
    assert _state(hass, "energy_import_kwh") == str(round(fake.imported[0], 3))

    # every second from the meter, as a local entry
    fake.power = [512.0]
    await async_poll(hass, freezer, 1)
    assert _state(hass, "power_w") == "512.0"

    # the same meter at a new address: the link follows, nothing is asked
    moved = await start_meter("WEM3080", serial=SN)
    moved.imported = list(fake.imported)
    result = await _submit_host(hass, moved.host)
    assert result["reason"] == "already_configured"
    assert account.options[CONF_LOCAL_METERS] == {SN: {CONF_HOST: moved.host}}


def _ssdp(host: str) -> SsdpServiceInfo:
    return SsdpServiceInfo(
        ssdp_usn="uuid:iammeter::upnp:rootdevice",
        ssdp_st="upnp:rootdevice",
        ssdp_location=f"http://{host}/description.xml",
        upnp={"manufacturer": "IAMMETER"},
    )


async def test_link_by_ssdp(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    start_meter: StartMeter,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A discovered meter of the account is offered as a link, not as a second device."""
    account = await async_setup_cloud(hass, cloud)
    fake = await _meter_ahead_of_the_cloud(hass, start_meter, freezer)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_SSDP}, data=_ssdp(fake.host)
    )
    assert result["step_id"] == "iammeter_link_confirm"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["reason"] == "iammeter_linked"
    await hass.async_block_till_done(wait_background_tasks=True)
    assert account.options[CONF_LOCAL_METERS] == {SN: {CONF_HOST: fake.host}}
    _assert_one_device_one_set(hass, account.entry_id)
    assert _state(hass, "power_w") == "2345.0"

    # announced again: nothing to ask
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_SSDP}, data=_ssdp(fake.host)
    )
    assert result["reason"] == "already_configured"


async def test_options_set_and_clear_a_meters_address(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    start_meter: StartMeter,
    freezer: FrozenDateTimeFactory,
) -> None:
    account = await async_setup_cloud(hass, cloud)
    cloud_power = _state(hass, "power_w")
    fake = await _meter_ahead_of_the_cloud(hass, start_meter, freezer)
    other = await start_meter("WEM3080", serial="0THER001")

    async def set_address(host: str) -> FlowResult:
        result = await hass.config_entries.options.async_init(account.entry_id)
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {CONF_SCAN_INTERVAL: 5, "local_meter": SN}
        )
        assert result["step_id"] == "local_address"
        assert result["description_placeholders"] == {"serial": SN}
        return await hass.config_entries.options.async_configure(
            result["flow_id"], {CONF_HOST: host} if host else {}
        )

    result = await set_address(other.host)
    assert result["errors"] == {CONF_HOST: "iammeter_wrong_meter"}
    result = await set_address(fake.host)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done(wait_background_tasks=True)
    assert account.options == {
        CONF_SCAN_INTERVAL: 300,
        CONF_LOCAL_METERS: {SN: {CONF_HOST: fake.host}},
    }
    assert _state(hass, "power_w") == "2345.0"

    result = await set_address("")
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done(wait_background_tasks=True)
    assert account.options == {CONF_SCAN_INTERVAL: 300}
    assert _state(hass, "power_w") == cloud_power  # the cloud's again


async def test_a_local_entry_becomes_the_accounts_link(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, start_meter: StartMeter
) -> None:
    """The local entry of a meter of an account added later is retired; its entities stay."""
    fake = await start_meter("WEM3080", serial=SN)
    fake.password = "s3cret"
    result = await _submit_host(hass, fake.host)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_USERNAME: "admin", CONF_PASSWORD: "s3cret"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    power_entity = _entity_id(hass, "power_w")

    account = await async_setup_cloud(hass, cloud)
    assert account.options[CONF_LOCAL_METERS] == {
        SN: {CONF_HOST: fake.host, CONF_USERNAME: "admin", CONF_PASSWORD: "s3cret"}
    }
    _assert_one_device_one_set(hass, account.entry_id)
    assert _entity_id(hass, "power_w") == power_entity  # same entity id, so same statistics
    assert _state(hass, "power_w") == "1200.0"  # the meter's, read with its credentials


async def test_diagnostics_show_the_link(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    start_meter: StartMeter,
    hass_client: ClientSessionGenerator,
) -> None:
    fake = await start_meter("WEM3080", serial=SN)
    fake.password = "s3cret"
    account = await async_setup_cloud(
        hass,
        cloud,
        local_meters={SN: {CONF_HOST: fake.host, CONF_USERNAME: "admin", CONF_PASSWORD: "s3cret"}},
    )
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, account)
    assert "s3cret" not in json.dumps(diagnostics)
    (link,) = diagnostics["source"]["local_links"].values()
    assert link["source"] == "local"
    assert link["error"] is None
    assert link["last_local_reading"] is not None


async def test_a_restart_during_an_outage_keeps_the_counter(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    start_meter: StartMeter,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Restarted while the meter does not answer: the cloud's lower counter is no reset."""
    account = await async_setup_cloud(hass, cloud)
    fake = await _meter_ahead_of_the_cloud(hass, start_meter, freezer)
    hass.config_entries.async_update_entry(
        account, options={CONF_LOCAL_METERS: {SN: {CONF_HOST: fake.host}}}
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    live = _state(hass, "energy_import_kwh")
    fake.status = 500
    assert await hass.config_entries.async_reload(account.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    for _ in range(4):  # longer than a reset takes to be believed
        await async_poll(hass, freezer, 300)
        assert _state(hass, "energy_import_kwh") == live


async def test_live_values_are_no_new_reading_of_the_other_meters(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    start_meter: StartMeter,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A replaced meter of the account is believed after 3 cloud polls, live values or not."""
    fake = await start_meter("WEM3080", serial=SN)
    await async_setup_cloud(hass, cloud, local_meters={SN: {CONF_HOST: fake.host}})
    other = cloud.account(VENDOR_EXAMPLE_LOGIN[0]).meter("674B1E5D")
    other.phases = tuple(Phase(377, 1.0, 0.0) for _ in range(3))
    key = "energy_import_kwh"
    entity_id = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"674B1E5D_{key}")
    assert entity_id is not None
    before = float(hass.states.get(entity_id).state)  # type: ignore[union-attr]
    for _ in range(4):
        await async_poll(hass, freezer, 300)
    assert float(hass.states.get(entity_id).state) < before / 2  # type: ignore[union-attr]
