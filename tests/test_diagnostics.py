"""Diagnostics of a HomeWizard entry: the entry and the raw payloads, with every identifier redacted.

The download goes through Home Assistant's HTTP API, so what is checked is the JSON a user would
attach to an issue.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from custom_components.meter_hub.diagnostics import REDACTED
from simulator.homewizard import FakeHomeWizard

from .conftest import async_setup_local

FIXTURES = Path(__file__).parent / "fixtures" / "homewizard"

SERIAL = "5c2fafa1b2c3"
METER_ID_HEX = "4530303531303032373331343538323139"
METER_ID_TEXT = "E0051002731458219"  # the hex id decoded, as the reading holds it
GAS_ID = "4730303539303033313233343536373138"
WATER_ID = "5730303431303032393837363534333231"
SSID = "Meter Hub Lab"


async def _diagnostics(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, fake: FakeHomeWizard
) -> dict[str, Any]:
    entry = await async_setup_local(hass, fake)
    result = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert isinstance(result, dict)
    return result


async def test_diagnostics_hold_entry_and_raw_payloads(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    homewizard: FakeHomeWizard,
    snapshot: SnapshotAssertion,
) -> None:
    diagnostics = await _diagnostics(hass, hass_client, homewizard)

    assert diagnostics["entry"] == {
        "title": "P1 meter",
        "unique_id": REDACTED,
        "data": {
            "source": "local",
            "host": REDACTED,
            "serial": REDACTED,
            "product_type": "HWE-P1",
        },
        "options": {},
    }
    assert diagnostics["last_update_success"] is True
    # the last raw payloads, as the device sent them (identifiers aside)
    device = diagnostics["source"]["device"]
    assert device == {
        "product_type": "HWE-P1",
        "product_name": "P1 meter",
        "serial": REDACTED,
        "firmware_version": "4.19",
        "api_version": "v1",
    }
    data = diagnostics["source"]["data"]
    assert data["total_power_import_kwh"] == 15234.567
    assert data["montly_power_peak_timestamp"] == 250114183015
    assert data["unique_id"] == REDACTED
    assert data["gas_unique_id"] == REDACTED
    assert data["wifi_ssid"] == REDACTED
    assert data["external"][0] == {
        "unique_id": REDACTED,
        "type": "gas_meter",
        "timestamp": 250115121000,
        "value": 3312.874,
        "unit": "m3",
    }
    # the normalised reading, with the external meters keyed by a redacted id
    (meter,) = diagnostics["meters"].values()
    assert list(diagnostics["meters"]) == [REDACTED]
    assert meter["reading"]["values"]["energy_import_kwh"] == 15234.567
    assert meter["reading"]["values"]["meter_id"] == REDACTED
    assert sorted(meter["reading"]["externals"]) == [
        f"gas_meter_{REDACTED}",
        f"water_meter_{REDACTED}",
    ]
    assert meter["info"]["configuration_url"] == f"http://{REDACTED}"
    assert diagnostics == snapshot


@pytest.mark.parametrize(
    ("payload", "secrets"),
    [
        pytest.param(None, [METER_ID_HEX, METER_ID_TEXT, GAS_ID, WATER_ID], id="P1"),
        pytest.param("legacy_gas_only", ["4730303432303031"], id="legacy-gas-id"),
        pytest.param("external_heat_gj", ["48303031323334", "57303031323336"], id="heat"),
    ],
)
async def test_no_identifier_anywhere_in_the_download(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    homewizard: FakeHomeWizard,
    payload: str | None,
    secrets: list[str],
) -> None:
    """Host, serial, unique ids, Wi-Fi name, meter ids: not in any value, key or text."""
    if payload is not None:
        homewizard.data = json.loads((FIXTURES / f"{payload}.json").read_text(encoding="utf-8"))
    diagnostics = await _diagnostics(hass, hass_client, homewizard)
    dump = json.dumps(diagnostics)
    for secret in [homewizard.host, "127.0.0.1", SERIAL, SSID, *secrets]:
        assert secret not in dump, secret
    # the ids were really in the payload: the check above is not vacuous
    raw = json.dumps(homewizard.data) + json.dumps(homewizard.device)
    for secret in [SERIAL, SSID, *[s for s in secrets if s != METER_ID_TEXT]]:
        assert secret in raw, secret
