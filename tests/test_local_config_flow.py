"""Config flow of HomeWizard devices: manual host, zeroconf, reauth, reconfigure and options.

Every flow talks HTTP to a fake device on 127.0.0.1; nothing of the integration is mocked.
"""

from __future__ import annotations

from datetime import timedelta
from ipaddress import ip_address
from typing import Any
from unittest.mock import patch

import aiohttp
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import (
    SOURCE_IGNORE,
    SOURCE_REAUTH,
    SOURCE_USER,
    SOURCE_ZEROCONF,
    ConfigEntryState,
)
from homeassistant.const import CONF_HOST
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResult, FlowResultType
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import voluptuous as vol

from custom_components import meter_hub
from custom_components.meter_hub.const import (
    CONF_PRODUCT_TYPE,
    CONF_SCAN_INTERVAL,
    CONF_SERIAL,
    CONF_SOURCE,
    DOMAIN,
    SOURCE_LOCAL,
)
from simulator.homewizard import FakeHomeWizard

from .conftest import MakeFake, async_poll, async_setup_local, local_entry

P1_SERIAL = "5c2fafa1b2c3"
OTHER_SERIAL = "5c2faf999999"


async def _start_local_flow(hass: HomeAssistant) -> FlowResult:
    """Open the menu and pick "HomeWizard device"."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.MENU
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "local"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "local"
    assert result["errors"] == {}
    return result


def _assert_p1_entry(result: FlowResult, host: str) -> None:
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "P1 meter"
    assert result["data"] == {
        CONF_SOURCE: SOURCE_LOCAL,
        CONF_HOST: host,
        CONF_SERIAL: P1_SERIAL,
        CONF_PRODUCT_TYPE: "HWE-P1",
    }
    assert result["result"].unique_id == P1_SERIAL


def _zeroconf(
    address: str = "127.0.0.1", port: int | None = 80, **properties: str
) -> ZeroconfServiceInfo:
    """What Home Assistant's zeroconf hands the flow for a ``_hwenergy._tcp`` service."""
    props = {
        "api_enabled": "1",
        "path": "/api/v1",
        "product_name": "P1 meter",
        "product_type": "HWE-P1",
        "serial": P1_SERIAL,
    }
    props.update(properties)
    return ZeroconfServiceInfo(
        ip_address=ip_address(address),
        ip_addresses=[ip_address(address)],
        port=port,
        hostname=f"p1meter-{P1_SERIAL[-6:]}.local.",
        type="_hwenergy._tcp.local.",
        name=f"p1meter-{P1_SERIAL[-6:]}._hwenergy._tcp.local.",
        properties={key: value for key, value in props.items() if value},
    )


def _fake_port(fake: FakeHomeWizard) -> int:
    return int(fake.host.rpartition(":")[2])


# --- user → local -------------------------------------------------------------------------------


async def test_user_step_is_a_menu_of_both_sources(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "user"
    assert result["menu_options"] == ["cloud", "local"]


async def test_local_probes_the_device_and_creates_the_entry(
    hass: HomeAssistant, homewizard: FakeHomeWizard
) -> None:
    result = await _start_local_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: f" http://{homewizard.host}/ "}
    )
    _assert_p1_entry(result, homewizard.host)
    # Both endpoints were read before the entry existed.
    assert homewizard.request_count["/api"] >= 1
    assert homewizard.request_count["/api/v1/data"] >= 1
    await hass.async_block_till_done()
    assert result["result"].state is ConfigEntryState.LOADED


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        pytest.param({"stopped": True}, "cannot_connect", id="unreachable"),
        pytest.param({"status": 500}, "cannot_connect", id="http-500"),
        pytest.param({"api_enabled": False}, "api_not_enabled", id="api-off"),
        pytest.param({"body": b"<html>router login</html>"}, "not_homewizard", id="not-json"),
        pytest.param({"device": {"api_version": "v2"}}, "not_homewizard", id="api-v2"),
        pytest.param({"device": {"serial": None}}, "not_homewizard", id="no-serial"),
        pytest.param({"data_list": True}, "not_homewizard", id="data-not-an-object"),
    ],
)
async def test_local_error_then_recovery(
    hass: HomeAssistant, homewizard: FakeHomeWizard, fault: dict[str, Any], error: str
) -> None:
    """Each fault gives its error on the form; once it is gone, the same form creates the entry."""
    host = homewizard.host
    port = _fake_port(homewizard)
    if fault.get("stopped"):
        await homewizard.stop()
    if "status" in fault:
        homewizard.status = fault["status"]
    if "api_enabled" in fault:
        homewizard.api_enabled = fault["api_enabled"]
    if "body" in fault:
        homewizard.body = fault["body"]
    saved_device = dict(homewizard.device)
    saved_data = homewizard.data
    for key, value in fault.get("device", {}).items():
        homewizard.device[key] = value
    if fault.get("data_list"):
        homewizard.data = [saved_data]  # type: ignore[assignment]

    result = await _start_local_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_HOST: host})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "local"
    assert result["errors"] == {"base": error}
    assert hass.config_entries.async_entries(DOMAIN) == []

    # recovery: the device is fixed, the user submits again
    homewizard.status = None
    homewizard.api_enabled = True
    homewizard.body = None
    homewizard.device = saved_device
    homewizard.data = saved_data
    if fault.get("stopped"):
        await homewizard.start(port)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_HOST: host})
    _assert_p1_entry(result, host)


async def test_local_unexpected_error_is_unknown(
    hass: HomeAssistant, homewizard: FakeHomeWizard, caplog: pytest.LogCaptureFixture
) -> None:
    """An error nobody foresaw shows "unknown" and logs it; the flow stays usable."""
    result = await _start_local_flow(hass)
    with patch.object(aiohttp.ClientSession, "get", side_effect=RuntimeError("library bug")):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_HOST: homewizard.host}
        )
    assert result["errors"] == {"base": "unknown"}
    assert "Unexpected error while probing" in caplog.text
    assert "library bug" in caplog.text

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: homewizard.host}
    )
    _assert_p1_entry(result, homewizard.host)


@pytest.mark.parametrize(
    "template",
    [
        "http://{host}/api/v1/data",
        "http://user:secret@{host}",
        "https://{host}",
        "ftp://{host}",
        "{host}/api",
        "{host}?x=1",
        "",
        "   ",
        "[::1",
        "{host}:99999",
        "999.1.1.1",
        "fe80::1%eth0",
    ],
)
async def test_local_invalid_host_is_refused_and_never_requested(
    hass: HomeAssistant, homewizard: FakeHomeWizard, template: str
) -> None:
    result = await _start_local_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: template.format(host=homewizard.host)}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_host"}
    assert sum(homewizard.request_count.values()) == 0

    # the user corrects the address
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: homewizard.host}
    )
    _assert_p1_entry(result, homewizard.host)


async def test_local_same_device_again_aborts_and_updates_host(
    hass: HomeAssistant, homewizard: FakeHomeWizard
) -> None:
    entry = local_entry(homewizard)
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(entry, data={**entry.data, CONF_HOST: "192.0.2.7"})

    result = await _start_local_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: homewizard.host}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_HOST] == homewizard.host
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1


@pytest.mark.parametrize("source", [SOURCE_USER, SOURCE_ZEROCONF])
async def test_loaded_entry_moved_to_a_new_address_is_reloaded_once(
    hass: HomeAssistant,
    homewizard: FakeHomeWizard,
    make_fake: MakeFake,
    caplog: pytest.LogCaptureFixture,
    source: str,
) -> None:
    """Its update listener reloads it; the flow must not reload it a second time (reported by
    Home Assistant since 2026.6, refused from 2026.12). The entry's setup lock is held during
    the flow, so the listener's reload cannot start at once and the entry is still loaded when
    the flow ends: the outcome must not depend on that timing."""
    entry = await async_setup_local(hass, homewizard)
    moved = await make_fake(serial=P1_SERIAL)
    with patch(
        "custom_components.meter_hub.async_setup_entry", wraps=meter_hub.async_setup_entry
    ) as setup:
        await entry.setup_lock.acquire()
        if source == SOURCE_USER:
            result = await _start_local_flow(hass)
            result = await hass.config_entries.flow.async_configure(
                result["flow_id"], {CONF_HOST: moved.host}
            )
        else:
            result = await hass.config_entries.flow.async_init(
                DOMAIN, context={"source": source}, data=_zeroconf(port=_fake_port(moved))
            )
        assert entry.state is ConfigEntryState.LOADED
        entry.setup_lock.release()
        await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_HOST] == moved.host
    assert entry.state is ConfigEntryState.LOADED
    assert setup.call_count == 1
    assert "update listener" not in caplog.text


async def test_local_two_devices_make_two_entries(
    hass: HomeAssistant, homewizard: FakeHomeWizard, make_fake: MakeFake
) -> None:
    socket = await make_fake("HWE-SKT")
    for fake in (homewizard, socket):
        result = await _start_local_flow(hass)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_HOST: fake.host}
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
    assert sorted(e.unique_id for e in hass.config_entries.async_entries(DOMAIN)) == sorted(
        [P1_SERIAL, socket.device["serial"]]
    )


# --- zeroconf -----------------------------------------------------------------------------------


async def test_zeroconf_confirm_names_product_and_serial(
    hass: HomeAssistant, homewizard: FakeHomeWizard
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_ZEROCONF},
        data=_zeroconf(port=_fake_port(homewizard)),
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "discovery_confirm"
    assert result["description_placeholders"] == {
        "product_name": "P1 Meter",
        "product_type": "HWE-P1",
        "serial": P1_SERIAL,
        "host": homewizard.host,
    }
    (progress,) = hass.config_entries.flow.async_progress()
    assert progress["context"]["title_placeholders"] == {"name": "P1 Meter", "serial": P1_SERIAL}
    assert progress["context"]["unique_id"] == P1_SERIAL
    # nothing is requested before the user confirms
    assert sum(homewizard.request_count.values()) == 0

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    _assert_p1_entry(result, homewizard.host)


async def test_zeroconf_confirm_with_api_off_then_on(
    hass: HomeAssistant, homewizard: FakeHomeWizard
) -> None:
    homewizard.api_enabled = False
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_ZEROCONF},
        data=_zeroconf(port=_fake_port(homewizard), api_enabled="0"),
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "discovery_confirm"
    assert result["errors"] == {"base": "api_not_enabled"}

    homewizard.api_enabled = True
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    _assert_p1_entry(result, homewizard.host)


async def test_zeroconf_confirm_refuses_another_device_at_the_address(
    hass: HomeAssistant, homewizard: FakeHomeWizard
) -> None:
    """The address now answers as another device: nothing is created under the wrong serial."""
    homewizard.device["serial"] = OTHER_SERIAL
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=_zeroconf(port=_fake_port(homewizard))
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_device"
    assert result["description_placeholders"] == {"serial": OTHER_SERIAL}
    assert hass.config_entries.async_entries(DOMAIN) == []


@pytest.mark.parametrize("missing", ["serial", "product_type"])
async def test_zeroconf_without_identity_aborts(hass: HomeAssistant, missing: str) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=_zeroconf(**{missing: ""})
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "invalid_discovery_parameters"


@pytest.mark.parametrize(
    ("address", "port", "host"),
    [
        ("192.0.2.10", 80, "192.0.2.10"),
        ("192.0.2.10", None, "192.0.2.10"),
        ("192.0.2.10", 8080, "192.0.2.10:8080"),
        ("2001:db8::10", 80, "[2001:db8::10]"),
        ("2001:db8::10", 8080, "[2001:db8::10]:8080"),
    ],
)
async def test_zeroconf_host_from_the_announcement(
    hass: HomeAssistant, address: str, port: int | None, host: str
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=_zeroconf(address, port)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["description_placeholders"]["host"] == host


# A known serial announced at a new address (issue 13, item 9): the serial is in the device's own
# mDNS record, anyone can announce it. The entry moves only when the new address proves to be
# the device, with a plausible reading.


def _watch_reloads(hass: HomeAssistant) -> list[str]:
    """The entry ids Home Assistant is asked to reload from now on."""
    reloads: list[str] = []
    schedule = hass.config_entries.async_schedule_reload

    def spy(entry_id: str) -> None:
        reloads.append(entry_id)
        schedule(entry_id)

    hass.config_entries.async_schedule_reload = spy  # type: ignore[method-assign]
    return reloads


async def test_zeroconf_moves_a_known_device_to_a_proven_address(
    hass: HomeAssistant, homewizard: FakeHomeWizard, make_fake: MakeFake
) -> None:
    entry = await async_setup_local(hass, homewizard)
    moved = await make_fake("HWE-P1")  # the same device at a new address (a new DHCP lease)
    await homewizard.stop()
    reloads = _watch_reloads(hass)

    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=_zeroconf(port=_fake_port(moved))
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_HOST] == moved.host
    await hass.async_block_till_done()
    # one reload (by the entry's update listener), not one from the flow as well
    assert reloads == [entry.entry_id]
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.coordinator.client.host == moved.host
    assert hass.states.get("sensor.p1_meter_energy_import").state == "15234.567"


async def test_zeroconf_moves_an_entry_that_waits_to_retry(
    hass: HomeAssistant, homewizard: FakeHomeWizard, make_fake: MakeFake
) -> None:
    moved = await make_fake("HWE-P1")
    await homewizard.stop()
    entry = local_entry(homewizard)
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY

    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=_zeroconf(port=_fake_port(moved))
    )
    assert result["reason"] == "already_configured"
    await hass.async_block_till_done()
    assert entry.data[CONF_HOST] == moved.host
    assert entry.state is ConfigEntryState.LOADED


async def _spoof_wrong_serial(make_fake: MakeFake) -> FakeHomeWizard:
    return await make_fake("HWE-P1", serial=OTHER_SERIAL)


async def _spoof_no_answer(make_fake: MakeFake) -> FakeHomeWizard:
    fake = await make_fake("HWE-P1")
    await fake.stop()
    return fake


async def _spoof_not_a_measurement(make_fake: MakeFake) -> FakeHomeWizard:
    fake = await make_fake("HWE-P1")
    fake.data = "ok"  # type: ignore[assignment]
    return fake


async def _spoof_empty_measurement(make_fake: MakeFake) -> FakeHomeWizard:
    fake = await make_fake("HWE-P1")
    fake.data = {}
    return fake


async def _spoof_lower_counter(make_fake: MakeFake) -> FakeHomeWizard:
    fake = await make_fake("HWE-P1")
    fake.data["total_power_import_kwh"] = 1.5
    fake.data["active_power_w"] = 4321
    return fake


async def _spoof_other_product(make_fake: MakeFake) -> FakeHomeWizard:
    return await make_fake("HWE-SKT", serial=P1_SERIAL)


@pytest.mark.parametrize(
    "spoof",
    [
        _spoof_wrong_serial,
        _spoof_no_answer,
        _spoof_not_a_measurement,
        _spoof_empty_measurement,
        _spoof_lower_counter,
        _spoof_other_product,
    ],
    ids=[
        "wrong-serial",
        "no-answer",
        "not-a-measurement",
        "empty-measurement",
        "lower-counter",
        "other-product",
    ],
)
async def test_zeroconf_spoof_of_a_known_serial_moves_nothing(
    hass: HomeAssistant,
    homewizard: FakeHomeWizard,
    make_fake: MakeFake,
    freezer: FrozenDateTimeFactory,
    spoof: Any,
) -> None:
    entry = await async_setup_local(hass, homewizard)
    states = {state.entity_id: state.state for state in hass.states.async_all("sensor")}
    spoofer: FakeHomeWizard = await spoof(make_fake)
    reloads = _watch_reloads(hass)

    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=_zeroconf(port=_fake_port(spoofer))
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "unverified_address"
    assert result["description_placeholders"] == {"name": "P1 meter", "host": spoofer.host}
    await async_poll(hass, freezer)
    assert entry.data[CONF_HOST] == homewizard.host
    assert reloads == []
    assert entry.state is ConfigEntryState.LOADED
    assert {state.entity_id: state.state for state in hass.states.async_all("sensor")} == states


async def test_zeroconf_ignored_device_is_not_probed(
    hass: HomeAssistant, homewizard: FakeHomeWizard
) -> None:
    MockConfigEntry(domain=DOMAIN, unique_id=P1_SERIAL, source=SOURCE_IGNORE).add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=_zeroconf(port=_fake_port(homewizard))
    )
    assert result["reason"] == "already_configured"
    assert sum(homewizard.request_count.values()) == 0


async def test_zeroconf_at_its_address_retries_an_entry_waiting_for_it(
    hass: HomeAssistant, homewizard: FakeHomeWizard
) -> None:
    homewizard.status = 500
    entry = local_entry(homewizard)
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    homewizard.status = None
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=_zeroconf(port=_fake_port(homewizard))
    )
    assert result["reason"] == "already_configured"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED


async def test_zeroconf_known_device_at_its_address_changes_nothing(
    hass: HomeAssistant, homewizard: FakeHomeWizard
) -> None:
    entry = await async_setup_local(hass, homewizard)
    reloads = _watch_reloads(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=_zeroconf(port=_fake_port(homewizard))
    )
    assert result["reason"] == "already_configured"
    assert reloads == []
    assert entry.data[CONF_HOST] == homewizard.host


async def test_zeroconf_ipv6_with_port_is_shown_in_brackets(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=_zeroconf("2001:db8::10", 8080)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["description_placeholders"]["host"] == "[2001:db8::10]:8080"


async def test_zeroconf_twice_for_one_device_shows_one_flow(hass: HomeAssistant) -> None:
    await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=_zeroconf("192.0.2.10")
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=_zeroconf("192.0.2.10")
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_in_progress"


# --- reconfigure --------------------------------------------------------------------------------


async def test_reconfigure_changes_the_host(
    hass: HomeAssistant, homewizard: FakeHomeWizard, make_fake: MakeFake
) -> None:
    entry = await async_setup_local(hass, homewizard)
    old_host = homewizard.host
    # the device moved to a new address (a new DHCP lease): same serial, another port
    moved = await make_fake("HWE-P1")
    await homewizard.stop()

    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure_local"
    assert result["description_placeholders"] == {"name": "P1 meter"}
    schema_keys = {str(key): key for key in result["data_schema"].schema}
    assert schema_keys[CONF_HOST].description == {"suggested_value": old_host}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: moved.host}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_HOST] == moved.host
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get("sensor.p1_meter_energy_import").state == "15234.567"


async def test_reconfigure_error_then_recovery(
    hass: HomeAssistant, homewizard: FakeHomeWizard
) -> None:
    entry = await async_setup_local(hass, homewizard)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "http://192.0.2.1/path"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_host"}
    homewizard.api_enabled = False
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: homewizard.host}
    )
    assert result["errors"] == {"base": "api_not_enabled"}
    homewizard.api_enabled = True
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: homewizard.host}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"


async def test_reconfigure_refuses_another_device(
    hass: HomeAssistant, homewizard: FakeHomeWizard, make_fake: MakeFake
) -> None:
    entry = await async_setup_local(hass, homewizard)
    socket = await make_fake("HWE-SKT")
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: socket.host}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_device"
    assert result["description_placeholders"] == {"serial": socket.device["serial"]}
    assert entry.data[CONF_HOST] == homewizard.host
    assert entry.unique_id == P1_SERIAL


# --- reauth: the local API was switched off -----------------------------------------------------


def _reauth_flows(hass: HomeAssistant, entry: MockConfigEntry) -> list[Any]:
    return [
        flow
        for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if flow["context"]["source"] == SOURCE_REAUTH
        and flow["context"]["entry_id"] == entry.entry_id
    ]


async def test_api_switched_off_starts_reauth_and_enabling_it_finishes(
    hass: HomeAssistant, homewizard: FakeHomeWizard, freezer: FrozenDateTimeFactory
) -> None:
    entry = await async_setup_local(hass, homewizard)
    assert _reauth_flows(hass, entry) == []

    homewizard.api_enabled = False
    await async_poll(hass, freezer)
    await async_poll(hass, freezer)
    assert hass.states.get("sensor.p1_meter_energy_import").state == "unavailable"
    (flow,) = _reauth_flows(hass, entry)  # one flow, however many polls fail
    assert flow["step_id"] == "reauth_enable_api"

    result = await hass.config_entries.flow.async_configure(flow["flow_id"])
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reauth_enable_api"
    assert result["description_placeholders"] == {"name": "P1 meter", "host": homewizard.host}

    # submitted while the API is still off: the form says so
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "api_not_enabled"}

    homewizard.api_enabled = True
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_enable_api_successful"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get("sensor.p1_meter_energy_import").state == "15234.567"


async def test_reauth_ends_by_itself_when_the_api_is_back_on(
    hass: HomeAssistant, homewizard: FakeHomeWizard, freezer: FrozenDateTimeFactory
) -> None:
    entry = await async_setup_local(hass, homewizard)
    homewizard.api_enabled = False
    await async_poll(hass, freezer)
    assert len(_reauth_flows(hass, entry)) == 1

    homewizard.api_enabled = True
    await async_poll(hass, freezer)
    assert hass.states.get("sensor.p1_meter_energy_import").state == "15234.567"
    assert _reauth_flows(hass, entry) == []

    # switched off again later: a new reauth flow
    homewizard.api_enabled = False
    await async_poll(hass, freezer)
    assert len(_reauth_flows(hass, entry)) == 1


async def test_api_off_at_startup_retries_and_asks_to_enable_it(
    hass: HomeAssistant, homewizard: FakeHomeWizard
) -> None:
    homewizard.api_enabled = False
    entry = local_entry(homewizard)
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    await hass.async_block_till_done()
    (flow,) = _reauth_flows(hass, entry)

    homewizard.api_enabled = True
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_enable_api_successful"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED


async def test_reauth_refuses_another_device_at_the_address(
    hass: HomeAssistant, homewizard: FakeHomeWizard, freezer: FrozenDateTimeFactory
) -> None:
    entry = await async_setup_local(hass, homewizard)
    homewizard.api_enabled = False
    await async_poll(hass, freezer)
    (flow,) = _reauth_flows(hass, entry)

    homewizard.api_enabled = True
    homewizard.device["serial"] = OTHER_SERIAL
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_device"
    assert result["description_placeholders"] == {"serial": OTHER_SERIAL}


# --- options: the polling interval --------------------------------------------------------------


async def test_options_change_the_poll_interval(
    hass: HomeAssistant, homewizard: FakeHomeWizard, freezer: FrozenDateTimeFactory
) -> None:
    entry = await async_setup_local(hass, homewizard)
    assert entry.runtime_data.coordinator.update_interval == timedelta(seconds=5)

    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"
    (key,) = result["data_schema"].schema
    assert str(key) == CONF_SCAN_INTERVAL
    assert key.default() == 5
    selector = result["data_schema"].schema[key].config
    assert (selector["min"], selector["max"], selector["unit_of_measurement"]) == (1, 60, "s")

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_SCAN_INTERVAL: 1}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {CONF_SCAN_INTERVAL: 1}
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.coordinator.update_interval == timedelta(seconds=1)

    # the new pace: one poll per second
    before = homewizard.request_count["/api/v1/data"]
    for _ in range(3):
        await async_poll(hass, freezer, 1)
    assert homewizard.request_count["/api/v1/data"] == before + 3

    # the form shows the current value next time
    result = await hass.config_entries.options.async_init(entry.entry_id)
    (key,) = result["data_schema"].schema
    assert key.default() == 1


@pytest.mark.parametrize(("seconds", "valid"), [(0, False), (1, True), (60, True), (61, False)])
async def test_options_interval_range(
    hass: HomeAssistant, homewizard: FakeHomeWizard, seconds: int, valid: bool
) -> None:
    entry = await async_setup_local(hass, homewizard)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    if valid:
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {CONF_SCAN_INTERVAL: seconds}
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert entry.options[CONF_SCAN_INTERVAL] == seconds
        await hass.async_block_till_done()  # the reload for the new interval
    else:
        with pytest.raises(vol.Invalid):
            await hass.config_entries.options.async_configure(
                result["flow_id"], {CONF_SCAN_INTERVAL: seconds}
            )
        assert entry.options == {}
