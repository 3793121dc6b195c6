"""IAMMETER meters on the local network: the config flow, the entry and its sensors.

Every flow and poll talks HTTP to a fake meter on 127.0.0.1; nothing of the integration is mocked.
"""

from __future__ import annotations

from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import (
    SOURCE_IGNORE,
    SOURCE_RECONFIGURE,
    SOURCE_SSDP,
    SOURCE_USER,
    ConfigEntryState,
)
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_USERNAME, Platform
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResult, FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.service_info.ssdp import SsdpServiceInfo
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, snapshot_platform
from syrupy.assertion import SnapshotAssertion

from custom_components.meter_hub.const import (
    CONF_NET_METERING,
    CONF_SCAN_INTERVAL,
    CONF_SERIAL,
    CONF_SOURCE,
    CONF_VENDOR,
    DOMAIN,
    SOURCE_LOCAL,
    VENDOR_IAMMETER,
)
from simulator.homewizard import FakeHomeWizard
from simulator.iammeter_local import FAILURES_BEFORE_429, FakeIamMeter

from .conftest import StartMeter, async_poll, meter_device


async def _submit_host(hass: HomeAssistant, host: str) -> FlowResult:
    """Open the menu, pick the local device step and enter ``host``."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "local"}
    )
    return await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_HOST: host})


def _state(hass: HomeAssistant, serial: str, key: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{serial}_{key}")
    assert entity_id is not None, key
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


async def _add(hass: HomeAssistant, fake: FakeIamMeter) -> FlowResult:
    result = await _submit_host(hass, fake.host)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    await hass.async_block_till_done()
    return result


@pytest.mark.parametrize(
    ("shape", "model", "import_kwh", "power_w"),
    [
        ("WEM3080", "WEM3080", "1523.456", "1200.0"),
        ("WEM3080-5", "Single-phase meter (WEM3080)", "1523.456", "1200.0"),
        ("WEM3080T", "WEM3080T", "3362.206", "1260.0"),
        ("WEM3080T-NEM", "WEM3080T", "2975.0", "1260.0"),
    ],
)
async def test_every_shape_through_the_flow(
    hass: HomeAssistant,
    start_meter: StartMeter,
    shape: str,
    model: str,
    import_kwh: str,
    power_w: str,
) -> None:
    """The address alone finds the IAMMETER meter; its entry reads it from the first poll."""
    fake = await start_meter(shape)
    result = await _add(hass, fake)
    assert result["data"] == {
        CONF_SOURCE: SOURCE_LOCAL,
        CONF_VENDOR: VENDOR_IAMMETER,
        CONF_HOST: fake.host,
        CONF_SERIAL: fake.serial,
        CONF_NET_METERING: shape == "WEM3080T-NEM",
    }
    assert result["result"].unique_id == fake.serial
    assert result["result"].state is ConfigEntryState.LOADED
    device = meter_device(hass, fake.serial)
    assert device is not None
    assert (device.manufacturer, device.model) == ("IAMMETER", model)
    assert _state(hass, fake.serial, "energy_import_kwh") == import_kwh
    assert _state(hass, fake.serial, "power_w") == power_w


async def test_live_values_follow_the_meter(
    hass: HomeAssistant, start_meter: StartMeter, freezer: FrozenDateTimeFactory
) -> None:
    """Polled every second by default: a change on the meter is the state a second later."""
    fake = await start_meter("WEM3080T-NEM")
    await _add(hass, fake)
    fake.power = [2500.0, 100.0, -50.0]
    await async_poll(hass, freezer, 1)
    assert _state(hass, fake.serial, "grid_power_w") == "2550.0"
    assert _state(hass, fake.serial, "power_l1_w") == "2500.0"


async def test_wem3162_without_serial_is_no_meter(
    hass: HomeAssistant, start_meter: StartMeter
) -> None:
    fake = await start_meter("WEM3162")
    result = await _submit_host(hass, fake.host)
    assert result["errors"] == {"base": "iammeter_no_serial"}


async def test_nothing_answers(hass: HomeAssistant, start_meter: StartMeter) -> None:
    fake = await start_meter()
    await fake.stop()
    result = await _submit_host(hass, fake.host)
    assert result["errors"] == {"base": "cannot_connect"}


async def test_not_ready_then_added(hass: HomeAssistant, start_meter: StartMeter) -> None:
    """A meter that has just started has no values: no entry until it has."""
    fake = await start_meter("WEM3080")
    fake.not_ready_polls = 1
    result = await _submit_host(hass, fake.host)
    assert result["errors"] == {"base": "iammeter_not_ready"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: fake.host}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_admin_security_credentials(hass: HomeAssistant, start_meter: StartMeter) -> None:
    """401: a credentials form; the wrong password is refused, the right one kept."""
    fake = await start_meter("WEM3080")
    fake.password = "s3cret"
    result = await _submit_host(hass, fake.host)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "iammeter_auth"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_USERNAME: "admin", CONF_PASSWORD: "wrong"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_USERNAME: "admin", CONF_PASSWORD: "s3cret"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_PASSWORD] == "s3cret"
    await hass.async_block_till_done()
    assert result["result"].state is ConfigEntryState.LOADED


async def test_429_is_obeyed(hass: HomeAssistant, start_meter: StartMeter) -> None:
    """After 429 the flow sends nothing until the meter's Retry-After has passed."""
    fake = await start_meter("WEM3080")
    fake.password = "s3cret"
    result = await _submit_host(hass, fake.host)
    for _ in range(FAILURES_BEFORE_429 - 1):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_USERNAME: "admin", CONF_PASSWORD: "wrong"}
        )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_USERNAME: "admin", CONF_PASSWORD: "wrong"}
    )
    assert result["errors"] == {"base": "iammeter_rate_limited"}
    sent = fake.request_count.total()
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_USERNAME: "admin", CONF_PASSWORD: "s3cret"}
    )
    assert result["errors"] == {"base": "iammeter_rate_limited"}
    assert fake.request_count.total() == sent


async def test_reauth_when_the_password_changes(
    hass: HomeAssistant, start_meter: StartMeter, freezer: FrozenDateTimeFactory
) -> None:
    fake = await start_meter("WEM3080")
    result = await _add(hass, fake)
    entry = result["result"]
    fake.password = "n3w"
    await async_poll(hass, freezer, 1)
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["step_id"] for flow in flows] == ["reauth_iammeter"]
    result = await hass.config_entries.flow.async_configure(
        flows[0]["flow_id"], {CONF_USERNAME: "admin", CONF_PASSWORD: "n3w"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.data[CONF_PASSWORD] == "n3w"
    assert entry.state is ConfigEntryState.LOADED


async def test_same_meter_again_moves_the_entry(
    hass: HomeAssistant, start_meter: StartMeter
) -> None:
    first = await start_meter("WEM3080")
    entry = (await _add(hass, first))["result"]
    moved = await start_meter("WEM3080")
    result = await _submit_host(hass, moved.host)
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_HOST] == moved.host


async def test_options_default_to_one_second(hass: HomeAssistant, start_meter: StartMeter) -> None:
    fake = await start_meter("WEM3080")
    entry = (await _add(hass, fake))["result"]
    result = await hass.config_entries.options.async_init(entry.entry_id)
    schema = result["data_schema"].schema
    assert {str(key): key.default() for key in schema} == {CONF_SCAN_INTERVAL: 1}


async def test_reconfigure_to_the_same_meter_only(
    hass: HomeAssistant, start_meter: StartMeter
) -> None:
    first = await start_meter("WEM3080")
    entry = (await _add(hass, first))["result"]
    other = await start_meter("WEM3080", serial="0THER000")
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
    )
    assert result["step_id"] == "reconfigure_iammeter"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: other.host}
    )
    assert result["reason"] == "wrong_device"
    moved = await start_meter("WEM3080")
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "http://x/y"}
    )
    assert result["errors"] == {"base": "invalid_host"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: moved.host}
    )
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_HOST] == moved.host


def _ssdp(host: str) -> SsdpServiceInfo:
    """What Home Assistant's SSDP hands the flow for an IAMMETER meter's announcement."""
    return SsdpServiceInfo(
        ssdp_usn="uuid:iammeter::upnp:rootdevice",
        ssdp_st="upnp:rootdevice",
        ssdp_location=f"http://{host}/description.xml",
        upnp={
            "manufacturer": "IAMMETER",
            "deviceType": "urn:schemas-micasaverde-com:service:EnergyMetering:1",
        },
    )


async def test_ssdp_discovery_is_confirmed_then_added(
    hass: HomeAssistant, start_meter: StartMeter
) -> None:
    fake = await start_meter("WEM3080T-NEM")
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_SSDP}, data=_ssdp(fake.host)
    )
    assert result["step_id"] == "iammeter_discovery_confirm"
    assert result["description_placeholders"] == {
        "model": "WEM3080T",
        "serial": fake.serial,
        "host": fake.host,
    }
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_HOST] == fake.host


async def test_ssdp_moves_a_known_meter_only_when_it_proves_to_be_it(
    hass: HomeAssistant, start_meter: StartMeter
) -> None:
    first = await start_meter("WEM3080")
    entry = (await _add(hass, first))["result"]
    spoof = await start_meter("WEM3080")
    spoof.imported[0] = 1.0  # its counter is below the meter's: not the meter
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_SSDP}, data=_ssdp(spoof.host)
    )
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_HOST] == first.host
    moved = await start_meter("WEM3080")
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_SSDP}, data=_ssdp(moved.host)
    )
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_HOST] == moved.host


@pytest.mark.parametrize("location", [None, "http://[bad/x"])
async def test_ssdp_without_a_usable_location(hass: HomeAssistant, location: str | None) -> None:
    info = _ssdp("127.0.0.1")
    info.ssdp_location = location
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_SSDP}, data=info
    )
    assert result["reason"] == "invalid_discovery_parameters"


async def test_ssdp_of_a_meter_not_readable_changes_nothing(
    hass: HomeAssistant, start_meter: StartMeter
) -> None:
    fake = await start_meter("WEM3080")
    fake.not_ready_polls = 1
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_SSDP}, data=_ssdp(fake.host)
    )
    assert result["reason"] == "cannot_connect"


async def test_reauth_where_something_else_answers(
    hass: HomeAssistant, start_meter: StartMeter, freezer: FrozenDateTimeFactory
) -> None:
    """The meter's address now serves another device: the form says it cannot connect."""
    fake = await start_meter("WEM3080")
    await _add(hass, fake)
    fake.password = "n3w"
    await async_poll(hass, freezer, 1)
    (flow,) = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    port = int(fake.host.rsplit(":", 1)[1])
    await fake.stop()
    other = FakeHomeWizard()
    await other.start(port)
    try:
        result = await hass.config_entries.flow.async_configure(
            flow["flow_id"], {CONF_USERNAME: "admin", CONF_PASSWORD: "n3w"}
        )
    finally:
        await other.stop()
    assert result["step_id"] == "reauth_iammeter"
    assert result["errors"] == {"base": "cannot_connect"}


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
@pytest.mark.parametrize("shape", ["WEM3080", "WEM3080-5", "WEM3080T", "WEM3080T-NEM"])
async def test_entities(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    start_meter: StartMeter,
    shape: str,
    snapshot: SnapshotAssertion,
) -> None:
    """Every sensor of each shape: registry entry and state."""
    fake = await start_meter(shape)
    with patch("custom_components.meter_hub.PLATFORMS", [Platform.SENSOR]):
        result = await _add(hass, fake)
    await snapshot_platform(hass, entity_registry, snapshot, result["result"].entry_id)


async def test_a_second_meter_is_added_next_to_the_first(
    hass: HomeAssistant, start_meter: StartMeter
) -> None:
    """Added by address, then announced: each meter gets its own entry."""
    await _add(hass, await start_meter("WEM3080"))
    second = await start_meter("WEM3080T", serial="0000SECOND")
    await _add(hass, second)
    third = await start_meter("WEM3080T-NEM", serial="0000THIRD0")
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_SSDP}, data=_ssdp(third.host)
    )
    assert result["step_id"] == "iammeter_discovery_confirm"
    assert len(hass.config_entries.async_entries(DOMAIN)) == 2


async def test_an_ignored_meter_entered_by_address_stays_ignored(
    hass: HomeAssistant, start_meter: StartMeter
) -> None:
    fake = await start_meter("WEM3080")
    MockConfigEntry(domain=DOMAIN, unique_id=fake.serial, source=SOURCE_IGNORE).add_to_hass(hass)
    result = await _submit_host(hass, fake.host)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
