"""Diagnostics of an IAMMETER account: secrets and identifiers redacted, SNs shortened.

The history jobs' state is in the download too (with the recorder), the place id redacted.

The download goes through Home Assistant's HTTP API: what is checked is the JSON a user would
attach to an issue.
"""

from __future__ import annotations

from datetime import timedelta
import json
from pathlib import Path
from typing import Any

# Imported before a test freezes the clock: the diagnostics download imports it, and with the
# clock frozen, mashumaro on Home Assistant 2025.4 cannot compile its dataclasses.
import aiohasupervisor  # noqa: F401
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.recorder import Recorder
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from custom_components.meter_hub.const import (
    CONF_ACCOUNT_ID,
    CONF_PLACE_ID,
    CONF_REFRESH_TOKEN,
    CONF_SERVER,
    CONF_SOURCE,
    CONF_TOKEN,
    SOURCE_CLOUD,
)
from custom_components.meter_hub.diagnostics import REDACTED, short_serials
from simulator.iammeter import VENDOR_EXAMPLE_LOGIN, FakeIamMeterCloud

from .conftest import async_poll, async_setup_cloud

VENDOR_METERSDATA = (
    Path(__file__).parent / "fixtures" / "iammeter" / "metersdata.json"
).read_bytes()
SNS = ["DA2BED94", "B384789C", "674B1E5D", "59C9AB8D", "3FE34ABE"]
SHORT = ["DA2B…", "B384…", "674B…", "59C9…", "3FE3…"]
PLACE = "2393"  # a place of the fake's vendor example account


@pytest.fixture
def mock_recorder_before_hass(async_test_recorder: Any) -> None:
    """Let the recorder's database fixtures resolve before ``hass`` (the history's test)."""


async def test_cloud_diagnostics_redact_secrets_and_shorten_sns(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,  # before hass_client: its access token is issued at the fake's time
    freezer: FrozenDateTimeFactory,
    hass_client: ClientSessionGenerator,
) -> None:
    cloud.inject_fault(endpoint="metersdata", body=VENDOR_METERSDATA)
    entry = await async_setup_cloud(hass, cloud)
    # a rejected token: the entry now holds a token and a refresh token from a real login
    cloud.expire_tokens()
    await async_poll(hass, freezer, 305)
    token, refresh_token = entry.data[CONF_TOKEN], entry.data[CONF_REFRESH_TOKEN]
    assert len(token) == len(refresh_token) == 32
    await async_poll(hass, freezer, 305)

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    dump = json.dumps(diagnostics, ensure_ascii=False)
    username, password = VENDOR_EXAMPLE_LOGIN
    for secret in (password, token, refresh_token, "fake-refresh-token", username, "2025", *SNS):
        assert secret not in dump, secret

    assert diagnostics["entry"] == {
        "title": f"IAMMETER account {REDACTED}",  # (named after the account number)
        "unique_id": REDACTED,
        "data": {
            CONF_SOURCE: SOURCE_CLOUD,
            CONF_SERVER: cloud.url,
            "username": REDACTED,
            "password": REDACTED,
            CONF_ACCOUNT_ID: REDACTED,
            CONF_TOKEN: REDACTED,
            CONF_REFRESH_TOKEN: REDACTED,
        },
        "options": {},
    }
    assert diagnostics["last_update_success"] is True
    assert sorted(diagnostics["meters"]) == sorted(SHORT)
    meter = diagnostics["meters"]["DA2B…"]
    assert meter["info"] == {
        "serial": "DA2B…",
        "manufacturer": "IAMMETER",
        "model": "Single-phase meter (WEM3080)",
        "model_id": None,
        "name": "IAMMETER DA2B…",
        "sw_version": None,
        "configuration_url": None,
        "controls": [],  # a cloud meter cannot be controlled
        "battery_modes": [],
    }
    assert meter["reading"]["values"]["energy_import_kwh"] > 14761
    assert meter["reading"]["externals"] == {}

    source = diagnostics["source"]
    assert [item["sn"] for item in source["metersdata"]] == SHORT
    assert source["metersdata"][0]["values"][3] > 14761  # the raw answer, values intact
    assert source["fetched_at"] == (cloud.clock()).isoformat()
    # the next poll is due 5 minutes after the last call, and a tenth of a second
    assert source["next_poll_at"] == (cloud.clock() + timedelta(seconds=300.1)).isoformat()
    # the budget shows its calls, the account id in it redacted
    assert list(source["budget"]["calls"]["metersdata"]) == [REDACTED]
    assert len(source["budget"]["calls"]["login"]["login"]) == 1
    assert diagnostics["history"] is None  # no recorder here: no history jobs


async def test_diagnostics_after_a_failed_poll(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,  # before hass_client: its access token is issued at the fake's time
    freezer: FrozenDateTimeFactory,
    hass_client: ClientSessionGenerator,
) -> None:
    entry = await async_setup_cloud(hass, cloud)
    cloud.inject_fault(5, endpoint="metersdata", status=503)
    for _ in range(4):
        await async_poll(hass, freezer, timedelta(minutes=5, seconds=5).total_seconds())
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert diagnostics["last_update_success"] is False
    # the last good answer is still there, for the issue report
    assert [item["sn"] for item in diagnostics["source"]["metersdata"]] == SHORT
    assert entry.data[CONF_TOKEN] not in json.dumps(diagnostics)


def test_short_serials_stay_unique() -> None:
    assert short_serials(["DA2BED94", "DA2BFF01", "3FE34ABE"]) == {
        "DA2BED94": "DA2B…94",
        "DA2BFF01": "DA2B…01",
        "3FE34ABE": "3FE3…",
    }


async def test_cloud_diagnostics_hold_the_history_state(
    recorder_mock: Recorder,
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,  # before hass_client: its access token is issued at the fake's time
    hass_client: ClientSessionGenerator,
    snapshot: SnapshotAssertion,
) -> None:
    """Gaps, retry times, failures, the learned clock and the last place sync; the place id is
    redacted like the SNs (an identifier of the user's site)."""
    cloud.inject_fault(status=500, endpoint="meterdatalist2")  # one meter's history fails once
    entry = await async_setup_cloud(hass, cloud, **{CONF_PLACE_ID: PLACE})
    await hass.async_block_till_done(wait_background_tasks=True)

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    dump = json.dumps(diagnostics, ensure_ascii=False)
    for identifier in (PLACE, *SNS):
        assert identifier not in dump, identifier
    assert diagnostics["entry"]["options"] == {CONF_PLACE_ID: REDACTED}
    history = diagnostics["history"]
    # The first setup's week is written for every meter but the one whose history failed; the
    # gap stays until the recorder's first hour joins the week.
    [gap] = history["gaps"]["gaps"]
    assert (gap["new"], sorted(gap["serials"])) == (True, sorted(SHORT))
    assert sorted(gap["written"]) == sorted(set(SHORT) - {"3FE3…"})
    assert history["backfill"]["failures"] == {"3FE3…": 1}
    assert history["clock"]["offset_min"] is not None  # learned from the history rows
    assert history["place_sync"][CONF_PLACE_ID] == REDACTED
    assert history == snapshot
    # The history's run is over before the recorder is torn down.
    await hass.async_block_till_done(wait_background_tasks=True)
