"""Tests of the HomeWizard API v2 client, against the simulator's v2 devices over real HTTPS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from functools import partial
import logging
import ssl
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from custom_components.meter_hub.api.homewizard.client import HomeWizardClient
from custom_components.meter_hub.api.homewizard.errors import (
    ApiDisabled,
    ButtonNotPressed,
    CannotConnect,
    InvalidPayload,
    NoStorage,
    NotHomeWizard,
    Unauthorized,
    Unsupported,
    UntrustedDevice,
    WrongDevice,
)
from custom_components.meter_hub.api.homewizard.models import HomeWizardDevice
from custom_components.meter_hub.api.homewizard.tls import (
    CA_CERT,
    server_hostname,
    shared_ssl_context,
)
from custom_components.meter_hub.api.homewizard.v2_client import HomeWizardV2Client
from custom_components.meter_hub.api.homewizard.v2_parser import (
    iso_time,
    parse_batteries,
    parse_measurement,
    parse_system,
)
from custom_components.meter_hub.api.model import CONTROL_KEYS, SWITCH_KEYS, ExternalMeter, all_keys
from custom_components.meter_hub.binary_sensor import SWITCH_STATES
from custom_components.meter_hub.sensor_descriptions import SENSORS
from simulator.homewizard_v2 import PROFILES_V2, FakeHomeWizardV2
from simulator.tls import SimulatorAuthority
from tests.conftest import started

AMS = ZoneInfo("Europe/Amsterdam")
USER = "local/home-assistant"

type StartFake = Callable[..., Awaitable[FakeHomeWizardV2]]


@pytest.fixture
async def start_fake(
    socket_enabled: None, authority: SimulatorAuthority
) -> AsyncIterator[StartFake]:
    async for start in started(partial(FakeHomeWizardV2, authority)):
        yield start


def client_for(
    fake: FakeHomeWizardV2,
    session: aiohttp.ClientSession,
    trust: ssl.SSLContext,
    token: str | None = None,
    **kwargs: Any,
) -> HomeWizardV2Client:
    return HomeWizardV2Client(
        session,
        fake.host,
        device_name=fake.server_hostname,
        ssl_context=trust,
        token=token,
        tz=AMS,
        **kwargs,
    )


async def paired(
    fake: FakeHomeWizardV2, session: aiohttp.ClientSession, trust: ssl.SSLContext
) -> HomeWizardV2Client:
    client = client_for(fake, session, trust)
    fake.press()
    await client.create_user(USER)
    return client


# --- parsing: every data point ------------------------------------------------------------------


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=AMS)


def test_p1_measurement_every_data_point() -> None:
    reading = parse_measurement(PROFILES_V2["HWE-P1"].measurement, tz=AMS)
    values = reading.values
    assert values["meter_id"] == "Never Gonna Let You Down"  # hex-encoded ASCII, decoded
    assert values["dsmr_version"] == 50
    assert values["meter_model"] == "ISKRA  2M550T-101"
    assert values["smart_meter_measured_at"] == at("2025-01-15T13:02:30")
    assert values["active_tariff"] == 2
    assert values["energy_import_kwh"] == 13779.338
    assert values["energy_import_t1_kwh"] == 10830.511
    assert values["energy_export_t2_kwh"] == 0
    assert values["power_w"] == -543
    assert values["power_l1_w"] == -676
    assert values["current_a"] == 6
    assert values["current_l1_a"] == -4  # signed per phase
    assert values["voltage_l3_v"] == 231.0
    assert values["voltage_sag_l1_count"] == 1
    assert values["voltage_swell_l3_count"] == 0
    assert values["any_power_fail_count"] == 4
    assert values["long_power_fail_count"] == 5
    assert values["average_power_w"] == 123.0
    assert values["monthly_peak_power_w"] == 1111.0
    assert values["monthly_peak_at"] == at("2025-01-04T10:11:22")
    assert reading.externals == {
        "gas_meter_4E6576657220676F6E6E612072756E2061726F756E64": ExternalMeter(
            meter_id="4E6576657220676F6E6E612072756E2061726F756E64",
            kind="gas_meter",
            value=2569.646,
            unit="m³",
            measured_at=at("2025-01-15T13:00:00"),
        ),
        "water_meter_616E642064657365727420796F75": ExternalMeter(
            meter_id="616E642064657365727420796F75",
            kind="water_meter",
            value=123.456,
            unit="m³",
            measured_at=at("2025-01-15T13:00:00"),
        ),
    }


def data_point_count(profile: str) -> int:
    """The data points a device sends (``external`` is its meters, ``permissions`` two values)."""
    source = PROFILES_V2[profile]
    count = len(source.measurement.keys() - {"external"}) + len(source.system)
    return count + (len(source.batteries) + 1 if source.batteries is not None else 0)


@pytest.mark.parametrize("profile", sorted(PROFILES_V2))
def test_every_vendor_data_point_becomes_a_value(profile: str) -> None:
    """No data point is dropped: every one the device sends yields one canonical value."""
    source = PROFILES_V2[profile]
    values = parse_measurement(source.measurement, tz=AMS).values
    values |= parse_system(source.system)
    if source.batteries is not None:
        values |= parse_batteries(source.batteries)
    assert len(values) == data_point_count(profile)
    assert set(values) <= all_keys()


def test_every_canonical_key_has_an_entity_description() -> None:
    """A value without a description would reach no entity."""
    switches = set(SWITCH_STATES)
    assert switches == SWITCH_KEYS
    controls = set(CONTROL_KEYS)  # switch, number and select entities
    assert all_keys() - switches - controls <= set(SENSORS)
    # a control's state has the control's entity, not a sensor as well
    assert not controls & set(SENSORS)


# Every data point of the vendor's v2 pages (measurement: P1, kWh meters, battery; system;
# batteries), as documented (commit e1a1271 of homewizard/api-documentation), but ``external``.
DOCUMENTED_MEASUREMENT = [
    "unique_id",
    "protocol_version",
    "meter_model",
    "timestamp",
    "tariff",
    "energy_import_kwh",
    "energy_import_t1_kwh",
    "energy_import_t2_kwh",
    "energy_import_t3_kwh",
    "energy_import_t4_kwh",
    "energy_export_kwh",
    "energy_export_t1_kwh",
    "energy_export_t2_kwh",
    "energy_export_t3_kwh",
    "energy_export_t4_kwh",
    "power_w",
    "power_l1_w",
    "power_l2_w",
    "power_l3_w",
    "voltage_v",
    "voltage_l1_v",
    "voltage_l2_v",
    "voltage_l3_v",
    "current_a",
    "current_l1_a",
    "current_l2_a",
    "current_l3_a",
    "frequency_hz",
    "voltage_sag_l1_count",
    "voltage_sag_l2_count",
    "voltage_sag_l3_count",
    "voltage_swell_l1_count",
    "voltage_swell_l2_count",
    "voltage_swell_l3_count",
    "any_power_fail_count",
    "long_power_fail_count",
    "average_power_15m_w",
    "monthly_power_peak_w",
    "monthly_power_peak_timestamp",
    "apparent_current_a",
    "apparent_current_l1_a",
    "apparent_current_l2_a",
    "apparent_current_l3_a",
    "reactive_current_a",
    "reactive_current_l1_a",
    "reactive_current_l2_a",
    "reactive_current_l3_a",
    "apparent_power_va",
    "apparent_power_l1_va",
    "apparent_power_l2_va",
    "apparent_power_l3_va",
    "reactive_power_var",
    "reactive_power_l1_var",
    "reactive_power_l2_var",
    "reactive_power_l3_var",
    "power_factor",
    "power_factor_l1",
    "power_factor_l2",
    "power_factor_l3",
    "state_of_charge_pct",
    "cycles",
]
DOCUMENTED_SYSTEM = [
    "wifi_ssid",
    "wifi_rssi_db",
    "uptime_s",
    "cloud_enabled",
    "status_led_brightness_pct",
    "api_v1_enabled",
]
DOCUMENTED_BATTERIES = [
    "mode",
    "permissions",
    "charge_to_full",
    "battery_count",
    "power_w",
    "target_power_w",
    "max_consumption_w",
    "max_production_w",
]


def documented_value(name: str) -> object:
    if name in ("timestamp", "monthly_power_peak_timestamp"):
        return "2024-06-28T14:12:34"
    if name in ("unique_id", "meter_model", "wifi_ssid"):
        return "ABC"
    if name in ("cloud_enabled", "api_v1_enabled", "charge_to_full"):
        return True
    if name == "mode":
        return "zero"
    if name == "permissions":
        return ["charge_allowed"]
    return 1


def test_every_documented_data_point_is_mapped() -> None:
    """76 names on the vendor's pages: 61 measurements, external meters, 6 system, 8 batteries."""
    assert len(DOCUMENTED_MEASUREMENT) == len(set(DOCUMENTED_MEASUREMENT)) == 61
    measurement = {name: documented_value(name) for name in DOCUMENTED_MEASUREMENT}
    measurement["external"] = [
        {"unique_id": "G1", "type": "gas_meter", "timestamp": "2024-06-28T14:00:00", "value": 1}
    ]
    reading = parse_measurement(measurement, tz=AMS)
    system = parse_system({name: documented_value(name) for name in DOCUMENTED_SYSTEM})
    batteries = parse_batteries({name: documented_value(name) for name in DOCUMENTED_BATTERIES})
    assert len(reading.values) == 61
    assert len(reading.externals) == 1
    assert len(system) == 6
    assert len(batteries) == 9  # permissions: charging and discharging allowed
    keys = [*reading.values, *system, *batteries]
    assert len(keys) == len(set(keys)) == 76
    assert set(keys) <= all_keys()


def test_kwh_meters_and_the_battery() -> None:
    kwh3 = parse_measurement(PROFILES_V2["HWE-KWH3"].measurement, tz=AMS).values
    assert kwh3["apparent_current_l2_a"] == 0.9
    assert kwh3["reactive_current_l1_a"] == -0.2
    assert kwh3["reactive_power_l3_var"] == 57
    assert kwh3["power_factor_l3"] == 0.85
    battery = parse_measurement(PROFILES_V2["HWE-BAT"].measurement, tz=AMS).values
    assert battery["state_of_charge_pct"] == 50
    assert battery["battery_cycles"] == 123
    assert battery["power_w"] == -404
    assert battery["energy_export_kwh"] == 101.234


def test_system_and_batteries() -> None:
    assert parse_system(PROFILES_V2["HWE-P1"].system) == {
        "wifi_ssid": "My Wi-Fi",
        "wifi_rssi_db": -77,
        "cloud_enabled": True,
        "uptime_s": 356,
        "brightness": 100,  # the key of the status light of API v1
        "api_v1_enabled": True,
    }
    assert parse_batteries(PROFILES_V2["HWE-KWH3"].batteries) == {
        "battery_mode": "predictive",
        "battery_charge_allowed": True,
        "battery_discharge_allowed": False,
        "battery_charge_to_full": True,
        "battery_count": 1,
        "battery_group_power_w": 800,
        "battery_group_target_power_w": 800,
        "battery_group_max_consumption_w": 800,
        "battery_group_max_production_w": 800,
    }


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"mode": "boost", "permissions": "charge_allowed"}, {}),
        (
            {"cloud_enabled": 1, "permissions": [None]},
            {
                "battery_charge_allowed": False,
                "battery_discharge_allowed": False,
            },
        ),
    ],
)
def test_unknown_or_ill_typed_values_are_not_reported(
    payload: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert parse_batteries(payload) == expected
    assert parse_system({"cloud_enabled": 1, "uptime_s": -5, "wifi_rssi_db": "x"}) == {}


@pytest.mark.parametrize(
    "raw",
    ["2024-06-28", "2024-06-28T14:12:34Z", "2024-13-28T14:12:34", "28-06-2024T14:12:34", 20240628],
)
def test_iso_time_accepts_only_the_documented_form(raw: object) -> None:
    assert iso_time(raw, AMS) is None
    assert iso_time("2024-06-28T14:12:34", AMS) == at("2024-06-28T14:12:34")


@pytest.mark.parametrize("payload", [[], "measurement", None])
def test_a_measurement_that_is_not_an_object_is_refused(payload: object) -> None:
    with pytest.raises(InvalidPayload):
        parse_measurement(payload, tz=AMS)


# --- TLS ----------------------------------------------------------------------------------------


def test_certificate_names() -> None:
    assert server_hostname("HWE-P1", "5c2fafaabbcc") == "appliance/p1dongle/5c2fafaabbcc"
    assert server_hostname("SDM630-wifi", "aa") == "appliance/energymeter/aa"
    assert server_hostname("HWE-BAT", "bb") == "appliance/battery/bb"
    with pytest.raises(NotHomeWizard):
        server_hostname("HWE-NEW", "cc")


async def test_the_shipped_ca_is_loaded_once_off_the_loop() -> None:
    context = await shared_ssl_context()
    assert context is await shared_ssl_context()
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert [cert["subject"] for cert in context.get_ca_certs()] == [
        (
            (("countryName", "NL"),),
            (("stateOrProvinceName", "ZH"),),
            (("organizationName", "HomeWizard"),),
            (("commonName", "Appliance Access CA"),),
        )
    ]
    assert CA_CERT.parent.name == "homewizard"  # shipped in api/homewizard/


@pytest.mark.usefixtures("refused_handshakes")
async def test_the_product_context_does_not_trust_the_simulator(
    start_fake: StartFake, session: aiohttp.ClientSession
) -> None:
    fake = await start_fake()
    client = client_for(fake, session, await shared_ssl_context())
    fake.press()
    with pytest.raises(UntrustedDevice):
        await client.create_user(USER)
    assert fake.users == {}


@pytest.mark.usefixtures("refused_handshakes")
async def test_another_device_at_the_address_fails_the_certificate_name(
    start_fake: StartFake, session: aiohttp.ClientSession, trust: ssl.SSLContext
) -> None:
    fake = await start_fake(common_name="appliance/p1dongle/000000000000")
    client = client_for(fake, session, trust)
    fake.press()
    with pytest.raises(UntrustedDevice, match="appliance/p1dongle/5c2fafaabbcc"):
        await client.create_user(USER)
    assert fake.users == {}


# --- pairing and polling ------------------------------------------------------------------------


async def test_button_window_no_storage_and_revoked_token(
    start_fake: StartFake,
    session: aiohttp.ClientSession,
    trust: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = await start_fake(max_users=1)
    client = client_for(fake, session, trust)
    with pytest.raises(ButtonNotPressed):
        await client.create_user(USER)
    fake.press()
    token = await client.create_user(USER)
    assert fake.users == {USER: token}
    # the name again: a new token, the old one no longer valid
    old = client_for(fake, session, trust, token=token)
    assert await client.create_user(USER) != token
    with pytest.raises(Unauthorized):
        await old.device()
    with pytest.raises(NoStorage):
        await client.create_user("local/another")
    fake.revoke(USER)
    with pytest.raises(Unauthorized):
        await client.measurement(fake.serial)
    assert token not in caplog.text
    with pytest.raises(ValueError, match="invalid user name"):
        await client.create_user("cloud/x")


async def test_button_window_closes(
    start_fake: StartFake, session: aiohttp.ClientSession, trust: ssl.SSLContext
) -> None:
    fake = await start_fake(button_window=0)
    fake.press()
    with pytest.raises(ButtonNotPressed):
        await client_for(fake, session, trust).create_user(USER)


@pytest.mark.parametrize("profile", sorted(PROFILES_V2))
async def test_measurement_of_every_device(
    start_fake: StartFake, session: aiohttp.ClientSession, trust: ssl.SSLContext, profile: str
) -> None:
    fake = await start_fake(profile)
    client = await paired(fake, session, trust)
    device, reading = await client.measurement(fake.serial)
    assert device.serial == fake.serial
    assert device.meter_info.configuration_url == f"https://{fake.host}"
    assert len(reading.values) == data_point_count(profile)
    await client.measurement(fake.serial)
    assert fake.request_count["/api"] == 1
    assert fake.request_count["/api/measurement"] == 2
    assert fake.request_count.get("/api/batteries", 0) == (2 if fake.batteries else 0)


async def test_meter_firmware_without_batteries_endpoint(
    start_fake: StartFake, session: aiohttp.ClientSession, trust: ssl.SSLContext
) -> None:
    fake = await start_fake("HWE-P1")
    fake.batteries = None
    _, reading = await (await paired(fake, session, trust)).measurement(fake.serial)
    assert "battery_mode" not in reading.values
    assert reading.values["power_w"] == -543


async def test_device_answers_checked(
    start_fake: StartFake, session: aiohttp.ClientSession, trust: ssl.SSLContext
) -> None:
    fake = await start_fake()
    client = await paired(fake, session, trust)
    fake.device["serial"] = "5c2fafaa0000"
    with pytest.raises(WrongDevice):
        await client.device()
    fake.device["api_version"] = "v1"
    with pytest.raises(NotHomeWizard):
        await client.device()


async def test_errors_of_the_transport(
    start_fake: StartFake, session: aiohttp.ClientSession, trust: ssl.SSLContext
) -> None:
    fake = await start_fake()
    client = await paired(fake, session, trust)
    fake.measurement = []  # type: ignore[assignment]
    with pytest.raises(InvalidPayload, match="not an object"):
        await client.measurement(fake.serial)
    await fake.stop()
    with pytest.raises(CannotConnect):
        await client.measurement(fake.serial)


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (403, b'{"error": "user:forbidden"}', ApiDisabled),
        (404, b'{"error": "request:not-found"}', NotHomeWizard),
        (500, b'{"error": "request:internal-server-error"}', CannotConnect),
        (502, b"<html>bad gateway</html>", CannotConnect),
        (200, b"<html>", InvalidPayload),
        (200, b"x" * 70_000, InvalidPayload),
    ],
)
async def test_other_answers(
    start_fake: StartFake,
    session: aiohttp.ClientSession,
    trust: ssl.SSLContext,
    status: int,
    body: bytes,
    error: type[Exception],
) -> None:
    fake = await start_fake()
    client = await paired(fake, session, trust)
    fake.fail_with = (status, body)
    with pytest.raises(error):
        await client.device()


# --- controls -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_version", "modes"),
    [
        ("2.1.0", ("zero", "to_full", "standby")),
        ("2.2.0", ("zero", "to_full", "standby")),
        ("2.3.0", ("zero", "to_full", "standby", "predictive")),
        ("2.10.1", ("zero", "to_full", "standby", "predictive")),
        ("2.x", ("zero", "to_full", "standby")),
    ],
)
def test_battery_modes_follow_the_api_version(api_version: str, modes: tuple[str, ...]) -> None:
    device = HomeWizardDevice("HWE-P1", None, "5c2fafaabbcc", "6.00", api_version, "127.0.0.1")
    assert device.battery_modes == modes
    assert device.meter_info.battery_modes == modes
    battery = HomeWizardDevice("HWE-BAT", None, "5c2fafaabbbb", "1.00", api_version, "127.0.0.1")
    assert battery.meter_info.battery_modes == ()  # it controls no batteries


async def test_each_api_refuses_the_controls_it_lacks(
    session: aiohttp.ClientSession, start_fake: StartFake, trust: ssl.SSLContext
) -> None:
    v1 = HomeWizardClient(session, "127.0.0.1:1")
    for v1_write in (
        v1.reboot(),
        v1.set_battery_mode("zero"),
        v1.allow_battery(charge=True),
        v1.set_battery_charge_to_full(True),
    ):
        with pytest.raises(Unsupported):
            await v1_write
    kwh = await start_fake("HWE-KWH1")
    client = await paired(kwh, session, trust)
    for v2_write in (client.set_power(True), client.set_switch_lock(True), client.identify()):
        with pytest.raises(Unsupported):
            await v2_write
    assert kwh.batteries is not None
    del kwh.batteries["permissions"]  # firmware before API 2.2.0
    with pytest.raises(Unsupported):
        await client.allow_battery(charge=False)
    assert kwh.request_count.get("/api/system/identify") == 1
