"""Config flow of IAMMETER cloud accounts: sign-in, errors and recovery, reauth, reconfigure, options.

Every flow talks HTTP to the fake cloud on 127.0.0.1 (it enforces the vendor's limits); nothing
of the integration is mocked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
import logging
from typing import Any

import aiohttp
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResult, FlowResultType, InvalidData
from homeassistant.helpers import device_registry as dr
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.meter_hub.cloud_budget import BUDGET_KEY
from custom_components.meter_hub.cloud_coordinator import CloudCoordinator
from custom_components.meter_hub.const import (
    CONF_ACCOUNT_ID,
    CONF_REFRESH_TOKEN,
    CONF_SCAN_INTERVAL,
    CONF_SERVER,
    CONF_SOURCE,
    CONF_TOKEN,
    DEFAULT_SERVER,
    DOMAIN,
    SOURCE_CLOUD,
)
from custom_components.meter_hub.flow_cloud import InvalidServer, normalise_server
from simulator.iammeter import (
    DEMO_LOGIN,
    VENDOR_EXAMPLE_LOGIN,
    FakeAccount,
    FakeIamMeterCloud,
    FakeMeter,
    Phase,
    vendor_example_account,
)

from .conftest import async_poll, async_setup_cloud
from .fault_records import record_text

USERNAME, PASSWORD = VENDOR_EXAMPLE_LOGIN
VENDOR_SNS = ["3FE34ABE", "59C9AB8D", "674B1E5D", "B384789C", "DA2BED94"]


def calls(cloud: FakeIamMeterCloud, endpoint: str) -> int:
    return sum(call.endpoint == endpoint for call in cloud.calls)


def user_input(cloud: FakeIamMeterCloud, **changes: str) -> dict[str, str]:
    return {CONF_USERNAME: USERNAME, CONF_PASSWORD: PASSWORD, CONF_SERVER: cloud.url, **changes}


async def start_cloud_flow(hass: HomeAssistant) -> FlowResult:
    """Open the menu and pick "IAMMETER cloud account"."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["cloud", "local"]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "cloud"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "cloud"
    assert result["errors"] == {}
    return result


async def submit(hass: HomeAssistant, result: FlowResult, data: dict[str, Any]) -> FlowResult:
    """Submit a form; the fake cloud is plain http, so its confirmation step is confirmed too
    (the confirmation has tests of its own, which call ``async_configure`` directly)."""
    result = await hass.config_entries.flow.async_configure(result["flow_id"], data)
    if result.get("step_id") == "insecure_server":
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    return result


def suggested(result: FlowResult) -> dict[str, Any]:
    """The values the form suggests (what the user typed before, never the password)."""
    return {
        str(key): key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description and "suggested_value" in key.description
    }


def local_minute(moment: Any) -> str:
    return str(dt_util.as_local(moment).strftime("%Y-%m-%d %H:%M"))


def assert_error(result: FlowResult, error: str) -> None:
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}


@pytest.fixture
async def session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    """A client of the fake cloud from the same IP, outside Home Assistant."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session


# --- creating an entry --------------------------------------------------------------------------


async def test_one_entry_per_account_with_a_device_per_meter(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = await start_cloud_flow(hass)
    server_key = next(key for key in result["data_schema"].schema if key == CONF_SERVER)
    assert server_key.default() == DEFAULT_SERVER == "https://www.iammeter.com"

    result = await submit(hass, result, user_input(cloud, server=cloud.url + "/"))
    await hass.async_block_till_done(wait_background_tasks=True)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "IAMMETER account 2025"
    entry = result["result"]
    assert entry.unique_id == "2025"
    token = entry.data[CONF_TOKEN]
    assert len(token) == 32
    assert entry.data == {
        CONF_SOURCE: SOURCE_CLOUD,
        CONF_SERVER: cloud.url,
        CONF_USERNAME: USERNAME,
        CONF_PASSWORD: PASSWORD,
        CONF_ACCOUNT_ID: "2025",
        CONF_TOKEN: token,
        CONF_REFRESH_TOKEN: entry.data[CONF_REFRESH_TOKEN],
    }
    assert entry.state is ConfigEntryState.LOADED

    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    assert sorted(device.serial_number or "" for device in devices) == VENDOR_SNS
    assert {device.manufacturer for device in devices} == {"IAMMETER"}
    # the flow's own metersdata answer gives the first values: one login and one call in all
    assert (calls(cloud, "login"), calls(cloud, "metersdata")) == (1, 1)
    state = hass.states.get("sensor.iammeter_da2bed94_energy_import")
    assert state is not None
    assert float(state.state) > 14761
    # no secret in the log
    for secret in (PASSWORD, token, entry.data[CONF_REFRESH_TOKEN]):
        assert secret not in caplog.text


async def test_two_accounts_two_entries(hass: HomeAssistant, cloud: FakeIamMeterCloud) -> None:
    for login in (VENDOR_EXAMPLE_LOGIN, DEMO_LOGIN):
        result = await start_cloud_flow(hass)
        result = await submit(hass, result, user_input(cloud, username=login[0], password=login[1]))
        assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done(wait_background_tasks=True)
    entries = hass.config_entries.async_entries(DOMAIN)
    assert sorted(str(entry.unique_id) for entry in entries) == ["2025", "4242"]
    assert len(dr.async_get(hass).devices) == 5 + 4


@pytest.mark.parametrize(
    ("typed", "normalised"),
    [
        ("www.iammeter.com", "https://www.iammeter.com"),
        (" https://www.iammeter.com/ ", "https://www.iammeter.com"),
        ("http://10.0.0.5:8080", "http://10.0.0.5:8080"),
        ("HTTPS://Meter.Example.org", "https://meter.example.org"),
    ],
)
def test_server_is_normalised(typed: str, normalised: str) -> None:
    assert normalise_server(typed) == normalised


@pytest.mark.parametrize(
    "typed",
    [
        "ftp://www.iammeter.com",
        "https://www.iammeter.com/api/v1",
        "https://user@www.iammeter.com",
        "https://www.iammeter.com?token=1",
        "https://",
    ],
)
def test_bad_servers_are_refused(typed: str) -> None:
    with pytest.raises(InvalidServer):
        normalise_server(typed)


# --- errors, and recovery from each -------------------------------------------------------------


async def test_invalid_server_then_recovery(hass: HomeAssistant, cloud: FakeIamMeterCloud) -> None:
    result = await start_cloud_flow(hass)
    result = await submit(hass, result, user_input(cloud, server=cloud.url + "/api/v1"))
    assert_error(result, "invalid_server")
    assert cloud.calls == []
    assert suggested(result) == {CONF_USERNAME: USERNAME, CONF_SERVER: cloud.url + "/api/v1"}
    result = await submit(hass, result, user_input(cloud))
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_invalid_auth_then_recovery(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = await start_cloud_flow(hass)
    result = await submit(hass, result, user_input(cloud, password="wrong-passw0rd"))
    assert_error(result, "invalid_auth")
    assert CONF_PASSWORD not in suggested(result)
    result = await submit(hass, result, user_input(cloud))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert calls(cloud, "login") == 2
    assert "wrong-passw0rd" not in caplog.text
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 502},
        {"status": 200, "body": b"<html>maintenance</html>"},
        {"status": 200, "body": b'{"data": {"id": 2025}, "successful": true, "message": null}'},
    ],
    ids=["http-502", "not-json", "no-token"],
)
async def test_cannot_connect_then_recovery(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    caplog: pytest.LogCaptureFixture,
    fault: dict[str, Any],
) -> None:
    result = await start_cloud_flow(hass)
    cloud.inject_fault(endpoint="login", **fault)
    result = await submit(hass, result, user_input(cloud))
    assert_error(result, "cannot_connect")
    if fault["status"] == 200:
        assert "IAMMETER sign-in failed: " in caplog.text
    result = await submit(hass, result, user_input(cloud))
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_unreachable_server(hass: HomeAssistant, cloud: FakeIamMeterCloud) -> None:
    result = await start_cloud_flow(hass)
    result = await submit(hass, result, user_input(cloud, server="http://127.0.0.1:9"))
    assert_error(result, "cannot_connect")
    result = await submit(hass, result, user_input(cloud))
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_login_budget_says_when_signing_in_is_possible_again(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    """5 sign-ins an hour: the 6th is refused before it reaches the cloud."""
    first = dt_util.utcnow()
    result = await start_cloud_flow(hass)
    for n in range(5):
        freezer.tick(timedelta(minutes=1))
        result = await submit(hass, result, user_input(cloud, password=f"typo-{n}"))
        assert_error(result, "invalid_auth")
    result = await submit(hass, result, user_input(cloud))
    assert_error(result, "rate_limited")
    assert result["description_placeholders"] == {
        "retry_at": local_minute(first + timedelta(hours=1, minutes=1))
    }
    assert calls(cloud, "login") == 5
    assert not any(call.over_limit for call in cloud.calls)

    freezer.tick(timedelta(hours=1))
    result = await submit(hass, result, user_input(cloud))
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_cloud_that_answers_nothing_to_a_login(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    session: aiohttp.ClientSession,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Another client on this IP used the logins up: the cloud answers nothing; no login is
    tried for a day (the cloud does not say which limit it was)."""
    for _ in range(5):
        async with session.post(
            f"{cloud.url}/api/v1/user/login", json={"userName": "x", "password": "y"}
        ) as response:
            assert response.status == 200
    result = await start_cloud_flow(hass)
    result = await submit(hass, result, user_input(cloud))
    assert_error(result, "rate_limited")
    assert result["description_placeholders"] == {
        "retry_at": local_minute(dt_util.utcnow() + timedelta(days=1))
    }
    assert calls(cloud, "login") == 6

    freezer.tick(timedelta(hours=2))
    result = await submit(hass, result, user_input(cloud))
    assert_error(result, "rate_limited")
    assert calls(cloud, "login") == 6
    freezer.tick(timedelta(hours=22))
    result = await submit(hass, result, user_input(cloud))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert [call.over_limit for call in cloud.calls if call.endpoint == "login"] == [
        False,
        False,
        False,
        False,
        False,
        True,
        False,
    ]


async def test_no_meters_then_recovery_without_a_second_login(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    cloud.accounts.append(FakeAccount("empty", "empty-password", 31, []))
    result = await start_cloud_flow(hass)
    login = user_input(cloud, username="empty", password="empty-password")
    result = await submit(hass, result, login)
    assert_error(result, "no_meters")

    # within 5 minutes the account may not be listed again: said so, with the time
    cloud.account("empty").meters.append(FakeMeter("8EA5C0DE", (Phase(50, 1, 0),)))
    freezer.tick(timedelta(minutes=2))
    result = await submit(hass, result, login)
    assert_error(result, "rate_limited")
    assert result["description_placeholders"] == {
        "retry_at": local_minute(dt_util.utcnow() + timedelta(minutes=3))
    }

    freezer.tick(timedelta(minutes=3))
    result = await submit(hass, result, login)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == "31"
    assert (calls(cloud, "login"), calls(cloud, "metersdata")) == (1, 2)


@pytest.mark.parametrize(
    ("fault", "error", "wait"),
    [
        ({"status": 503}, "cannot_connect", None),
        ({"status": 200, "body": b"[1, 2]"}, "cannot_connect", None),
        ({"status": 200, "body": b""}, "rate_limited", timedelta(minutes=30)),
        ({"status": 429, "headers": {"Retry-After": "900"}}, "rate_limited", timedelta(minutes=15)),
    ],
    ids=["http-503", "not-an-envelope", "nothing", "429"],
)
async def test_listing_the_meters_fails_then_recovery(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    freezer: FrozenDateTimeFactory,
    fault: dict[str, Any],
    error: str,
    wait: timedelta | None,
) -> None:
    result = await start_cloud_flow(hass)
    cloud.inject_fault(endpoint="metersdata", **fault)
    result = await submit(hass, result, user_input(cloud))
    assert_error(result, error)
    if wait is not None:
        assert result["description_placeholders"] == {
            "retry_at": local_minute(dt_util.utcnow() + wait)
        }
    freezer.tick(wait or timedelta(minutes=5))
    result = await submit(hass, result, user_input(cloud))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert calls(cloud, "login") == 1


async def test_already_configured_needs_no_login(
    hass: HomeAssistant, cloud: FakeIamMeterCloud
) -> None:
    await async_setup_cloud(hass, cloud)
    result = await start_cloud_flow(hass)
    result = await submit(hass, result, user_input(cloud, password="whatever"))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert calls(cloud, "login") == 0


async def test_same_account_under_another_name_is_already_configured(
    hass: HomeAssistant, cloud: FakeIamMeterCloud
) -> None:
    await async_setup_cloud(hass, cloud)
    alias = vendor_example_account()
    alias.username, alias.password = "alias", "alias-password"
    cloud.accounts.append(alias)
    result = await start_cloud_flow(hass)
    result = await submit(
        hass, result, user_input(cloud, username="alias", password=alias.password)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert (calls(cloud, "login"), calls(cloud, "metersdata")) == (1, 1)
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1


# --- plain http servers (issue 13, item 7) -----------------------------------------------------


async def test_http_server_needs_an_explicit_confirmation(
    hass: HomeAssistant, cloud: FakeIamMeterCloud
) -> None:
    """Nothing is sent to a plain http server before the user confirms the warning."""
    result = await start_cloud_flow(hass)
    configure = hass.config_entries.flow.async_configure
    result = await configure(result["flow_id"], user_input(cloud))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "insecure_server"
    assert result["description_placeholders"] == {CONF_SERVER: cloud.url}
    assert not result.get("data_schema") or not result["data_schema"].schema
    assert cloud.calls == []
    assert hass.config_entries.async_entries(DOMAIN) == []

    # confirmed: the sign-in goes on
    result = await configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert calls(cloud, "login") == 1


async def test_http_confirmation_holds_for_its_server_only(
    hass: HomeAssistant, cloud: FakeIamMeterCloud
) -> None:
    configure = hass.config_entries.flow.async_configure
    result = await start_cloud_flow(hass)
    result = await configure(result["flow_id"], user_input(cloud, password="wrong-passw0rd"))
    assert result["step_id"] == "insecure_server"
    result = await configure(result["flow_id"], {})
    assert_error(result, "invalid_auth")
    # the same server again: no second warning
    result = await configure(result["flow_id"], user_input(cloud, password="wrong-passw0rd2"))
    assert_error(result, "invalid_auth")
    # another http server: asked again, nothing sent before
    result = await configure(result["flow_id"], user_input(cloud, server="http://127.0.0.1:9"))
    assert result["step_id"] == "insecure_server"
    assert result["description_placeholders"] == {CONF_SERVER: "http://127.0.0.1:9"}
    result = await configure(result["flow_id"], {})
    assert_error(result, "cannot_connect")
    assert calls(cloud, "login") == 2


async def test_https_server_is_one_step(hass: HomeAssistant, cloud: FakeIamMeterCloud) -> None:
    result = await start_cloud_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input(cloud, server="https://127.0.0.1:9")
    )
    assert result["step_id"] == "cloud"
    assert_error(result, "cannot_connect")


async def test_reconfigure_to_an_http_server_needs_confirmation(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, self_hosted: FakeIamMeterCloud
) -> None:
    entry = await async_setup_cloud(hass, cloud)
    data = dict(entry.data)
    result = await entry.start_reconfigure_flow(hass)
    new = {CONF_SERVER: self_hosted.url, CONF_USERNAME: "local-admin", CONF_PASSWORD: PASSWORD}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], new)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "insecure_server"
    assert self_hosted.calls == []
    assert dict(entry.data) == data

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_SERVER] == self_hosted.url


# --- the user name stays out of titles and logs (issue 13, item 11) ----------------------------

EMAIL = "jane.doe@example.com"


async def test_existing_entry_named_after_the_user_is_renamed(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    entry = await async_setup_cloud(hass, cloud)
    assert entry.title == "IAMMETER account 2025"
    assert [r.getMessage() for r in caplog.records if USERNAME in record_text(r)] == []
    assert USERNAME not in entry.runtime_data.coordinator.name
    # a title the user chose stays
    hass.config_entries.async_update_entry(entry, title="Home")
    assert await hass.config_entries.async_reload(entry.entry_id)
    assert entry.title == "Home"


async def test_no_log_line_names_the_user(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Setup by the flow, polls, a cloud that fails until the sensors are unavailable, and the
    recovery: at DEBUG, no record of any logger holds the user name (an e-mail address)."""
    caplog.set_level(logging.DEBUG)
    account = vendor_example_account()
    account.username = EMAIL
    cloud.accounts[:] = [account]
    result = await start_cloud_flow(hass)
    result = await submit(hass, result, user_input(cloud, username=EMAIL))
    await hass.async_block_till_done(wait_background_tasks=True)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    await async_poll(hass, freezer, 305)
    cloud.inject_fault(20, status=500, endpoint="metersdata")
    for _ in range(5):
        await async_poll(hass, freezer, 305)
    assert not entry.runtime_data.coordinator.last_update_success
    cloud._faults.clear()
    for _ in range(2):
        await async_poll(hass, freezer, 305)
    assert entry.runtime_data.coordinator.last_update_success
    leaks = [
        f"{record.name}: {record_text(record)[:200]}"
        for record in caplog.records
        if EMAIL in record_text(record)
    ]
    assert leaks == []
    assert len(caplog.records) > 10  # the run did log


# --- reauth -------------------------------------------------------------------------------------


async def test_reauth_after_a_password_change(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    entry = await async_setup_cloud(hass, cloud)
    coordinator = entry.runtime_data.coordinator
    cloud.account(USERNAME).password = "changed-Passw0rd"
    cloud.expire_tokens()
    await async_poll(hass, freezer, 305)
    (flow,) = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    result = await hass.config_entries.flow.async_configure(flow["flow_id"])
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reauth_confirm"
    assert result["description_placeholders"] == {
        CONF_USERNAME: USERNAME,
        "name": "IAMMETER account 2025",
    }

    result = await submit(hass, result, {CONF_PASSWORD: PASSWORD})
    assert_error(result, "invalid_auth")
    result = await submit(hass, result, {CONF_PASSWORD: "changed-Passw0rd"})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done(wait_background_tasks=True)

    assert entry.data[CONF_PASSWORD] == "changed-Passw0rd"
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.coordinator is not coordinator  # reloaded once, with the new password
    assert entry.runtime_data.coordinator.last_update_success
    assert calls(cloud, "login") == 3
    assert not any(call.over_limit for call in cloud.calls)


async def test_reauth_of_an_entry_that_failed_to_start(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    """The password changed while Home Assistant was off: setup fails, reauth starts it."""
    entry = await async_setup_cloud(hass, cloud)
    assert await hass.config_entries.async_unload(entry.entry_id)
    cloud.account(USERNAME).password = "changed-Passw0rd"
    cloud.expire_tokens()
    freezer.tick(timedelta(minutes=6))
    hass.data.pop(BUDGET_KEY)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR

    (flow,) = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    result = await submit(hass, flow, {CONF_PASSWORD: "changed-Passw0rd"})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done(wait_background_tasks=True)
    assert entry.state is ConfigEntryState.LOADED
    state = hass.states.get("sensor.iammeter_da2bed94_energy_import")
    assert state is not None
    assert float(state.state) > 14761


async def test_reauth_with_the_same_password_restarts_polling(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    """The cloud refused the password for a while: the same password again restarts the entry,
    whose polling stopped when the refusal came."""
    entry = await async_setup_cloud(hass, cloud)
    account = cloud.account(USERNAME)
    account.password = "temporarily-different"
    cloud.expire_tokens()
    await async_poll(hass, freezer, 305)
    assert not entry.runtime_data.coordinator.last_update_success
    account.password = PASSWORD

    result = await entry.start_reauth_flow(hass)
    result = await submit(hass, result, {CONF_PASSWORD: PASSWORD})
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done(wait_background_tasks=True)
    assert entry.state is ConfigEntryState.LOADED
    made = calls(cloud, "metersdata")
    await async_poll(hass, freezer, 305)
    assert calls(cloud, "metersdata") == made + 1
    assert entry.runtime_data.coordinator.last_update_success


async def test_reauth_with_another_account_is_refused(
    hass: HomeAssistant, cloud: FakeIamMeterCloud
) -> None:
    entry = await async_setup_cloud(hass, cloud)
    token = entry.data[CONF_TOKEN]
    cloud.account(USERNAME).account_id = 9999  # the user name now belongs to another account
    result = await entry.start_reauth_flow(hass)
    result = await submit(hass, result, {CONF_PASSWORD: PASSWORD})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_account"
    assert entry.data[CONF_TOKEN] == token


async def test_reauth_rate_limited(hass: HomeAssistant, cloud: FakeIamMeterCloud) -> None:
    entry = await async_setup_cloud(hass, cloud)
    result = await entry.start_reauth_flow(hass)
    for _ in range(5):
        result = await submit(hass, result, {CONF_PASSWORD: "nope"})
        assert_error(result, "invalid_auth")
    result = await submit(hass, result, {CONF_PASSWORD: PASSWORD})
    assert_error(result, "rate_limited")
    assert result["description_placeholders"][CONF_USERNAME] == USERNAME
    assert result["description_placeholders"]["retry_at"] == local_minute(
        dt_util.utcnow() + timedelta(hours=1)
    )


# --- reconfigure --------------------------------------------------------------------------------


@pytest.fixture
async def self_hosted(socket_enabled: None) -> AsyncIterator[FakeIamMeterCloud]:
    """A second server (IAMMETER's self-hosted one) holding the same account."""
    fake = FakeIamMeterCloud(clock=dt_util.utcnow, accounts=[vendor_example_account()])
    fake.accounts[0].username = "local-admin"
    await fake.start()
    yield fake
    await fake.stop()


async def test_reconfigure_server_and_username(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    self_hosted: FakeIamMeterCloud,
    freezer: FrozenDateTimeFactory,
) -> None:
    entry = await async_setup_cloud(hass, cloud)
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure_cloud"
    assert suggested(result) == {CONF_SERVER: cloud.url, CONF_USERNAME: USERNAME}

    result = await submit(
        hass, result, {CONF_SERVER: "ftp://x", CONF_USERNAME: "local-admin", CONF_PASSWORD: "p"}
    )
    assert_error(result, "invalid_server")
    assert suggested(result) == {CONF_SERVER: "ftp://x", CONF_USERNAME: "local-admin"}
    result = await submit(
        hass,
        result,
        {CONF_SERVER: self_hosted.url, CONF_USERNAME: "local-admin", CONF_PASSWORD: "wrong"},
    )
    assert_error(result, "invalid_auth")
    result = await submit(
        hass,
        result,
        {CONF_SERVER: self_hosted.url + "/", CONF_USERNAME: "local-admin", CONF_PASSWORD: PASSWORD},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done(wait_background_tasks=True)
    assert entry.data[CONF_SERVER] == self_hosted.url
    assert entry.data[CONF_USERNAME] == "local-admin"
    assert entry.unique_id == "2025"
    assert entry.state is ConfigEntryState.LOADED

    # the entry now reads the other server, with the token that server gave
    before = len(cloud.calls)
    await async_poll(hass, freezer, 305)
    assert len(cloud.calls) == before
    assert [call.endpoint for call in self_hosted.calls] == ["login", "login", "metersdata"]


async def test_reconfigure_to_another_account_is_refused(
    hass: HomeAssistant, cloud: FakeIamMeterCloud
) -> None:
    entry = await async_setup_cloud(hass, cloud)
    data = dict(entry.data)
    result = await entry.start_reconfigure_flow(hass)
    result = await submit(
        hass,
        result,
        {CONF_SERVER: cloud.url, CONF_USERNAME: DEMO_LOGIN[0], CONF_PASSWORD: DEMO_LOGIN[1]},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_account"
    assert dict(entry.data) == data


# --- options ------------------------------------------------------------------------------------


async def test_options_poll_every_5_minutes_or_longer(
    hass: HomeAssistant, cloud: FakeIamMeterCloud
) -> None:
    entry = await async_setup_cloud(hass, cloud)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    key = next(key for key in result["data_schema"].schema if key == CONF_SCAN_INTERVAL)
    assert key.default() == 5
    selector = result["data_schema"].schema[key].config
    assert (selector["min"], selector["max"], selector["unit_of_measurement"]) == (5, 60, "min")

    with pytest.raises(InvalidData):
        await hass.config_entries.options.async_configure(
            result["flow_id"], {CONF_SCAN_INTERVAL: 4}
        )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_SCAN_INTERVAL: 15}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done(wait_background_tasks=True)
    assert entry.options == {CONF_SCAN_INTERVAL: 900}
    coordinator = entry.runtime_data.coordinator
    assert isinstance(coordinator, CloudCoordinator)
    assert coordinator.poll_interval == timedelta(minutes=15)

    result = await hass.config_entries.options.async_init(entry.entry_id)
    key = next(key for key in result["data_schema"].schema if key == CONF_SCAN_INTERVAL)
    assert key.default() == 15


async def test_unchanged_settings_and_a_new_token_do_not_reload(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    entry = await async_setup_cloud(hass, cloud, scan_interval=300)
    coordinator = entry.runtime_data.coordinator
    hass.config_entries.async_update_entry(entry, data={**entry.data, CONF_TOKEN: "other"})
    await hass.async_block_till_done()
    assert entry.runtime_data.coordinator is coordinator
    hass.config_entries.async_update_entry(entry, options={CONF_SCAN_INTERVAL: 600})
    await hass.async_block_till_done(wait_background_tasks=True)
    assert entry.runtime_data.coordinator is not coordinator


async def test_entry_setup_failure_is_retried(
    hass: HomeAssistant, cloud: FakeIamMeterCloud
) -> None:
    """A cloud that cannot be read at the first start (nothing stored yet): retry later."""
    cloud.inject_fault(endpoint="metersdata", status=500)
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id="2025",
        data={
            CONF_SOURCE: SOURCE_CLOUD,
            CONF_SERVER: cloud.url,
            CONF_USERNAME: USERNAME,
            CONF_PASSWORD: PASSWORD,
            CONF_ACCOUNT_ID: "2025",
            CONF_TOKEN: cloud.issue_token(USERNAME),
            CONF_REFRESH_TOKEN: None,
        },
    )
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
