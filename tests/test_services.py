"""Actions: power analysis, offline analysis and meter history, against the fake cloud."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
import json
from pathlib import Path
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import (
    HomeAssistantError,
    ServiceValidationError,
    Unauthorized,
    UnknownUser,
)
from homeassistant.helpers import device_registry as dr, selector
from homeassistant.helpers.service import async_get_all_descriptions
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import voluptuous as vol

from custom_components.meter_hub.const import (
    CONF_ACCOUNT_ID,
    CONF_REFRESH_TOKEN,
    CONF_SERVER,
    CONF_SOURCE,
    CONF_TOKEN,
    DOMAIN,
    SOURCE_CLOUD,
)
from simulator.iammeter import FakeAccount, FakeIamMeterCloud, FakeMeter, Phase

from .conftest import meter_device

NOW = datetime(2024, 9, 12, 10, 3, tzinfo=UTC)
SN = "AB12CD34"
OFFLINE_SN = "0FF11E00"


def make_account() -> FakeAccount:
    offline_from = datetime(2024, 9, 9, 6, 0, tzinfo=UTC)
    return FakeAccount(
        "actions-user",
        "actions-password",
        account_id=9911,
        meters=[
            FakeMeter(SN, (Phase(1500, 1000, 0), Phase(-800, 500, 200), Phase(300, 700, 0))),
            FakeMeter(
                OFFLINE_SN,
                (Phase(400, 20, 0),),
                offline=[
                    (offline_from, offline_from + timedelta(minutes=95)),
                    (offline_from + timedelta(hours=5), offline_from + timedelta(minutes=303)),
                ],
            ),
        ],
        utc_offset=timedelta(hours=2),
    )


@pytest.fixture
async def fake(
    socket_enabled: None, freezer: FrozenDateTimeFactory
) -> AsyncIterator[FakeIamMeterCloud]:
    freezer.move_to(NOW)
    cloud = FakeIamMeterCloud(clock=dt_util.utcnow, accounts=[make_account()])
    await cloud.start()
    yield cloud
    await cloud.stop()


@pytest.fixture
async def entry(hass: HomeAssistant, fake: FakeIamMeterCloud) -> MockConfigEntry:
    account = fake.accounts[0]
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=account.username,
        unique_id=str(account.account_id),
        data={
            CONF_SOURCE: SOURCE_CLOUD,
            CONF_SERVER: fake.url,
            CONF_USERNAME: account.username,
            CONF_PASSWORD: account.password,
            CONF_ACCOUNT_ID: str(account.account_id),
            CONF_TOKEN: fake.issue_token(account.username),
            CONF_REFRESH_TOKEN: "refresh",
        },
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


def device_id(hass: HomeAssistant, serial: str) -> str:
    device = meter_device(hass, serial)
    assert device is not None
    return device.id


async def call(hass: HomeAssistant, service: str, **data: Any) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN, service, data, blocking=True, return_response=True
    )
    assert isinstance(response, dict)
    return response


def calls(cloud: FakeIamMeterCloud, endpoint: str) -> list[Any]:
    return [c for c in cloud.calls if c.endpoint == endpoint]


async def test_power_analysis(
    hass: HomeAssistant, entry: MockConfigEntry, fake: FakeIamMeterCloud
) -> None:
    response = await call(
        hass,
        "power_analysis",
        device_id=device_id(hass, SN),
        start_date="2024-09-01",
        end_date="2024-09-07",
    )
    assert response.keys() == {
        "serial",
        "start_time",
        "end_time",
        "average",
        "average_daytime",
        "minimum",
        "maximum",
    }
    assert response["serial"] == SN
    assert (response["start_time"], response["end_time"]) == ("2024-09-01", "2024-09-07")
    # Phases 1500 W + 300 W import and 800 W export: 1000 W on average, swinging by 40 %.
    assert 900 < response["average"] < 1100
    assert response["minimum"] < response["average"] < response["maximum"]
    assert len(calls(fake, "powerAnalysis")) == 1
    # Without dates: the cloud's default range (the last 7 days).
    response = await call(hass, "power_analysis", device_id=device_id(hass, SN))
    assert response["end_time"] == "2024-09-11"


async def test_offline_analysis(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    response = await call(
        hass,
        "offline_analysis",
        device_id=device_id(hass, OFFLINE_SN),
        start_date=date(2024, 9, 9),
        end_date=date(2024, 9, 9),
        interval=10,
    )
    assert response == {
        "serial": OFFLINE_SN,
        "start_time": "2024-09-09",
        "end_time": "2024-09-09",
        "offline_count": 98,
        "total_count": 1440,
        # Only the gap longer than 10 minutes, in the account's local time.
        "gaps": [
            {
                "start_time": "2024-09-09T08:00:00",
                "end_time": "2024-09-09T09:35:00",
                "duration": 95.0,
            }
        ],
    }


async def test_meter_history(
    hass: HomeAssistant, entry: MockConfigEntry, fake: FakeIamMeterCloud
) -> None:
    response = await call(
        hass,
        "meter_history",
        device_id=device_id(hass, SN),
        start_date="2024-09-10",
        end_date="2024-09-11",
        interval=600,
    )
    assert (response["serial"], response["interval"]) == (SN, 600)
    assert (response["start_date"], response["end_date"]) == ("2024-09-10", "2024-09-11")
    rows = response["rows"]
    assert len(rows) == 2 * 144
    first = rows[0]
    # Local midnight (UTC+2) is 22:00 UTC the day before.
    assert first["measured_at"] == "2024-09-09T22:00:00+00:00"
    assert first["local_time"] == "2024-09-10T00:00:00"
    values = first["reading"]
    assert values["energy_import_kwh"] == pytest.approx(
        values["energy_import_l1_kwh"]
        + values["energy_import_l3_kwh"]
        + values["energy_import_l2_kwh"]
    )
    assert {"voltage_l1_v", "power_factor_l2", "power_w", "grid_power_w"} <= values.keys()
    assert "measured_at" not in values
    # One date, the default interval of 5 minutes: the day up to now.
    response = await call(
        hass, "meter_history", device_id=device_id(hass, SN), start_date="2024-09-12"
    )
    assert response["end_date"] == "2024-09-12"
    assert len(response["rows"]) == 12 * 12 + 1  # 00:00 to 12:03 local time
    assert len(calls(fake, "meterdatalist2")) == 2


async def test_meter_history_too_many_points(
    hass: HomeAssistant, entry: MockConfigEntry, fake: FakeIamMeterCloud
) -> None:
    with pytest.raises(ServiceValidationError) as caught:
        await call(
            hass,
            "meter_history",
            device_id=device_id(hass, SN),
            start_date="2024-09-01",
            end_date="2024-09-07",
            interval=300,
        )
    assert caught.value.translation_key == "too_many_points"
    assert caught.value.translation_placeholders == {
        "points": "2016",
        "max_points": "2000",
        "interval": "300",
        "max_days": "6",
    }
    assert "2016 points" in str(caught.value)
    assert calls(fake, "meterdatalist2") == []
    with pytest.raises(vol.Invalid):
        await call(
            hass,
            "meter_history",
            device_id=device_id(hass, SN),
            start_date="2024-09-01",
            interval=30,
        )


async def test_analysis_budget_says_when_it_works_again(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    fake: FakeIamMeterCloud,
    freezer: FrozenDateTimeFactory,
) -> None:
    await hass.config.async_set_time_zone("Europe/Amsterdam")
    target = device_id(hass, SN)
    first = dt_util.utcnow()
    for _ in range(5):
        await call(hass, "power_analysis", device_id=target)
        freezer.tick(timedelta(minutes=7, seconds=30))
    with pytest.raises(HomeAssistantError) as caught:
        await call(hass, "power_analysis", device_id=target)
    error = caught.value
    assert error.translation_domain == DOMAIN
    assert error.translation_key == "power_analysis_budget"
    # The first of the five calls leaves the rolling day at 12:03 local time (UTC+2) next day.
    assert first + timedelta(days=1) == datetime(2024, 9, 13, 10, 3, tzinfo=UTC)
    assert error.translation_placeholders == {"serial": SN, "retry_at": "2024-09-13 12:03"}
    assert str(error) == (
        f"Meter {SN} has used its 5 power analyses of the day (the IAMMETER cloud's limit). "
        "Try again after 2024-09-13 12:03"
    )
    # The cloud was never asked a sixth time; the other analysis has its own five.
    assert len(calls(fake, "powerAnalysis")) == 5
    await call(hass, "offline_analysis", device_id=target)
    for _ in range(4):
        await call(hass, "offline_analysis", device_id=target)
    with pytest.raises(HomeAssistantError) as caught:
        await call(hass, "offline_analysis", device_id=target)
    assert caught.value.translation_key == "offline_analysis_budget"
    # A day later it works again.
    freezer.move_to(first + timedelta(days=1, seconds=1))
    await call(hass, "power_analysis", device_id=target)


async def test_history_budget(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    target = device_id(hass, SN)
    for _ in range(4):
        await call(hass, "meter_history", device_id=target, start_date="2024-09-11")
    with pytest.raises(HomeAssistantError) as caught:
        await call(hass, "meter_history", device_id=target, start_date="2024-09-11")
    assert caught.value.translation_key == "history_budget"
    assert caught.value.translation_placeholders is not None
    assert caught.value.translation_placeholders["retry_at"] == "2024-09-12 04:03"  # US/Pacific


async def test_cloud_refusals(
    hass: HomeAssistant, entry: MockConfigEntry, fake: FakeIamMeterCloud
) -> None:
    target = device_id(hass, SN)
    fake.inject_fault(1, endpoint="powerAnalysis")  # "returns nothing": rate limited
    with pytest.raises(HomeAssistantError) as caught:
        await call(hass, "power_analysis", device_id=target)
    assert caught.value.translation_key == "cloud_rate_limited"
    # Backed off: no call for an hour.
    with pytest.raises(HomeAssistantError) as caught:
        await call(hass, "power_analysis", device_id=target)
    assert caught.value.translation_key == "power_analysis_budget"
    assert len(calls(fake, "powerAnalysis")) == 1
    fake.inject_fault(1, status=500, endpoint="offlineAnalysis")
    with pytest.raises(HomeAssistantError) as caught:
        await call(hass, "offline_analysis", device_id=target)
    assert caught.value.translation_key == "action_failed"
    assert caught.value.translation_placeholders == {
        "serial": SN,
        "error": "/api/v1/site/offlineAnalysis: HTTP 500",
    }


async def test_invalid_targets(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    with pytest.raises(ServiceValidationError) as caught:
        await call(hass, "power_analysis", device_id="no-such-device")
    assert caught.value.translation_key == "device_not_found"
    assert caught.value.translation_placeholders == {"device_id": "no-such-device"}

    other = MockConfigEntry(domain="other")
    other.add_to_hass(hass)
    foreign = dr.async_get(hass).async_get_or_create(
        config_entry_id=other.entry_id, identifiers={("other", "x")}, name="Kettle"
    )
    with pytest.raises(ServiceValidationError) as caught:
        await call(hass, "offline_analysis", device_id=foreign.id)
    assert caught.value.translation_key == "not_cloud_meter"
    assert caught.value.translation_placeholders == {"name": "Kettle"}

    with pytest.raises(ServiceValidationError) as caught:
        await call(
            hass,
            "power_analysis",
            device_id=device_id(hass, SN),
            start_date="2024-09-07",
            end_date="2024-09-01",
        )
    assert caught.value.translation_key == "end_before_start"

    target = device_id(hass, SN)
    assert await hass.config_entries.async_unload(entry.entry_id)
    with pytest.raises(ServiceValidationError) as caught:
        await call(hass, "meter_history", device_id=target, start_date="2024-09-11")
    assert caught.value.translation_key == "entry_not_loaded"


async def test_action_descriptions(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """services.yaml loads, its selectors are valid, and every field has a translation."""
    descriptions = (await async_get_all_descriptions(hass))[DOMAIN]
    assert descriptions.keys() == {"power_analysis", "offline_analysis", "meter_history"}
    strings = json.loads(
        (Path(__file__).parent.parent / "custom_components/meter_hub/strings.json").read_text()
    )
    for action, description in descriptions.items():
        assert strings["services"][action]["name"]
        assert description["fields"]["device_id"]["selector"]["device"]["filter"] == [
            {"integration": DOMAIN, "manufacturer": "IAMMETER"}
        ]
        for name, field in description["fields"].items():
            selector.validate_selector(field["selector"])
            assert strings["services"][action]["fields"][name]["description"]


# --- who may spend the budget, for which dates (issue 13) ---------------------------------------


@pytest.mark.parametrize(
    ("service", "dates"),
    [
        ("power_analysis", {"start_date": "0001-01-01"}),
        ("power_analysis", {"start_date": "2024-09-01", "end_date": "9999-12-31"}),
        ("offline_analysis", {"start_date": "2014-12-31", "end_date": "2015-01-02"}),
        ("offline_analysis", {"end_date": "2024-09-14"}),
        ("meter_history", {"start_date": "9999-12-31"}),
        ("meter_history", {"start_date": "0001-01-01", "end_date": "0001-01-01"}),
    ],
)
async def test_dates_outside_what_the_cloud_can_have_spend_nothing(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    fake: FakeIamMeterCloud,
    service: str,
    dates: dict[str, str],
) -> None:
    """Before 2015 (IAMMETER's start) or after tomorrow: refused before any call is made."""
    budget = entry.runtime_data.coordinator.budget.ledger.to_dict()
    before = len(fake.calls)
    with pytest.raises(ServiceValidationError) as caught:
        await call(hass, service, device_id=device_id(hass, SN), **dates)
    assert caught.value.translation_key == "date_out_of_range"
    # Home Assistant's local date at NOW is 2024-09-12 (US/Pacific): tomorrow is the last day
    assert caught.value.translation_placeholders is not None
    assert caught.value.translation_placeholders["first"] == "2015-01-01"
    assert caught.value.translation_placeholders["last"] == "2024-09-13"
    assert len(fake.calls) == before
    assert entry.runtime_data.coordinator.budget.ledger.to_dict() == budget


async def test_first_and_last_dates_are_accepted(
    hass: HomeAssistant, entry: MockConfigEntry, fake: FakeIamMeterCloud
) -> None:
    widest = {"start_date": "2015-01-01", "end_date": "2024-09-13"}  # tomorrow in US/Pacific
    await call(hass, "power_analysis", device_id=device_id(hass, SN), **widest)
    assert len(calls(fake, "powerAnalysis")) == 1


@pytest.mark.parametrize(
    ("service", "data"),
    [
        ("power_analysis", {}),
        ("offline_analysis", {}),
        ("meter_history", {"start_date": "2024-09-11"}),
    ],
)
async def test_only_administrators_spend_the_budget(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    fake: FakeIamMeterCloud,
    hass_admin_user: Any,
    hass_read_only_user: Any,
    service: str,
    data: dict[str, Any],
) -> None:
    target = device_id(hass, SN)
    budget = entry.runtime_data.coordinator.budget.ledger.to_dict()
    before = len(fake.calls)

    async def call_as(user_id: str) -> Any:
        return await hass.services.async_call(
            DOMAIN,
            service,
            {"device_id": target, **data},
            blocking=True,
            return_response=True,
            context=Context(user_id=user_id),
        )

    with pytest.raises(Unauthorized):
        await call_as(hass_read_only_user.id)
    with pytest.raises(UnknownUser):
        await call_as("no-such-user")
    assert len(fake.calls) == before
    assert entry.runtime_data.coordinator.budget.ledger.to_dict() == budget

    response = await call_as(hass_admin_user.id)
    assert isinstance(response, dict)
    assert response["serial"] == SN
    assert len(fake.calls) == before + 1
