"""Tests of the HomeWizard v1 client, against the fake device over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from custom_components.meter_hub.api.homewizard import client as homewizard_client
from custom_components.meter_hub.api.homewizard.client import HomeWizardClient
from custom_components.meter_hub.api.homewizard.errors import (
    ApiDisabled,
    CannotConnect,
    HomeWizardError,
    InvalidHost,
    InvalidPayload,
    NotHomeWizard,
    WrongDevice,
)
from custom_components.meter_hub.api.homewizard.hosts import normalise_host
from custom_components.meter_hub.api.homewizard.models import MODEL_NAMES, HomeWizardDevice
from custom_components.meter_hub.api.homewizard.parser import parse_data
from custom_components.meter_hub.api.model import ExternalMeter, Reading, all_keys, phase_key
from simulator.homewizard import PROFILES, FakeHomeWizard, meter_timestamp

from .conftest import started

FIXTURES = Path(__file__).parent / "fixtures" / "homewizard"
AMS = ZoneInfo("Europe/Amsterdam")

type StartFake = Callable[..., Awaitable[FakeHomeWizard]]


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def parse_profile(profile: str, tz: Any = AMS) -> Reading:
    source = PROFILES[profile]
    return parse_data(source.data, product_type=source.device["product_type"], tz=tz)


def at(text: str) -> datetime:
    """Return a time of the meter's clock in Amsterdam."""
    return datetime.fromisoformat(text).replace(tzinfo=AMS)


@pytest.fixture
async def start_fake(socket_enabled: None) -> AsyncIterator[StartFake]:
    async for start in started(FakeHomeWizard):
        yield start


# --- parsing: every device type -----------------------------------------------------------------

P1_GAS_ID = "4730303539303033313233343536373138"
P1_WATER_ID = "5730303431303032393837363534333231"

EXPECTED_VALUES: dict[str, dict[str, Any]] = {
    "HWE-P1": {
        "wifi_ssid": "Meter Hub Lab",
        "wifi_strength": 86,
        "dsmr_version": 50,
        "meter_model": "ISKRA  2M550T-101",
        "meter_id": "E0051002731458219",
        "active_tariff": 2,
        "energy_import_kwh": 15234.567,
        "energy_import_t1_kwh": 9876.543,
        "energy_import_t2_kwh": 5358.024,
        "energy_export_kwh": 3210.987,
        "energy_export_t1_kwh": 1234.5,
        "energy_export_t2_kwh": 1976.487,
        "power_w": -412,
        "power_l1_w": -1210,
        "power_l2_w": 533,
        "power_l3_w": 265,
        "voltage_l1_v": 231.2,
        "voltage_l2_v": 229.8,
        "voltage_l3_v": 230.4,
        "current_l1_a": -5,
        "current_l2_a": 2,
        "current_l3_a": 1,
        "frequency_hz": 50.02,
        "voltage_sag_l1_count": 2,
        "voltage_sag_l2_count": 1,
        "voltage_sag_l3_count": 0,
        "voltage_swell_l1_count": 0,
        "voltage_swell_l2_count": 3,
        "voltage_swell_l3_count": 0,
        "any_power_fail_count": 7,
        "long_power_fail_count": 2,
        "average_power_w": 1876.0,
        "monthly_peak_power_w": 4321.0,
        "monthly_peak_at": at("2025-01-14 18:30:15"),
    },
    # 1-phase, no totals sent: none are made up from the tariffs
    "HWE-P1-1phase": {
        "wifi_ssid": "Meter Hub Lab",
        "wifi_strength": 72,
        "dsmr_version": 42,
        "meter_model": "Landis + Gyr  E350",
        "meter_id": "E0042006114477036",
        "active_tariff": 1,
        "energy_import_t1_kwh": 7342.118,
        "energy_import_t2_kwh": 6120.43,
        "energy_export_t1_kwh": 811.2,
        "energy_export_t2_kwh": 1904.655,
        "power_w": 318,
        "power_l1_w": 318,
        "voltage_l1_v": 232.1,
        "current_l1_a": 1,
        "voltage_sag_l1_count": 0,
        "voltage_swell_l1_count": 1,
        "any_power_fail_count": 3,
        "long_power_fail_count": 1,
    },
    # single-tariff products: T1 is the total
    "HWE-SKT": {
        "wifi_ssid": "Meter Hub Lab",
        "wifi_strength": 64,
        "energy_import_kwh": 41.207,
        "energy_export_kwh": 0,
        "power_w": 87.4,
        "power_l1_w": 87.4,
    },
    "SDM230-wifi": {
        "wifi_ssid": "Meter Hub Lab",
        "wifi_strength": 90,
        "energy_import_kwh": 2841,
        "energy_export_kwh": 17.385,
        "power_w": 1210.5,
        "power_l1_w": 1210.5,
    },
    "SDM630-wifi": {
        "wifi_ssid": "Meter Hub Lab",
        "wifi_strength": 58,
        "energy_import_kwh": 3120.664,
        "energy_export_kwh": 6488.02,
        "power_w": -2715.3,
        "power_l1_w": -905.1,
        "power_l2_w": -905.2,
        "power_l3_w": -905,
    },
    "HWE-KWH1": {
        "wifi_ssid": "Meter Hub Lab",
        "wifi_strength": 78,
        "energy_import_kwh": 512.733,
        "energy_export_kwh": 2.04,
        "power_w": 1843.2,
        "power_l1_w": 1843.2,
        "voltage_v": 229.61,
        "current_a": 8.214,
        "apparent_current_a": 8.402,
        "reactive_current_a": 1.765,
        "apparent_power_va": 1929.17,
        "reactive_power_var": 405.3,
        "power_factor": 0.955,
        "frequency_hz": 49.98,
    },
    "HWE-WTR": {
        "wifi_ssid": "Meter Hub Lab",
        "wifi_strength": 67,
        "water_total_m3": 284.615,
        "water_flow_lpm": 6.5,
        "water_offset_m3": 0,
    },
}


@pytest.mark.parametrize("profile", sorted(EXPECTED_VALUES))
def test_parse_profile(profile: str) -> None:
    reading = parse_profile(profile)
    assert reading.values == EXPECTED_VALUES[profile]
    if profile != "HWE-P1":
        assert reading.externals == {}


def test_parse_kwh3_every_electrical_quantity() -> None:
    values = parse_profile("HWE-KWH3").values
    quantities = (
        "power_w",
        "current_a",
        "apparent_current_a",
        "reactive_current_a",
        "apparent_power_va",
        "reactive_power_var",
        "power_factor",
    )
    expected_keys = {"wifi_ssid", "wifi_strength", "energy_import_kwh", "energy_export_kwh"}
    expected_keys |= {"frequency_hz", *quantities}
    expected_keys |= {phase_key(q, p) for q in (*quantities, "voltage_v") for p in (1, 2, 3)}
    assert set(values) == expected_keys
    assert values["energy_import_kwh"] == 1804.35
    assert values["energy_export_kwh"] == 9120.716
    assert values["power_w"] == -5210.4
    assert values["voltage_l2_v"] == 232.87
    assert values["current_l3_a"] == 7.52
    assert values["apparent_current_l1_a"] == 7.58
    assert values["reactive_current_a"] == 2.94
    assert values["apparent_power_l3_va"] == 1765.2
    assert values["reactive_power_l2_var"] == 225.9
    assert values["power_factor"] == 0.984
    assert values["power_factor_l1"] == 0.983
    assert values["frequency_hz"] == 50.01


def test_p1_externals_and_legacy_gas_reported_once() -> None:
    reading = parse_profile("HWE-P1")
    assert reading.externals == {
        f"gas_meter_{P1_GAS_ID}": ExternalMeter(
            meter_id=P1_GAS_ID,
            kind="gas_meter",
            value=3312.874,
            unit="m³",
            measured_at=at("2025-01-15 12:10:00"),
        ),
        f"water_meter_{P1_WATER_ID}": ExternalMeter(
            meter_id=P1_WATER_ID,
            kind="water_meter",
            value=456.789,
            unit="m³",
            measured_at=at("2025-01-15 12:05:00"),
        ),
    }


@pytest.mark.parametrize(
    "fixture_name",
    [path.stem for path in sorted(FIXTURES.glob("*.json"))],
)
def test_fixture_keys_are_canonical(fixture_name: str) -> None:
    reading = parse_data(fixture(fixture_name), product_type="HWE-P1", tz=AMS)
    assert set(reading.values) <= all_keys()


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_profile_keys_are_canonical(profile: str) -> None:
    assert set(parse_profile(profile).values) <= all_keys()


# --- parsing: edge cases ------------------------------------------------------------------------


def test_nulls_mean_not_reported() -> None:
    reading = parse_data(fixture("nulls"), product_type="HWE-WTR", tz=AMS)
    assert reading.values == {
        "wifi_ssid": "Meter Hub Lab",
        "wifi_strength": 61,
        "water_flow_lpm": 0,
        "water_total_m3": 31.207,
    }
    assert reading.externals == {}


def test_absent_keys_mean_not_reported() -> None:
    reading = parse_data(fixture("p1_minimal"), product_type="HWE-P1", tz=AMS)
    assert reading.values == {
        "wifi_ssid": "Meter Hub Lab",
        "dsmr_version": 42,
        "energy_import_t1_kwh": 1520.004,
        "power_w": 742,
    }


def test_unknown_keys_are_ignored() -> None:
    reading = parse_data(fixture("unknown_keys"), product_type="HWE-SKT", tz=AMS)
    assert reading.values == {
        "wifi_ssid": "Meter Hub Lab",
        "wifi_strength": 77,
        "energy_import_kwh": 88.5,
        "energy_export_kwh": 1.25,
        "power_w": 230.4,
        "power_l1_w": 230.4,
    }
    assert reading.externals == {}


def test_p1_without_export() -> None:
    values = parse_data(fixture("p1_no_export"), product_type="HWE-P1", tz=AMS).values
    assert not [key for key in values if "export" in key]
    assert values["energy_import_kwh"] == 20411.908
    assert values["energy_import_t1_kwh"] == 11480.303
    assert values["energy_import_t2_kwh"] == 8931.605
    assert values["meter_id"] == "E0053004046817620"
    assert values["meter_model"] == "Sagemcom  T210-D ESMR5.0"
    assert (values["power_l1_w"], values["power_l2_w"], values["power_l3_w"]) == (402, 611, 473)


def test_wrong_typed_fields_are_dropped() -> None:
    reading = parse_data(fixture("wrong_types"), product_type="HWE-P1", tz=AMS)
    assert reading.values == {"monthly_peak_power_w": 3600.0, "current_l1_a": 3.25}
    assert reading.externals == {}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), 1e308, -1e10])
def test_non_finite_and_absurd_numbers_are_dropped(bad: float) -> None:
    payload = {
        "active_power_w": bad,
        "total_power_import_kwh": bad,
        "active_voltage_l1_v": bad,
        "active_power_factor": bad,
        "wifi_strength": bad,
        "total_gas_m3": bad,
        "external": [{"unique_id": "47", "type": "gas_meter", "value": bad, "unit": "m3"}],
    }
    reading = parse_data(payload, product_type="HWE-P1", tz=AMS)
    assert reading.values == {}
    assert reading.externals["gas_meter_47"].value is None


@pytest.mark.parametrize(("tariff", "kept"), [(1, True), (4, True), (0, False), (5, False)])
def test_active_tariff_range(tariff: int, kept: bool) -> None:
    values = parse_data({"active_tariff": tariff}, product_type="HWE-P1", tz=AMS).values
    assert values == ({"active_tariff": tariff} if kept else {})


@pytest.mark.parametrize(("strength", "kept"), [(0, True), (100, True), (-1, False), (101, False)])
def test_wifi_strength_range(strength: int, kept: bool) -> None:
    values = parse_data({"wifi_strength": strength}, product_type="HWE-P1", tz=AMS).values
    assert values == ({"wifi_strength": strength} if kept else {})


@pytest.mark.parametrize("payload", [[], None, "text", 42, [{"active_power_w": 1}]])
def test_non_object_payload_raises(payload: object) -> None:
    with pytest.raises(InvalidPayload, match="not an object"):
        parse_data(payload, product_type="HWE-P1", tz=AMS)


@pytest.mark.parametrize(
    ("unique_id", "expected"),
    [
        ("4530303531303032373331343538323139", "E0051002731458219"),  # hex ASCII -> text
        ("00112233445566778899AABBCCDDEEFF", "00112233445566778899AABBCCDDEEFF"),  # not text
        ("0A0B", "0A0B"),  # decodes, but to control characters
        ("E0051002731458219", "E0051002731458219"),  # not hex: as sent
        ("4E4", "4E4"),  # odd length
    ],
)
def test_meter_id(unique_id: str, expected: str) -> None:
    values = parse_data({"unique_id": unique_id}, product_type="HWE-P1", tz=AMS).values
    assert values == {"meter_id": expected}


@pytest.mark.parametrize("unique_id", ["", None, 1234, True])
def test_meter_id_invalid(unique_id: object) -> None:
    assert parse_data({"unique_id": unique_id}, product_type="HWE-P1", tz=AMS).values == {}


# --- totals and tariffs ------------------------------------------------------------------------


@pytest.mark.parametrize("product_type", ["HWE-SKT", "HWE-KWH1", "HWE-KWH3", "SDM230-wifi"])
def test_single_tariff_t1_becomes_total(product_type: str) -> None:
    payload = {"total_power_import_t1_kwh": 12.5, "total_power_export_t1_kwh": 3.25}
    values = parse_data(payload, product_type=product_type, tz=AMS).values
    assert values == {"energy_import_kwh": 12.5, "energy_export_kwh": 3.25}


def test_single_tariff_sending_total_and_t1_keeps_both() -> None:
    payload = {
        "total_power_import_kwh": 12.5,
        "total_power_import_t1_kwh": 12.5,
        "total_power_export_t1_kwh": 3.25,
    }
    values = parse_data(payload, product_type="SDM630-wifi", tz=AMS).values
    assert values == {
        "energy_import_kwh": 12.5,
        "energy_import_t1_kwh": 12.5,
        "energy_export_kwh": 3.25,
    }


@pytest.mark.parametrize("product_type", ["HWE-P1", None, "HWE-NEW"])
def test_no_total_is_made_up(product_type: str | None) -> None:
    payload = {"total_power_import_t1_kwh": 12.5, "total_power_import_t2_kwh": 7.5}
    values = parse_data(payload, product_type=product_type, tz=AMS).values
    assert values == {"energy_import_t1_kwh": 12.5, "energy_import_t2_kwh": 7.5}


def test_p1_four_tariffs() -> None:
    payload = {
        f"total_power_{direction}_t{tariff}_kwh": tariff * 10.5
        for direction in ("import", "export")
        for tariff in (1, 2, 3, 4)
    }
    values = parse_data(payload, product_type="HWE-P1", tz=AMS).values
    assert values["energy_import_t3_kwh"] == 31.5
    assert values["energy_export_t4_kwh"] == 42.0
    assert len(values) == 8


# --- external meters and legacy gas -------------------------------------------------------------


def test_external_heat_meter_in_gj() -> None:
    externals = parse_data(fixture("external_heat_gj"), product_type="HWE-P1", tz=AMS).externals
    assert externals == {
        "heat_meter_48303031323334": ExternalMeter(
            "48303031323334", "heat_meter", 48.317, "GJ", at("2025-02-01 07:05:00")
        ),
        "inlet_heat_meter_48303031323335": ExternalMeter(
            "48303031323335", "inlet_heat_meter", 19.04, "m³", at("2025-02-01 07:05:00")
        ),
        "warm_water_meter_57303031323336": ExternalMeter(
            "57303031323336", "warm_water_meter", 61.2, "m³", at("2025-02-01 07:00:00")
        ),
    }


def test_external_unknown_type_kept_and_incomplete_entries_skipped() -> None:
    externals = parse_data(
        fixture("external_unknown_type"), product_type="HWE-P1", tz=AMS
    ).externals
    assert externals == {
        "cooling_meter_43303031": ExternalMeter(
            "43303031", "cooling_meter", 12.5, "kWh", at("2025-03-01 09:30:00")
        ),
        # negative value, no unit, invalid timestamp: the meter stays, its data is not reported
        "water_meter_57303033": ExternalMeter("57303033", "water_meter", None, None, None),
    }


def test_external_ids_as_sent() -> None:
    payload = {
        "external": [
            {"unique_id": True, "type": "gas_meter", "value": 1.0},
            {"unique_id": 5, "type": "water_meter", "value": 2},
            {"unique_id": "", "type": "heat_meter", "value": 3.0},
            {"unique_id": "48", "type": "", "value": 4.0},
        ]
    }
    externals = parse_data(payload, product_type="HWE-P1", tz=AMS).externals
    assert externals == {"water_meter_5": ExternalMeter("5", "water_meter", 2.0, None, None)}
    assert isinstance(externals["water_meter_5"].value, float)


def test_legacy_gas_only() -> None:
    reading = parse_data(fixture("legacy_gas_only"), product_type="HWE-P1", tz=AMS)
    assert reading.externals == {
        "gas_meter_4730303432303031": ExternalMeter(
            "4730303432303031", "gas_meter", 1877.203, "m³", at("2024-06-30 23:00:00")
        )
    }
    assert reading.values["energy_import_t2_kwh"] == 3905.876


def test_legacy_gas_without_id() -> None:
    payload = {"total_gas_m3": 10, "gas_timestamp": 250101000000}
    externals = parse_data(payload, product_type="HWE-P1", tz=AMS).externals
    assert externals == {
        "gas_meter_legacy_gas": ExternalMeter(
            "legacy_gas", "gas_meter", 10.0, "m³", at("2025-01-01 00:00:00")
        )
    }


def test_legacy_gas_without_id_next_to_external_gas_is_not_duplicated() -> None:
    payload = {
        "total_gas_m3": 10.5,
        "external": [{"unique_id": "47", "type": "gas_meter", "value": 10.5, "unit": "m3"}],
    }
    externals = parse_data(payload, product_type="HWE-P1", tz=AMS).externals
    assert list(externals) == ["gas_meter_47"]


@pytest.mark.parametrize("id_key", ["gas_unique_id", "unique_gas_id"])
def test_legacy_gas_with_matching_id_is_not_duplicated(id_key: str) -> None:
    payload = {
        "total_gas_m3": 10.5,
        id_key: "47",
        "external": [
            {"unique_id": "57", "type": "water_meter", "value": 1.5, "unit": "m3"},
            {"unique_id": "47", "type": "gas_meter", "value": 10.5, "unit": "m3"},
        ],
    }
    externals = parse_data(payload, product_type="HWE-P1", tz=AMS).externals
    assert sorted(externals) == ["gas_meter_47", "water_meter_57"]


def test_legacy_gas_of_another_meter_is_kept() -> None:
    payload = {
        "total_gas_m3": 3.5,
        "gas_unique_id": None,
        "unique_gas_id": 4711,  # the doc types it as a Number
        "external": [{"unique_id": "47", "type": "gas_meter", "value": 10.5, "unit": "m3"}],
    }
    externals = parse_data(payload, product_type="HWE-P1", tz=AMS).externals
    assert externals["gas_meter_4711"] == ExternalMeter("4711", "gas_meter", 3.5, "m³", None)
    assert externals["gas_meter_47"].value == 10.5


@pytest.mark.parametrize("gas", [None, -1, "5"])
def test_legacy_gas_without_valid_value(gas: object) -> None:
    payload = {"total_gas_m3": gas, "gas_unique_id": "47", "gas_timestamp": 250101000000}
    assert parse_data(payload, product_type="HWE-P1", tz=AMS).externals == {}


# --- timestamps --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "utc_offset"),
    [
        (AMS, timedelta(hours=2)),  # summer time
        (UTC, timedelta(0)),
        (timezone(timedelta(hours=-5)), timedelta(hours=-5)),
    ],
)
def test_timestamps_in_the_given_time_zone(tz: Any, utc_offset: timedelta) -> None:
    payload = {
        "montly_power_peak_timestamp": 250701120005,
        "external": [{"unique_id": "47", "type": "gas_meter", "timestamp": 250702000500}],
    }
    reading = parse_data(payload, product_type="HWE-P1", tz=tz)
    peak_at = reading.values["monthly_peak_at"]
    assert isinstance(peak_at, datetime)
    assert peak_at.replace(tzinfo=None) == datetime(2025, 7, 1, 12, 0, 5)  # noqa: DTZ001
    assert peak_at.tzinfo is tz
    assert peak_at.utcoffset() == utc_offset
    measured_at = reading.externals["gas_meter_47"].measured_at
    assert measured_at is not None
    assert measured_at.utcoffset() == utc_offset
    assert measured_at.replace(tzinfo=None) == datetime(2025, 7, 2, 0, 5)  # noqa: DTZ001


@pytest.mark.parametrize(
    "stamp",
    [0, -1, 10**12, 250229000000, 251301000000, 250101250000, 250101006000, True, "250101000000"],
)
def test_invalid_timestamps_are_dropped(stamp: object) -> None:
    payload = {"montly_power_peak_timestamp": stamp, "montly_power_peak_w": 3000}
    assert parse_data(payload, product_type="HWE-P1", tz=AMS).values == {
        "monthly_peak_power_w": 3000
    }


# --- host ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.168.1.20", "192.168.1.20"),
        (" 192.168.1.20 ", "192.168.1.20"),
        ("192.168.1.20:8080", "192.168.1.20:8080"),
        ("192.168.1.20:80", "192.168.1.20"),
        ("P1Meter.local", "p1meter.local"),
        ("p1meter-5c2faf", "p1meter-5c2faf"),
        ("p1meter.local.", "p1meter.local."),
        ("p1meter.local:8080", "p1meter.local:8080"),
        ("fe80::1", "[fe80::1]"),
        ("[fe80::1]", "[fe80::1]"),
        ("[FE80:0::1]:8080", "[fe80::1]:8080"),
        ("http://192.168.1.20", "192.168.1.20"),
        ("http://192.168.1.20/", "192.168.1.20"),
        ("HTTP://p1meter.local:8080/", "p1meter.local:8080"),
        ("http://[::1]:81/", "[::1]:81"),
        ("127.0.0.1:080", "127.0.0.1"),
    ],
)
def test_normalise_host_accepts(text: str, expected: str) -> None:
    assert normalise_host(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("http://", "empty"),
        ("https://192.168.1.20", "scheme 'https'"),
        ("ftp://192.168.1.20", "scheme 'ftp'"),
        ("192.168.1.20/api", "path"),
        ("http://192.168.1.20/api/v1/data", "path"),
        ("192.168.1.20?x=1", "query"),
        ("192.168.1.20#top", "fragment"),
        ("admin@192.168.1.20", "credentials"),
        ("http://user:secret@p1meter.local", "credentials"),
        ("192.168.1.20:", "port"),
        ("192.168.1.20:0", "port"),
        ("192.168.1.20:65536", "port"),
        ("192.168.1.20:http", "port"),
        ("192.168.1.20:-1", "port"),
        ("[::1]:", "port"),
        ("[::1]x", "IPv6"),
        ("[::1", "IPv6"),
        ("[192.168.1.20]", "IPv6"),
        ("[fe80::1%eth0]", "zone"),
        ("fe80::zz", "IPv6"),
        ("999.168.1.20", "not a valid IP address or hostname"),
        ("192.168.1", "not a valid IP address or hostname"),
        ("-p1meter.local", "not a valid IP address or hostname"),
        ("p1 meter", "not a valid IP address or hostname"),
        ("p1_meter", "not a valid IP address or hostname"),
        ("a" * 64 + ".local", "not a valid IP address or hostname"),
    ],
)
def test_normalise_host_rejects(text: str, reason: str) -> None:
    with pytest.raises(InvalidHost, match=reason):
        normalise_host(text)


def test_client_rejects_invalid_host() -> None:
    with pytest.raises(InvalidHost, match="path"):
        HomeWizardClient(None, "192.168.1.20/api")  # type: ignore[arg-type]


# --- device info --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("product_type", "product_name", "model"),
    [
        ("HWE-DSP", "Energy Display", "Energy Display"),
        ("HWE-FUTURE", "Future meter", "Future meter"),
        ("HWE-FUTURE", None, "HWE-FUTURE"),
    ],
)
def test_model_name(product_type: str, product_name: str | None, model: str) -> None:
    device = HomeWizardDevice(product_type, product_name, "5c2faf000000", "1.00", "v1", "h")
    assert device.model_name == model
    assert device.meter_info.model == model


EXPECTED_MODELS = {
    "HWE-P1": "P1 Meter",
    "HWE-P1-1phase": "P1 Meter",
    "HWE-SKT": "Energy Socket",
    "HWE-WTR": "Watermeter",
    "HWE-KWH1": "kWh Meter 1-phase",
    "HWE-KWH3": "kWh Meter 3-phase",
    "SDM230-wifi": "kWh Meter 1-phase (SDM230)",
    "SDM630-wifi": "kWh Meter 3-phase (SDM630)",
}


def test_every_profile_has_a_model() -> None:
    assert set(EXPECTED_MODELS) == set(PROFILES)
    assert set(MODEL_NAMES) >= {profile.device["product_type"] for profile in PROFILES.values()}


@pytest.mark.parametrize("profile", sorted(PROFILES))
async def test_device_and_data_over_http(
    start_fake: StartFake, session: aiohttp.ClientSession, profile: str
) -> None:
    fake = await start_fake(profile)
    client = HomeWizardClient(session, f"http://{fake.host}/", tz=AMS)
    device = await client.device()
    source = PROFILES[profile].device
    assert device.product_type == source["product_type"]
    assert device.product_name == source["product_name"]
    assert device.api_version == "v1"
    info = device.meter_info
    assert info.serial == source["serial"]
    assert info.manufacturer == "HomeWizard"
    assert info.model == EXPECTED_MODELS[profile]
    assert info.model_id == source["product_type"]
    assert info.sw_version == source["firmware_version"]
    assert info.configuration_url == f"http://{fake.host}"
    assert client.last_device_payload == source

    assert await client.data() == parse_profile(profile)
    assert client.last_data_payload == PROFILES[profile].data


async def test_data_reads_device_once(
    start_fake: StartFake, session: aiohttp.ClientSession
) -> None:
    fake = await start_fake("HWE-SKT")
    client = HomeWizardClient(session, fake.host)
    first = await client.data()
    await client.data()
    assert fake.request_count == {"/api": 1, "/api/v1/data": 2}
    # the product type was learnt from /api: the socket's T1 is its total
    assert first.values["energy_import_kwh"] == 41.207


async def measured_once(
    start_fake: StartFake, session: aiohttp.ClientSession
) -> tuple[FakeHomeWizard, str, HomeWizardClient, int]:
    """A fake P1 meter, its serial, a client that has read it once, and the fake's port."""
    fake = await start_fake("HWE-P1")
    serial = fake.device["serial"]
    client = HomeWizardClient(session, fake.host, tz=AMS)
    await client.measurement(serial)
    return fake, serial, client, int(fake.host.rpartition(":")[2])


async def test_measurement_reads_api_once_per_connection(
    start_fake: StartFake, session: aiohttp.ClientSession
) -> None:
    fake, serial, client, port = await measured_once(start_fake, session)
    for _ in range(2):
        device, reading = await client.measurement(serial)
    assert device.serial == serial
    assert reading == parse_profile("HWE-P1")
    # one connection (keep-alive): its device was asked who it is once
    assert fake.request_count == {"/api": 1, "/api/v1/data": 3}

    # the device restarts: a new connection, checked again
    await fake.stop()
    await fake.start(port)
    await client.measurement(serial)
    assert fake.request_count == {"/api": 2, "/api/v1/data": 4}


async def test_measurement_knows_every_connection_of_the_pool(
    start_fake: StartFake, session: aiohttp.ClientSession
) -> None:
    """Two requests at once open two connections (another integration polling the same device
    shares the pool): once each has been checked, neither is asked again."""
    fake = await start_fake("HWE-P1")
    serial = fake.device["serial"]
    client = HomeWizardClient(session, fake.host)
    await asyncio.gather(client.measurement(serial), client.measurement(serial))
    asked = fake.request_count["/api"]
    assert asked == 2
    for _ in range(4):
        await client.measurement(serial)
    assert fake.request_count == {"/api": asked, "/api/v1/data": 6}


async def test_measurement_vouches_for_the_pool_it_shares(
    start_fake: StartFake, session: aiohttp.ClientSession
) -> None:
    """Another client of the session keeps two connections to the device and the pool hands
    them out in turn: one ``/api`` answer right after a reading vouches for both."""
    fake = await start_fake("HWE-P1")
    serial = fake.device["serial"]
    client = HomeWizardClient(session, fake.host)

    async def other_client() -> None:
        async def get() -> None:
            async with session.get(f"http://{fake.host}/api/v1/data") as response:
                await response.read()

        await asyncio.gather(get(), get())

    await other_client()
    for _ in range(6):
        await client.measurement(serial)
        await other_client()
    assert fake.request_count["/api"] == 1


async def test_measurement_checks_every_new_connection(
    start_fake: StartFake, session: aiohttp.ClientSession
) -> None:
    """A device that closes the connection after each answer is asked every time."""
    fake = await start_fake("HWE-KWH1")
    fake.keep_alive = False
    client = HomeWizardClient(session, fake.host)
    for _ in range(3):
        await client.measurement(fake.device["serial"])
    assert fake.request_count == {"/api": 3, "/api/v1/data": 3}


async def test_measurement_without_the_connection_checks_every_reading(
    start_fake: StartFake, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An aiohttp that does not tell which connection an answer came over: each reading is
    checked, as if every connection were new."""
    monkeypatch.setattr(homewizard_client, "_connection_of", lambda _: None)
    fake, serial, client, _ = await measured_once(start_fake, session)
    for _ in range(2):
        await client.measurement(serial)
    assert fake.request_count == {"/api": 3, "/api/v1/data": 3}


async def test_measurement_of_another_device_is_dropped(
    start_fake: StartFake, session: aiohttp.ClientSession
) -> None:
    """The address goes to another P1 meter: its reading never comes out of the client."""
    fake, serial, client, port = await measured_once(start_fake, session)
    mine = client.last_data_payload
    await fake.stop()
    other = FakeHomeWizard("HWE-P1")
    other.device["serial"] = "5c2faf999999"
    other.data["total_power_import_kwh"] = 99999.0
    await other.start(port)
    try:
        for _ in range(2):
            with pytest.raises(WrongDevice, match="another device \\(5c2faf999999\\)") as err:
                await client.measurement(serial)
            assert err.value.serial == "5c2faf999999"
            assert client.last_data_payload == mine
        # over its one connection it was asked once; it stays the wrong device
        assert other.request_count == {"/api": 1, "/api/v1/data": 2}
    finally:
        await other.stop()


async def test_measurement_after_a_bad_device_answer_asks_again(
    start_fake: StartFake, session: aiohttp.ClientSession
) -> None:
    """An ``/api`` answer that failed checks nothing: the next reading asks again."""
    fake, serial, client, port = await measured_once(start_fake, session)
    await fake.stop()
    del fake.device["serial"]
    await fake.start(port)
    with pytest.raises(NotHomeWizard):
        await client.measurement(serial)
    with pytest.raises(NotHomeWizard):
        await client.measurement(serial)
    fake.device["serial"] = serial
    await client.measurement(serial)
    assert fake.request_count == {"/api": 4, "/api/v1/data": 4}


async def test_device_without_optional_fields(
    start_fake: StartFake, session: aiohttp.ClientSession
) -> None:
    fake = await start_fake("HWE-P1")
    fake.device = {"product_type": "HWE-P1", "serial": "5c2faf000001", "api_version": "v1"}
    device = await HomeWizardClient(session, fake.host).device()
    assert (device.product_name, device.firmware_version) == (None, None)
    assert device.meter_info.sw_version is None
    assert device.meter_info.model == "P1 Meter"


async def test_timestamps_use_client_time_zone(
    start_fake: StartFake, session: aiohttp.ClientSession
) -> None:
    fake = await start_fake("HWE-P1")
    reading = await HomeWizardClient(session, fake.host).data()
    assert reading.values["monthly_peak_at"] == datetime(2025, 1, 14, 18, 30, 15, tzinfo=UTC)


async def test_nan_literal_in_body_is_dropped(
    start_fake: StartFake, session: aiohttp.ClientSession
) -> None:
    fake = await start_fake("HWE-KWH1")
    client = HomeWizardClient(session, fake.host)
    await client.device()
    fake.body = b'{"active_power_w": NaN, "active_voltage_v": 229.5, "active_current_a": Infinity}'
    assert (await client.data()).values == {"voltage_v": 229.5}


# --- errors -------------------------------------------------------------------------------------


def assert_clean_message(err: HomeWizardError) -> None:
    message = str(err)
    assert message
    assert "Traceback" not in message
    assert "\n" not in message


async def test_connection_refused(start_fake: StartFake, session: aiohttp.ClientSession) -> None:
    fake = await start_fake()
    await fake.stop()  # nothing listens on its port any more
    client = HomeWizardClient(session, fake.host)
    for call in (client.device, client.data):
        with pytest.raises(CannotConnect, match="cannot connect") as err:
            await call()
        assert isinstance(err.value.__cause__, aiohttp.ClientError)
        assert_clean_message(err.value)


async def test_hanging_device_times_out(
    start_fake: StartFake, session: aiohttp.ClientSession
) -> None:
    fake = await start_fake()
    fake.hang = True
    client = HomeWizardClient(session, fake.host, timeout=0.2)
    with pytest.raises(CannotConnect, match=r"did not answer within 0\.2 s") as err:
        await client.device()
    assert isinstance(err.value.__cause__, TimeoutError)
    assert_clean_message(err.value)
    assert fake.request_count["/api"] == 1


@pytest.mark.parametrize("status", [500, 503, 302, 201])
async def test_unexpected_status(
    start_fake: StartFake, session: aiohttp.ClientSession, status: int
) -> None:
    fake = await start_fake()
    fake.status = status
    client = HomeWizardClient(session, fake.host)
    with pytest.raises(CannotConnect, match=f"HTTP status {status}") as err:
        await client.device()
    assert_clean_message(err.value)


async def test_server_error_with_text_body(
    start_fake: StartFake, session: aiohttp.ClientSession
) -> None:
    fake = await start_fake()
    client = HomeWizardClient(session, fake.host)
    await client.device()
    fake.status, fake.body = 500, b"<html>Internal Server Error</html>"
    with pytest.raises(CannotConnect, match="HTTP status 500"):
        await client.data()


async def test_404_on_api_is_not_homewizard(
    start_fake: StartFake, session: aiohttp.ClientSession
) -> None:
    fake = await start_fake()
    fake.status = 404
    with pytest.raises(NotHomeWizard, match="does not exist"):
        await HomeWizardClient(session, fake.host).device()


async def test_404_on_data_is_unexpected(
    start_fake: StartFake, session: aiohttp.ClientSession
) -> None:
    fake = await start_fake()
    client = HomeWizardClient(session, fake.host)
    await client.device()
    fake.status = 404
    with pytest.raises(CannotConnect, match="HTTP status 404"):
        await client.data()


async def test_api_disabled(start_fake: StartFake, session: aiohttp.ClientSession) -> None:
    fake = await start_fake()
    client = HomeWizardClient(session, fake.host)
    await client.device()
    fake.api_enabled = False
    for call in (client.device, client.data):
        with pytest.raises(ApiDisabled, match=r"local API of .* is disabled") as err:
            await call()
        assert_clean_message(err.value)


@pytest.mark.parametrize("status", [200, 400])
async def test_error_id_202_is_api_disabled(
    start_fake: StartFake, session: aiohttp.ClientSession, status: int
) -> None:
    fake = await start_fake()
    fake.status = status
    fake.body = b'{"error": {"id": 202, "description": "API not enabled"}}'
    with pytest.raises(ApiDisabled):
        await HomeWizardClient(session, fake.host).device()


async def test_other_error_id_is_not_api_disabled(
    start_fake: StartFake, session: aiohttp.ClientSession
) -> None:
    fake = await start_fake()
    fake.status = 400
    fake.body = b'{"error": {"id": 2, "description": "Body contains invalid JSON"}}'
    with pytest.raises(CannotConnect, match="HTTP status 400"):
        await HomeWizardClient(session, fake.host).device()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>router login</html>", "did not answer JSON"),
        (b"", "did not answer JSON"),
        (b"\xff\xfe\x00garbage", "did not answer JSON"),
        (b"[1, 2, 3]", "JSON list, not an object"),
        (b"null", "JSON NoneType, not an object"),
        (b'"v1"', "JSON str, not an object"),
    ],
)
async def test_data_not_a_json_object(
    start_fake: StartFake, session: aiohttp.ClientSession, body: bytes, message: str
) -> None:
    fake = await start_fake()
    client = HomeWizardClient(session, fake.host)
    await client.device()
    fake.body = body
    with pytest.raises(InvalidPayload, match=message) as err:
        await client.data()
    assert_clean_message(err.value)
    if message == "did not answer JSON":
        assert isinstance(err.value.__cause__, ValueError)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>router login</html>", "did not answer JSON"),
        (b"[]", "JSON list, not an object"),
        (b'{"name": "router", "version": 3}', "no product_type"),
        (b'{"product_type": "HWE-P1", "api_version": "v1"}', "no serial"),
        (b'{"product_type": "", "serial": "5c2faf000000", "api_version": "v1"}', "no product"),
        (b'{"product_type": "HWE-P1", "serial": 5, "api_version": "v1"}', "no serial"),
        (b'{"product_type": "HWE-P1", "serial": "5c2faf000000"}', "API None"),
        (b'{"product_type": "HWE-P1", "serial": "5c2faf000000", "api_version": "v2"}', "'v2'"),
    ],
)
async def test_api_not_homewizard(
    start_fake: StartFake, session: aiohttp.ClientSession, body: bytes, message: str
) -> None:
    fake = await start_fake()
    fake.body = body
    client = HomeWizardClient(session, fake.host)
    with pytest.raises(NotHomeWizard, match=message) as err:
        await client.device()
    assert_clean_message(err.value)
    assert fake.request_count == {"/api": 1}


def test_errors_share_a_base() -> None:
    for error in (CannotConnect, ApiDisabled, NotHomeWizard, InvalidPayload, InvalidHost):
        assert issubclass(error, HomeWizardError)


# --- the fake device ----------------------------------------------------------------------------


def test_fake_counters_only_increase_and_follow_power() -> None:
    fake = FakeHomeWizard("HWE-P1", seed=3)
    counters = [key for key in fake.data if key.startswith("total_power_")]
    before = {key: fake.data[key] for key in counters}
    powers = set()
    for _ in range(240):
        previous = {key: fake.data[key] for key in counters}
        fake.advance(15)
        powers.add(fake.data["active_power_w"] > 0)
        assert all(fake.data[key] >= previous[key] for key in counters)
        phases = sum(fake.data[f"active_power_l{phase}_w"] for phase in (1, 2, 3))
        assert fake.data["active_power_w"] == pytest.approx(phases, abs=0.1)
    assert powers == {True, False}  # the P1 meter both imports and exports
    tariff = fake.data["active_tariff"]
    assert (
        fake.data[f"total_power_import_t{tariff}_kwh"] > before[f"total_power_import_t{tariff}_kwh"]
    )
    grown = fake.data["total_power_import_kwh"] - before["total_power_import_kwh"]
    assert grown == pytest.approx(
        fake.data["total_power_import_t2_kwh"] - before["total_power_import_t2_kwh"], abs=0.002
    )
    assert fake.data["total_power_import_t1_kwh"] == before["total_power_import_t1_kwh"]


def test_fake_socket_power_stays_in_range() -> None:
    fake = FakeHomeWizard("HWE-SKT", seed=1)
    for _ in range(500):
        fake.advance(60)
        assert 0 <= fake.data["active_power_w"] <= 3680
    assert fake.data["total_power_export_t1_kwh"] == 0


def test_fake_gas_steps_every_five_minutes() -> None:
    fake = FakeHomeWizard("HWE-P1", start=datetime(2025, 3, 1, 10, 3, tzinfo=AMS))
    gas = fake.data["external"][0]
    fake.advance(60)  # 10:04
    assert gas["timestamp"] == 250115121000
    fake.advance(60)  # 10:05
    assert gas["timestamp"] == 250301100500
    first = gas["value"]
    fake.advance(16 * 60)  # 10:21: three more steps
    assert gas["timestamp"] == 250301102000
    assert gas["value"] >= first
    assert fake.data["total_gas_m3"] == gas["value"]
    assert fake.data["gas_timestamp"] == gas["timestamp"]
    assert fake.data["external"][1]["timestamp"] == 250301102000
    assert meter_timestamp(fake.now) == 250301102100


def test_fake_water_meter_flows() -> None:
    fake = FakeHomeWizard("HWE-WTR", seed=2)
    total = fake.data["total_liter_m3"]
    fake.advance(600)
    assert fake.data["total_liter_m3"] > total
    assert 0 <= fake.data["active_liter_lpm"] <= 20
    fake.advance(0)  # no time, no change
    fake.advance(-5)


def test_fake_does_not_share_profile_payloads() -> None:
    fake = FakeHomeWizard("HWE-P1")
    fake.advance(3600)
    assert fake.data != PROFILES["HWE-P1"].data
    assert PROFILES["HWE-P1"].data["total_power_export_kwh"] == 3210.987


async def test_fake_auto_advance(start_fake: StartFake, session: aiohttp.ClientSession) -> None:
    fake = await start_fake("HWE-WTR", auto_advance=True)
    client = HomeWizardClient(session, fake.host)
    start = fake.now
    await client.data()
    await client.data()
    assert fake.now > start
    assert fake.host == f"127.0.0.1:{fake.host.rsplit(':', 1)[1]}"
