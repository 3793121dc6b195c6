"""An IAMMETER account at run time: polling, the call budget, the token, restarts, failures.

The fake cloud enforces the vendor's limits (it answers "nothing" past them) and records every
call; its clock is Home Assistant's frozen clock, moved by the tests. A "restart" unloads the
entry, forgets the in-memory call budget and sets the entry up again: the budget and the last
reading come back from Home Assistant storage, as after a real restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
import itertools
import logging
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import CONF_PASSWORD, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed_exact,
)

from custom_components.meter_hub.api.budget import LOGIN_KEY, BudgetExceeded, CallKind
from custom_components.meter_hub.cloud_budget import BUDGET_KEY, CloudBudget, async_get_budget
from custom_components.meter_hub.cloud_coordinator import (
    POLL_MARGIN,
    RATE_LIMIT_BACK_OFF,
    CloudCoordinator,
    reading_store,
)
from custom_components.meter_hub.const import (
    CLOUD_SCAN_INTERVAL,
    CLOUD_STALE_AFTER,
    CONF_REFRESH_TOKEN,
    CONF_TOKEN,
    DOMAIN,
)
from simulator.iammeter import (
    VENDOR_EXAMPLE_LOGIN,
    FakeAccount,
    FakeCall,
    FakeIamMeterCloud,
    FakeMeter,
    Phase,
)

from .conftest import async_setup_cloud, cloud_entry

POLL = CLOUD_SCAN_INTERVAL + POLL_MARGIN
IMPORT = "sensor.iammeter_da2bed94_energy_import"
POWER = "sensor.iammeter_da2bed94_power"
LOGGER_NAME = "custom_components.meter_hub"


def calls(cloud: FakeIamMeterCloud, endpoint: str) -> list[FakeCall]:
    return [call for call in cloud.calls if call.endpoint == endpoint]


def state_of(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


def coordinator_of(entry: MockConfigEntry) -> CloudCoordinator:
    coordinator = entry.runtime_data.coordinator
    assert isinstance(coordinator, CloudCoordinator)
    return coordinator


async def tick(hass: HomeAssistant, freezer: FrozenDateTimeFactory, delta: timedelta) -> None:
    """Let ``delta`` pass and run what falls due then (the polls are exact).

    Timers are compared as float timestamps, which are a few tenths of a microsecond apart at
    today's dates: what falls due within a millisecond runs.
    """
    freezer.tick(delta)
    async_fire_time_changed_exact(hass, dt_util.utcnow() + timedelta(milliseconds=1))
    await hass.async_block_till_done(wait_background_tasks=True)


async def restart(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Stop the entry and start it as a restarted Home Assistant would, from storage."""
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    hass.data.pop(BUDGET_KEY)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)


def assert_within_limits(cloud: FakeIamMeterCloud) -> None:
    """Nothing over a limit, and the calls themselves keep the vendor's windows."""
    assert [call for call in cloud.calls if call.over_limit] == []
    times = sorted(call.at for call in calls(cloud, "metersdata"))
    assert all(b - a >= timedelta(minutes=5) for a, b in itertools.pairwise(times))
    logins = sorted(call.at for call in calls(cloud, "login"))
    for n, at in enumerate(logins):
        assert sum(at - timedelta(hours=1) < t <= at for t in logins[: n + 1]) <= 5
        assert sum(at - timedelta(days=1) < t <= at for t in logins[: n + 1]) <= 30


def assert_no_secret(texts: Iterable[str], secrets: Iterable[str]) -> None:
    secrets = [secret for secret in secrets if secret]
    assert secrets
    for text in texts:
        for secret in secrets:
            assert secret not in text


# --- polling ------------------------------------------------------------------------------------


async def test_polls_every_5_minutes_by_default(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    entry = await async_setup_cloud(hass, cloud)
    coordinator = coordinator_of(entry)
    assert coordinator.poll_interval == timedelta(minutes=5)
    first = calls(cloud, "metersdata")[0].at
    assert coordinator.next_poll_at == first + timedelta(minutes=5) + POLL_MARGIN
    assert timedelta(seconds=0.1) == POLL_MARGIN

    await tick(hass, freezer, timedelta(minutes=5))
    assert len(calls(cloud, "metersdata")) == 1
    await tick(hass, freezer, POLL_MARGIN)
    assert len(calls(cloud, "metersdata")) == 2
    for _ in range(10):
        await tick(hass, freezer, POLL)
    # one call per poll, 12 in an hour, and never two within 5 minutes
    made = [call.at for call in calls(cloud, "metersdata")]
    assert len(made) == 12
    assert made[-1] - made[0] == 11 * POLL
    assert_within_limits(cloud)
    assert calls(cloud, "login") == []


@pytest.mark.parametrize("minutes", [5, 15, 60])
async def test_poll_interval_option(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory, minutes: int
) -> None:
    entry = await async_setup_cloud(hass, cloud, scan_interval=minutes * 60)
    first = calls(cloud, "metersdata")[0].at
    interval = timedelta(minutes=minutes)
    assert coordinator_of(entry).next_poll_at == first + interval + POLL_MARGIN
    await tick(hass, freezer, interval)
    assert len(calls(cloud, "metersdata")) == 1
    await tick(hass, freezer, POLL_MARGIN)
    assert len(calls(cloud, "metersdata")) == 2


async def test_restart_keeps_a_longer_interval(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    """15 minutes chosen: a restart 6 minutes after a call (the budget would allow one) makes
    none before the 15 minutes are over."""
    entry = await async_setup_cloud(hass, cloud, scan_interval=900)
    await tick(hass, freezer, timedelta(minutes=6))
    await restart(hass, entry)
    await tick(hass, freezer, timedelta(minutes=9))
    assert len(calls(cloud, "metersdata")) == 1
    await tick(hass, freezer, POLL_MARGIN)
    assert len(calls(cloud, "metersdata")) == 2
    assert calls(cloud, "metersdata")[1].at - calls(cloud, "metersdata")[0].at == (
        timedelta(minutes=15) + POLL_MARGIN
    )


async def test_interval_below_5_minutes_is_never_used(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    """An option of less than 5 minutes (edited storage, an old version) is raised to 5."""
    entry = await async_setup_cloud(hass, cloud, scan_interval=60)
    assert coordinator_of(entry).poll_interval == CLOUD_SCAN_INTERVAL
    for _ in range(4):
        await tick(hass, freezer, timedelta(minutes=1))
    assert len(calls(cloud, "metersdata")) == 1


async def test_next_poll_counts_from_the_answer(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    freezer: FrozenDateTimeFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An answer 3 s on its way back: the cloud counted the call when it arrived, so the next
    one leaves 5 minutes after the answer, not after the request."""
    entry = await async_setup_cloud(hass, cloud)
    coordinator = coordinator_of(entry)
    read = coordinator.client.meters_data

    async def slow_answer() -> Any:
        answer = await read()
        freezer.tick(timedelta(seconds=3))
        return answer

    monkeypatch.setattr(coordinator.client, "meters_data", slow_answer)
    await tick(hass, freezer, POLL)
    sent = calls(cloud, "metersdata")[-1].at
    assert coordinator.fetched_at == sent + timedelta(seconds=3)
    assert coordinator.next_poll_at == sent + timedelta(seconds=3) + POLL
    await tick(hass, freezer, POLL)
    assert calls(cloud, "metersdata")[-1].at == sent + timedelta(seconds=3) + POLL
    assert_within_limits(cloud)


async def test_removing_the_entry_deletes_its_storage_but_not_the_budget(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    """The stored reading and the history go with the entry; the call budget stays, as the
    limits are the IP address's and the account's (a new entry of the account keeps to them)."""
    entry = cloud_entry(cloud, VENDOR_EXAMPLE_LOGIN)
    history = f"{DOMAIN}.history_{entry.entry_id}"
    # what the backfill keeps (it runs only with the recorder)
    hass_storage[history] = {"version": 1, "key": history, "data": {"gaps": []}}
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await tick(hass, freezer, POLL)
    kept = {history, f"{DOMAIN}.cloud_{entry.data['account_id']}", f"{DOMAIN}.call_budget"}
    assert kept <= hass_storage.keys()
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert {key for key in hass_storage if key.startswith(DOMAIN)} == {f"{DOMAIN}.call_budget"}


async def test_polling_switched_off_makes_no_call(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    """The entry's "Enable polling for changes" is off: no poll of its own, a refresh asked
    for (update_entity, an automation) still reads the account, within the budget."""
    entry = cloud_entry(cloud, VENDOR_EXAMPLE_LOGIN)
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(entry, pref_disable_polling=True)
    assert await hass.config_entries.async_setup(entry.entry_id)
    coordinator = coordinator_of(entry)
    assert coordinator.next_poll_at is None
    for _ in range(3):
        await tick(hass, freezer, POLL)
    assert len(calls(cloud, "metersdata")) == 1
    await coordinator.async_refresh()
    assert len(calls(cloud, "metersdata")) == 2
    assert coordinator.next_poll_at is None
    assert_within_limits(cloud)


async def test_unload_cancels_the_next_poll(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    entry = await async_setup_cloud(hass, cloud)
    coordinator = coordinator_of(entry)
    assert coordinator.next_poll_at is not None
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert coordinator.next_poll_at is None
    for _ in range(3):
        await tick(hass, freezer, POLL)
    assert len(calls(cloud, "metersdata")) == 1


async def test_early_poll_makes_no_call_and_polls_again_when_due(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    """A refresh a little before the 5 minutes are over (update_entity, an automation) makes
    no call, and the poll still comes right when the interval is over."""
    entry = await async_setup_cloud(hass, cloud)
    coordinator = coordinator_of(entry)
    due = coordinator.next_poll_at
    before = state_of(hass, IMPORT)
    freezer.tick(timedelta(minutes=4, seconds=59))
    await coordinator.async_refresh()
    assert len(calls(cloud, "metersdata")) == 1
    assert coordinator.last_update_success
    assert state_of(hass, IMPORT) == before
    assert coordinator.next_poll_at == due

    await tick(hass, freezer, timedelta(seconds=1) + POLL_MARGIN)
    assert len(calls(cloud, "metersdata")) == 2
    assert calls(cloud, "metersdata")[1].at == due
    assert float(state_of(hass, IMPORT)) > float(before)
    assert_within_limits(cloud)


async def test_refresh_refused_by_the_budget_waits_for_it(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    """After a failed call the reading is old enough to poll, but the call was spent: a refresh
    2 minutes later keeps the reading and polls again when the budget allows."""
    entry = await async_setup_cloud(hass, cloud)
    coordinator = coordinator_of(entry)
    cloud.inject_fault(endpoint="metersdata", status=503)
    await tick(hass, freezer, POLL)
    failed = calls(cloud, "metersdata")[-1].at
    freezer.tick(timedelta(minutes=2))
    await coordinator.async_refresh()
    assert len(calls(cloud, "metersdata")) == 2
    assert coordinator.last_update_success
    assert coordinator.next_poll_at == failed + timedelta(minutes=5) + POLL_MARGIN
    await tick(hass, freezer, timedelta(minutes=3) + POLL_MARGIN)
    assert calls(cloud, "metersdata")[-1].at == failed + timedelta(minutes=5) + POLL_MARGIN
    assert_within_limits(cloud)


# --- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 503},
        {"status": 200, "body": b"<html>proxy error</html>"},
        {"status": 200, "body": b'{"data": null, "successful": true, "message": null}'},
        {"status": 200, "body": b'{"data": null, "successful": false, "message": "Busy"}'},
    ],
    ids=["http-503", "not-json", "data-null", "refused"],
)
async def test_failed_polls_keep_a_reading_younger_than_15_minutes(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    fault: dict[str, Any],
) -> None:
    entry = await async_setup_cloud(hass, cloud)
    coordinator = coordinator_of(entry)
    value = state_of(hass, IMPORT)
    cloud.inject_fault(3, endpoint="metersdata", **fault)

    await tick(hass, freezer, POLL)  # 5 min old
    await tick(hass, freezer, POLL)  # 10 min old
    assert coordinator.last_update_success
    assert state_of(hass, IMPORT) == value
    assert state_of(hass, POWER) != STATE_UNAVAILABLE
    assert timedelta(minutes=15) == CLOUD_STALE_AFTER

    caplog.clear()
    await tick(hass, freezer, POLL)  # 15 min old: the reading is not shown as current
    assert not coordinator.last_update_success
    assert state_of(hass, IMPORT) == STATE_UNAVAILABLE
    assert state_of(hass, "binary_sensor.iammeter_da2bed94_uploading") == STATE_UNAVAILABLE
    (record,) = [
        r for r in caplog.records if r.name.startswith(LOGGER_NAME) and r.levelno >= logging.INFO
    ]
    assert record.levelno == logging.ERROR
    assert "Cannot read the IAMMETER account: /api/v1/site/metersdata" in record.getMessage()
    assert entry.state is ConfigEntryState.LOADED

    await tick(hass, freezer, POLL)
    assert coordinator.last_update_success
    assert float(state_of(hass, IMPORT)) > float(value)
    assert len(calls(cloud, "metersdata")) == 5
    assert_within_limits(cloud)


async def test_cloud_unreachable_then_back(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Connection refused: the error says so without the URL's token, and the entry recovers."""
    caplog.set_level(logging.DEBUG)
    entry = await async_setup_cloud(hass, cloud)
    coordinator = coordinator_of(entry)
    port = int(cloud.url.rpartition(":")[2])
    await cloud.stop()
    for _ in range(3):
        await tick(hass, freezer, POLL)
    assert state_of(hass, IMPORT) == STATE_UNAVAILABLE
    error = str(coordinator.last_exception)
    assert error.startswith("Cannot read the IAMMETER account: /api/v1/site/metersdata: ")
    assert "ClientConnectorError" in error
    assert_no_secret([error, caplog.text], [entry.data[CONF_TOKEN], VENDOR_EXAMPLE_LOGIN[1]])

    await cloud.start(port)
    await tick(hass, freezer, POLL)
    assert coordinator.last_update_success
    assert state_of(hass, IMPORT) != STATE_UNAVAILABLE
    assert calls(cloud, "login") == []


async def test_rate_limited_answer_backs_off_30_minutes(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    """ "The API will return nothing": no call for 30 minutes, honest states meanwhile.

    The first refusal came right at the 5 minutes after the last good call: the cloud may have
    seen the two calls closer together than we sent them, so it is asked again once, 5 minutes
    later. Refused again, it is left alone for 30 minutes.
    """
    entry = await async_setup_cloud(hass, cloud)
    coordinator = coordinator_of(entry)
    cloud.inject_fault(2, endpoint="metersdata", status=200, body=b"")
    await tick(hass, freezer, POLL)
    edge = calls(cloud, "metersdata")[-1].at
    assert len(calls(cloud, "metersdata")) == 2
    assert state_of(hass, IMPORT) != STATE_UNAVAILABLE  # 5 minutes old
    await tick(hass, freezer, POLL)
    limited_at = calls(cloud, "metersdata")[-1].at
    assert limited_at - edge == timedelta(minutes=5) + POLL_MARGIN
    assert len(calls(cloud, "metersdata")) == 3

    for _ in range(3):
        await tick(hass, freezer, POLL)
    # no call while backing off; the reading got too old meanwhile
    assert len(calls(cloud, "metersdata")) == 3
    assert state_of(hass, IMPORT) == STATE_UNAVAILABLE
    assert timedelta(minutes=30) == RATE_LIMIT_BACK_OFF

    for _ in range(3):
        await tick(hass, freezer, POLL)
    (resumed,) = calls(cloud, "metersdata")[3:]
    assert resumed.at - limited_at >= RATE_LIMIT_BACK_OFF
    assert resumed.at - limited_at <= RATE_LIMIT_BACK_OFF + POLL
    assert coordinator.last_update_success
    assert state_of(hass, IMPORT) != STATE_UNAVAILABLE


async def test_retry_after_is_honoured(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    await async_setup_cloud(hass, cloud)
    cloud.inject_fault(endpoint="metersdata", status=429, headers={"Retry-After": "600"})
    await tick(hass, freezer, POLL)
    limited_at = calls(cloud, "metersdata")[-1].at
    await tick(hass, freezer, POLL)
    assert len(calls(cloud, "metersdata")) == 2
    for _ in range(20):
        if len(calls(cloud, "metersdata")) > 2:
            break
        await tick(hass, freezer, timedelta(seconds=30))
    resumed = calls(cloud, "metersdata")[2]
    assert timedelta(minutes=10) <= resumed.at - limited_at <= timedelta(minutes=10) + POLL


# --- token discipline ---------------------------------------------------------------------------


async def test_restarts_never_log_in(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    entry = await async_setup_cloud(hass, cloud)
    token = entry.data[CONF_TOKEN]
    for _ in range(4):
        await tick(hass, freezer, timedelta(minutes=7))
        await restart(hass, entry)
        assert entry.state is ConfigEntryState.LOADED
    assert calls(cloud, "login") == []
    assert entry.data[CONF_TOKEN] == token
    assert len(calls(cloud, "metersdata")) >= 5


async def test_rejected_token_logs_in_once_and_keeps_the_new_token(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    entry = await async_setup_cloud(hass, cloud)
    coordinator = coordinator_of(entry)
    old_token = entry.data[CONF_TOKEN]
    value = state_of(hass, IMPORT)

    cloud.expire_tokens()
    await tick(hass, freezer, POLL)
    assert len(calls(cloud, "login")) == 1
    new_token = entry.data[CONF_TOKEN]
    assert new_token not in (old_token, "")
    assert entry.data[CONF_REFRESH_TOKEN] != "fake-refresh-token"
    # the entry was not reloaded for a new token, and kept its (5 minutes old) reading
    assert entry.runtime_data.coordinator is coordinator
    assert state_of(hass, IMPORT) == value

    await tick(hass, freezer, POLL)
    assert coordinator.last_update_success
    assert float(state_of(hass, IMPORT)) > float(value)
    for _ in range(3):
        await tick(hass, freezer, POLL)
    await restart(hass, entry)
    await tick(hass, freezer, POLL)
    assert entry.data[CONF_TOKEN] == new_token
    assert len(calls(cloud, "login")) == 1
    assert_within_limits(cloud)
    # neither the password nor a token reached the log
    assert_no_secret(
        [caplog.text],
        [VENDOR_EXAMPLE_LOGIN[1], old_token, new_token, entry.data[CONF_REFRESH_TOKEN]],
    )
    assert "token rejected: Invalid token." in caplog.text


async def test_rejected_token_without_login_budget_waits_for_it(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    """Logins are used up (other entries, flows): no login and no call with the bad token
    until a login is allowed; then one login and the reading in the same poll."""
    entry = await async_setup_cloud(hass, cloud)
    budget = await async_get_budget(hass)
    for _ in range(5):
        await budget.async_spend(CallKind.LOGIN, LOGIN_KEY)
    spent_at = dt_util.utcnow()

    cloud.expire_tokens()
    await tick(hass, freezer, POLL)
    assert len(calls(cloud, "metersdata")) == 2  # rejected
    assert calls(cloud, "login") == []
    for _ in range(4):
        await tick(hass, freezer, POLL)
    assert len(calls(cloud, "metersdata")) == 2
    assert calls(cloud, "login") == []
    assert state_of(hass, IMPORT) == STATE_UNAVAILABLE
    assert not coordinator_of(entry).last_update_success

    for _ in range(12):
        if calls(cloud, "login"):
            break
        await tick(hass, freezer, POLL)
    (login,) = calls(cloud, "login")
    assert spent_at + timedelta(hours=1) <= login.at <= spent_at + timedelta(hours=1) + POLL
    assert calls(cloud, "metersdata")[-1].at == login.at
    assert state_of(hass, IMPORT) != STATE_UNAVAILABLE
    assert_within_limits(cloud)


async def test_logins_stay_within_the_hourly_and_daily_limits(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    """A cloud that rejects every token: logins keep to 5 an hour and 30 a day."""
    await async_setup_cloud(hass, cloud)
    start = dt_util.utcnow()
    while dt_util.utcnow() - start < timedelta(hours=26):
        cloud.expire_tokens()
        await tick(hass, freezer, POLL)
    logins = [call.at for call in calls(cloud, "login")]
    assert sum(at < start + timedelta(hours=1) for at in logins) == 5
    assert sum(at < start + timedelta(days=1) for at in logins) == 30
    assert_within_limits(cloud)


async def test_changed_password_asks_for_reauth_and_stops_calling(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    entry = await async_setup_cloud(hass, cloud)
    cloud.account(VENDOR_EXAMPLE_LOGIN[0]).password = "new-password-4711"
    cloud.expire_tokens()
    await tick(hass, freezer, POLL)
    assert len(calls(cloud, "login")) == 1
    assert state_of(hass, IMPORT) == STATE_UNAVAILABLE
    (flow,) = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert flow["context"]["source"] == SOURCE_REAUTH
    assert flow["context"]["entry_id"] == entry.entry_id
    made = len(cloud.calls)
    for _ in range(6):
        await tick(hass, freezer, POLL)
    assert len(cloud.calls) == made
    assert_no_secret([caplog.text], [VENDOR_EXAMPLE_LOGIN[1], entry.data[CONF_TOKEN]])


async def test_changed_password_at_startup_asks_for_reauth(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    entry = await async_setup_cloud(hass, cloud)
    assert await hass.config_entries.async_unload(entry.entry_id)
    cloud.account(VENDOR_EXAMPLE_LOGIN[0]).password = "new-password-4711"
    cloud.expire_tokens()
    await tick(hass, freezer, timedelta(minutes=6))
    await restart_unloaded(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert len(calls(cloud, "login")) == 1
    assert [flow["context"]["source"] for flow in hass.config_entries.flow.async_progress()] == [
        SOURCE_REAUTH
    ]


async def restart_unloaded(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    hass.data.pop(BUDGET_KEY, None)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)


# --- the call budget and the stored reading across restarts ------------------------------------


async def test_budget_refuses_each_documented_limit_also_after_a_restart(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    freezer.move_to("2024-02-22T03:46:30+00:00")
    limits: list[tuple[CallKind, str, int, timedelta]] = [
        (CallKind.LOGIN, LOGIN_KEY, 5, timedelta(hours=1)),
        (CallKind.METERSDATA, "2025", 1, timedelta(minutes=5)),
        (CallKind.METERDATA, "DA2BED94", 12, timedelta(hours=1)),
        (CallKind.POWER_ANALYSIS, "DA2BED94", 5, timedelta(days=1)),
        (CallKind.OFFLINE_ANALYSIS, "DA2BED94", 5, timedelta(days=1)),
    ]
    budget = await async_get_budget(hass)
    start = dt_util.utcnow()
    for kind, key, count, _ in limits:
        for _ in range(count):
            await budget.async_spend(kind, key)
    # another account and another meter have their own counts
    await budget.async_spend(CallKind.METERSDATA, "4242")
    await budget.async_spend(CallKind.METERDATA, "3FE34ABE")

    hass.data.pop(BUDGET_KEY)
    restarted = await async_get_budget(hass)
    assert restarted is not budget
    for kind, key, _, period in limits:
        with pytest.raises(BudgetExceeded) as refused:
            await restarted.async_spend(kind, key)
        assert refused.value.retry_at == start + period

    freezer.tick(timedelta(hours=1))
    await restarted.async_spend(CallKind.METERSDATA, "2025")
    await restarted.async_spend(CallKind.METERDATA, "DA2BED94")
    for _ in range(5):
        await restarted.async_spend(CallKind.LOGIN, LOGIN_KEY)
    # 30 logins a day: five more hours of five logins, then none until a day after the first
    for _ in range(4):
        freezer.tick(timedelta(hours=1))
        for _ in range(5):
            await restarted.async_spend(CallKind.LOGIN, LOGIN_KEY)
    freezer.tick(timedelta(hours=1))
    with pytest.raises(BudgetExceeded) as refused:
        await restarted.async_spend(CallKind.LOGIN, LOGIN_KEY)
    assert refused.value.retry_at == start + timedelta(days=1)
    with pytest.raises(BudgetExceeded):
        await restarted.async_spend(CallKind.POWER_ANALYSIS, "DA2BED94")


async def test_one_budget_for_concurrent_callers(hass: HomeAssistant) -> None:
    """Entries and flows starting together share one ledger, loaded once."""
    budgets = await asyncio.gather(*(async_get_budget(hass) for _ in range(3)))
    assert budgets[0] is budgets[1] is budgets[2] is hass.data[BUDGET_KEY]


async def test_corrupt_budget_storage_is_ignored(
    hass: HomeAssistant, hass_storage: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    hass_storage["meter_hub.call_budget"] = {
        "version": 1,
        "minor_version": 1,
        "key": "meter_hub.call_budget",
        "data": {"version": 99, "calls": {}, "back_off": {}},
    }
    budget = CloudBudget(hass)
    await budget.async_load()
    assert budget.ledger.to_dict()["calls"] == {}
    assert "Ignoring the stored IAMMETER call budget" in caplog.text


async def test_restart_before_the_next_poll_makes_no_call_and_shows_the_stored_reading(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    entry = await async_setup_cloud(hass, cloud)
    (first,) = calls(cloud, "metersdata")
    stored = hass_storage["meter_hub.call_budget"]["data"]["calls"]["metersdata"]["2025"]
    assert [datetime.fromisoformat(at) for at in stored] == [first.at]
    values = {entity: state_of(hass, entity) for entity in (IMPORT, POWER)}

    await tick(hass, freezer, timedelta(minutes=2))
    await restart(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    assert len(cloud.calls) == 1
    assert {entity: state_of(hass, entity) for entity in values} == values

    # the next call comes as soon as the 5 minutes are over, not 5 minutes after the restart
    await tick(hass, freezer, timedelta(minutes=3, seconds=5))
    assert len(calls(cloud, "metersdata")) == 2
    assert float(state_of(hass, IMPORT)) > float(values[IMPORT])


async def test_restart_with_the_cloud_down_shows_the_stored_reading(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    entry = await async_setup_cloud(hass, cloud)
    value = state_of(hass, IMPORT)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await tick(hass, freezer, timedelta(minutes=8))
    cloud.inject_fault(endpoint="metersdata", status=502)
    await restart_unloaded(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    assert state_of(hass, IMPORT) == value
    assert len(calls(cloud, "metersdata")) == 2


async def test_restart_with_an_old_reading_and_the_cloud_down_retries_later(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    """A stored reading older than 15 minutes is not shown as current."""
    entry = await async_setup_cloud(hass, cloud)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await tick(hass, freezer, timedelta(minutes=20))
    cloud.inject_fault(endpoint="metersdata", status=502)
    await restart_unloaded(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_RETRY


async def test_unreadable_stored_reading_is_ignored(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    entry = await async_setup_cloud(hass, cloud)
    assert await hass.config_entries.async_unload(entry.entry_id)
    store = reading_store(hass, "2025")
    await store.async_save({"fetched_at": "yesterday", "payload": []})
    await tick(hass, freezer, timedelta(minutes=2))
    await restart_unloaded(hass, entry)
    # nothing usable stored and no call allowed yet: try again later
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert len(cloud.calls) == 1


async def test_ten_restarts_in_ten_minutes_stay_within_the_limits(
    hass: HomeAssistant, cloud: FakeIamMeterCloud, freezer: FrozenDateTimeFactory
) -> None:
    entry = await async_setup_cloud(hass, cloud)
    for _ in range(10):
        await tick(hass, freezer, timedelta(minutes=1))
        await restart(hass, entry)
        assert entry.state is ConfigEntryState.LOADED
        assert state_of(hass, IMPORT) != STATE_UNAVAILABLE
    # at 0, 5 and 10 minutes: not one call more than "once per 5 minutes" allows
    assert len(calls(cloud, "metersdata")) == 3
    assert calls(cloud, "login") == []
    assert_within_limits(cloud)


# --- the week ---------------------------------------------------------------------------------


@pytest.fixture
def fast_loop(hass: HomeAssistant) -> Iterator[None]:
    """The event loop without asyncio's debug mode (a stack trace per future): 2000 polls."""
    hass.loop.set_debug(False)
    yield
    hass.loop.set_debug(True)


async def test_a_week_with_a_restart_every_hour(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    freezer: FrozenDateTimeFactory,
    fast_loop: None,
) -> None:
    """Set up through the config flow (the one login), then a week of polling with Home
    Assistant restarted every hour at a different minute: nothing over a limit, one login."""
    cloud.accounts.append(
        FakeAccount("week", "week-password", 77, [FakeMeter("7EEC0DE5", (Phase(400, 1000, 0),))])
    )
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": "user"})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "cloud"}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {"username": "week", CONF_PASSWORD: "week-password", "server": cloud.url},
    )
    assert result["step_id"] == "insecure_server"  # the fake cloud is plain http
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    entry = result["result"]
    await hass.async_block_till_done(wait_background_tasks=True)
    entity = "sensor.iammeter_7eec0de5_energy_import"
    readings = [float(state_of(hass, entity))]
    start = dt_util.utcnow()

    async def run_until(until: datetime) -> None:
        """Let time pass poll by poll: each step ends right at the next scheduled poll."""
        while (due := coordinator_of(entry).next_poll_at) is not None and due < until:
            await tick(hass, freezer, due - dt_util.utcnow())
        freezer.move_to(until)

    for hour in range(1, 7 * 24):
        await run_until(start + timedelta(hours=hour, minutes=(hour * 17) % 60, seconds=hour % 7))
        await restart(hass, entry)
        assert entry.state is ConfigEntryState.LOADED
        readings.append(float(state_of(hass, entity)))
    await run_until(start + timedelta(days=7))

    assert [call for call in cloud.calls if call.over_limit] == []
    assert len(calls(cloud, "login")) == 1
    assert_within_limits(cloud)
    made = len(calls(cloud, "metersdata"))
    # as many polls as a week of "once per 5 minutes" allows, give or take the restarts
    assert 7 * 24 * 12 * 0.9 < made <= 7 * 24 * 12 + 1
    assert readings == sorted(readings)
    assert readings[-1] > readings[0]
