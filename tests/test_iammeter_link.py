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
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.meter_hub.compat import device_config_entry_ids
from custom_components.meter_hub.const import (
    CONF_LOCAL_METERS,
    CONF_NET_METERING,
    CONF_SCAN_INTERVAL,
    CONF_SERIAL,
    CONF_SOURCE,
    CONF_VENDOR,
    DOMAIN,
    SOURCE_LOCAL,
    VENDOR_IAMMETER,
)
from simulator.iammeter import VENDOR_EXAMPLE_LOGIN, FakeIamMeterCloud, Phase
from simulator.iammeter_local import FakeIamMeter

from .conftest import StartMeter, async_poll, async_setup_cloud, cloud_entry, meter_device
from .test_iammeter_local_flow import _ssdp, _state as local_state, _submit_host

# The vendor example account's single-phase meter.
SN = "DA2BED94"


def _entity_id(hass: HomeAssistant, key: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{SN}_{key}")
    assert entity_id is not None, key
    return entity_id


def _state(hass: HomeAssistant, key: str) -> str:
    return local_state(hass, SN, key)


async def _account_and_meter(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    start_meter: StartMeter,
    freezer: FrozenDateTimeFactory,
) -> tuple[MockConfigEntry, FakeIamMeter]:
    """The account's entry, and its meter on the network, 0.25 kWh past the cloud's counter.

    A minute passes between: the counter guard takes a rise only as fast as time allows.
    """
    account = await async_setup_cloud(hass, cloud)
    freezer.tick(60)
    fake = await start_meter("WEM3080", serial=SN)
    fake.imported = [float(_state(hass, "energy_import_kwh")) + 0.25]
    fake.power = [2345.0]
    return account, fake


def _assert_one_device_one_set(hass: HomeAssistant, account_id: str) -> None:
    """The meter is one device, of the cloud entry only, and its entities are the entry's."""
    assert [entry.entry_id for entry in hass.config_entries.async_entries(DOMAIN)] == [account_id]
    device = meter_device(hass, SN)
    assert device is not None
    assert device_config_entry_ids(hass, device.id) == {account_id}
    entities = er.async_entries_for_device(er.async_get(hass), device.id)
    assert entities
    assert {entity.config_entry_id for entity in entities} == {account_id}
    assert len({entity.unique_id for entity in entities}) == len(entities)


async def _start(hass: HomeAssistant, source: str, host: str) -> FlowResult:
    """The meter at ``host`` entered by the user, or announced over SSDP."""
    if source == SOURCE_SSDP:
        return await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": SOURCE_SSDP}, data=_ssdp(host)
        )
    return await _submit_host(hass, host)


@pytest.mark.parametrize("source", [SOURCE_USER, SOURCE_SSDP])
async def test_link_by_address_or_discovery(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    start_meter: StartMeter,
    freezer: FrozenDateTimeFactory,
    source: str,
) -> None:
    """A meter of the account is offered as a link: live values on the account's entities."""
    account, fake = await _account_and_meter(hass, cloud, start_meter, freezer)
    result = await _start(hass, source, fake.host)
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
    result = await _start(hass, source, moved.host)
    assert result["reason"] == "already_configured"
    assert account.options[CONF_LOCAL_METERS] == {SN: {CONF_HOST: moved.host}}


async def test_options_set_and_clear_a_meters_address(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    start_meter: StartMeter,
    freezer: FrozenDateTimeFactory,
) -> None:
    account, fake = await _account_and_meter(hass, cloud, start_meter, freezer)
    cloud_power = _state(hass, "power_w")  # not linked yet
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
    result = await set_address("not a host!")
    assert result["errors"] == {CONF_HOST: "invalid_host"}
    fake.password = "s3cret"  # it asks for its Admin Security password
    result = await set_address(fake.host)
    assert result["errors"] == {"base": "iammeter_link_auth"}
    fake.password = None
    await other.stop()
    result = await set_address(other.host)
    assert result["errors"] == {"base": "cannot_connect"}
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
    account, fake = await _account_and_meter(hass, cloud, start_meter, freezer)
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


async def test_the_cloud_down_leaves_the_linked_meter_live(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    start_meter: StartMeter,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The cloud's values too old: the other meters (674B1E5D) are unavailable, the linked one
    is live."""
    fake = await start_meter("WEM3080", serial=SN)
    await async_setup_cloud(hass, cloud, local_meters={SN: {CONF_HOST: fake.host}})
    cloud.inject_fault(4, endpoint="metersdata", status=500)
    for _ in range(4):  # 20 minutes: the cloud's last reading is too old after 15
        await async_poll(hass, freezer, 300)
    assert local_state(hass, "674B1E5D", "power_w") == "unavailable"
    fake.power = [777.0]
    await async_poll(hass, freezer, 1)
    assert _state(hass, "power_w") == "777.0"

    fake.status = 500  # the meter too: nothing is current
    await async_poll(hass, freezer, 1)
    assert _state(hass, "power_w") == "unavailable"
    fake.status = None
    await async_poll(hass, freezer, 300)  # the cloud is back
    assert local_state(hass, "674B1E5D", "power_w") != "unavailable"
    assert _state(hass, "power_w") == "777.0"


async def test_both_entries_at_a_start_become_one(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, start_meter: StartMeter
) -> None:
    """Home Assistant starts a local entry of the meter and its cloud account side by side."""
    fake = await start_meter("WEM3080", serial=SN)
    local = MockConfigEntry(
        domain=DOMAIN,
        title="IAMMETER WEM3080",
        unique_id=SN,
        data={
            CONF_SOURCE: SOURCE_LOCAL,
            CONF_VENDOR: VENDOR_IAMMETER,
            CONF_HOST: fake.host,
            CONF_SERIAL: SN,
            CONF_NET_METERING: False,
        },
        version=2,
    )
    local.add_to_hass(hass)
    account = cloud_entry(cloud)
    account.add_to_hass(hass)
    assert await async_setup_component(hass, DOMAIN, {})
    await hass.async_block_till_done(wait_background_tasks=True)
    assert account.state is ConfigEntryState.LOADED
    assert account.options[CONF_LOCAL_METERS] == {SN: {CONF_HOST: fake.host}}
    _assert_one_device_one_set(hass, account.entry_id)
    assert _state(hass, "power_w") == "1200.0"
