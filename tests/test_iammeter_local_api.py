"""Tests of the IAMMETER local client, against the fake meters over real HTTP on 127.0.0.1."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from custom_components.meter_hub.api.iammeter import MeterShape
from custom_components.meter_hub.api.iammeter.local import (
    AuthRequired,
    CannotConnect,
    Credentials,
    IamMeterLocalClient,
    NoSerial,
    NotIamMeter,
    NotReady,
    TooManyRequests,
    WrongMeter,
    parse_monitor,
)
from custom_components.meter_hub.api.model import all_keys
from simulator.hostile import gzip_bomb
from simulator.iammeter_local import FAILURES_BEFORE_429, RETRY_AFTER_S

from .conftest import StartMeter

# --- every documented shape ---------------------------------------------------------------------


async def test_single_phase_newest_firmware(
    start_meter: StartMeter, session: aiohttp.ClientSession
) -> None:
    """WEM3080, /api/monitor: 7 values, model, firmware, SSID and signal."""
    fake = await start_meter("WEM3080", serial="DA2BED94")
    meter = await IamMeterLocalClient(session, fake.host).monitor()
    assert meter.serial == "DA2BED94"
    assert meter.shape is MeterShape.SINGLE_PHASE_FULL
    assert meter.reading.values == {
        "voltage_v": 230.1,
        "current_a": 5.215,
        "power_w": 1200.0,
        "grid_power_w": 1200.0,
        "energy_import_kwh": 1523.456,
        "energy_export_kwh": 12.5,
        "frequency_hz": 50.01,
        "power_factor": 0.97,
        "wifi_ssid": "home-wifi",
        "wifi_strength": 78,
    }
    info = meter.meter_info(fake.host)
    assert (info.manufacturer, info.model, info.sw_version) == ("IAMMETER", "WEM3080", "i.91.065.3")
    assert info.configuration_url == f"http://{fake.host}"
    assert fake.request_count == {"/api/monitor": 1}


async def test_single_phase_five_values_older_firmware(
    start_meter: StartMeter, session: aiohttp.ClientSession
) -> None:
    """Firmware without /api/monitor: /monitorjson from then on, 5 values, model from the shape."""
    fake = await start_meter("WEM3080-5")
    client = IamMeterLocalClient(session, fake.host)
    meter = await client.monitor()
    await client.monitor()
    assert meter.shape is MeterShape.SINGLE_PHASE_BASIC
    assert set(meter.reading.values) == {
        "voltage_v",
        "current_a",
        "power_w",
        "grid_power_w",
        "energy_import_kwh",
        "energy_export_kwh",
    }
    assert meter.meter_info(fake.host).model == "Single-phase meter (WEM3080)"
    assert meter.meter_info(fake.host).sw_version == "1.75.49"
    assert fake.request_count == {"/api/monitor": 1, "/monitorjson": 2}


async def test_three_phase_sums_phases(
    start_meter: StartMeter, session: aiohttp.ClientSession
) -> None:
    """WEM3080T without net metering: the totals are the sums of the phases."""
    fake = await start_meter("WEM3080T")
    meter = await IamMeterLocalClient(session, fake.host).monitor()
    values = meter.reading.values
    assert meter.shape is MeterShape.THREE_PHASE
    assert values["power_w"] == values["grid_power_w"] == 1260.0
    assert values["energy_import_kwh"] == 3362.206
    assert values["energy_export_kwh"] == 326.625
    assert values["power_l2_w"] == -350.0
    assert values["reactive_power_l1_var"] == -119.0
    assert values["reactive_power_l3_var"] == -118.0
    assert values["reactive_energy_inductive_l3_kvarh"] == 0.007
    assert values["reactive_energy_capacitive_l1_kvarh"] == 258.703
    assert set(values) <= all_keys()


async def test_three_phase_net_row_is_never_summed(
    start_meter: StartMeter, session: aiohttp.ClientSession
) -> None:
    """With the net row, the counters and the signed grid power are the row's, not sums."""
    fake = await start_meter("WEM3080T-NEM")
    meter = await IamMeterLocalClient(session, fake.host).monitor()
    values = meter.reading.values
    assert meter.shape is MeterShape.THREE_PHASE_NET
    assert values["energy_import_kwh"] == 2975.0
    assert values["energy_export_kwh"] == 140.25
    assert values["grid_power_w"] == 1260.0
    assert values["energy_import_l1_kwh"] == 1523.456


async def test_net_row_appearing_and_disappearing(
    start_meter: StartMeter, session: aiohttp.ClientSession
) -> None:
    """Net metering switched on and off: the shape follows, the totals switch meaning."""
    fake = await start_meter("WEM3080T")
    client = IamMeterLocalClient(session, fake.host)
    assert (await client.monitor()).shape is MeterShape.THREE_PHASE
    fake.net_metering = True
    assert (await client.monitor()).reading.values["energy_import_kwh"] == 2975.0
    fake.net_metering = False
    assert (await client.monitor()).reading.values["energy_import_kwh"] == 3362.206


async def test_wem3162_answer_without_serial_is_no_device(
    start_meter: StartMeter, session: aiohttp.ClientSession
) -> None:
    """The WEM3162's older answer (lower-case data, no SN) is read but makes no device."""
    fake = await start_meter("WEM3162")
    with pytest.raises(NoSerial):
        await IamMeterLocalClient(session, fake.host).monitor()


async def test_values_move_with_time(
    start_meter: StartMeter, session: aiohttp.ClientSession
) -> None:
    fake = await start_meter("WEM3080T-NEM")
    client = IamMeterLocalClient(session, fake.host)
    before = (await client.monitor()).reading.values
    fake.advance(60)
    after = (await client.monitor()).reading.values
    assert after["power_w"] != before["power_w"]
    assert after["energy_import_kwh"] >= before["energy_import_kwh"]


# --- not ready, security, faults -----------------------------------------------------------------


async def test_not_ready_after_boot(
    start_meter: StartMeter, session: aiohttp.ClientSession
) -> None:
    """HTTP 400 with null values and the serial "null": no values yet, then the meter."""
    fake = await start_meter("WEM3080")
    fake.not_ready_polls = 2
    client = IamMeterLocalClient(session, fake.host)
    for _ in range(2):
        with pytest.raises(NotReady):
            await client.monitor()
    assert (await client.monitor()).serial == "5DB50BF4"


@pytest.mark.parametrize(
    "payload",
    [
        {"SN": "null", "Data": [None] * 5},
        {"SN": "A1", "Datas": [[None] * 7] * 3},
        {"SN": "A1", "Data": None},
    ],
)
def test_not_ready_shapes(payload: dict[str, Any]) -> None:
    with pytest.raises(NotReady):
        parse_monitor(payload)


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"product_type": "HWE-P1"},
        {"SN": "\ud800", "Data": [230.0, 1.0, 2.0, 3.0, 4.0]},
        {"SN": "x" * 65, "Data": [230.0, 1.0, 2.0, 3.0, 4.0]},
        {"SN": "A1", "Data": [230.0, 1.0]},
        {"SN": "A1", "Datas": [[230.0, 1.0, 2.0, 3.0, 4.0]] * 2},
    ],
)
def test_not_a_meter(payload: object) -> None:
    with pytest.raises(NotIamMeter):
        parse_monitor(payload)


def test_hostile_fields_are_left_out() -> None:
    meter = parse_monitor(
        {
            "SN": "A1",
            "model": "\u202e3080",
            "version": "x" * 500,
            "ssid": "line\nbreak",
            "sig": 1e300,
            "Data": [230.0, 1.0, 1e300, float("nan"), -5.0, 50.0, 3.0],
            "EA": {"Reactive": [["a"], None, [1e30]]},
        }
    )
    assert meter.model is None
    assert meter.firmware is None
    assert meter.reading.values == {"voltage_v": 230.0, "current_a": 1.0, "frequency_hz": 50.0}


def test_reactive_rows_keep_what_is_valid() -> None:
    """A short row gives what it has; a negative or absurd counter is "not reported"."""
    meter = parse_monitor(
        {
            "SN": "A1",
            "Datas": [[230.0, 1.0, 100.0, 1.0, 0.0, 50.0, 1.0]] * 3,
            "EA": {"Reactive": [[-5.0], [1.0, -2.0, 1e11], [2.0, 3.5, 4.25]]},
        }
    )
    reactive = {k: v for k, v in meter.reading.values.items() if k.startswith("reactive")}
    assert reactive == {
        "reactive_power_l1_var": -5.0,
        "reactive_power_l2_var": 1.0,
        "reactive_power_l3_var": 2.0,
        "reactive_energy_inductive_l3_kvarh": 3.5,
        "reactive_energy_capacitive_l3_kvarh": 4.25,
    }


async def test_admin_security_401_then_credentials(
    start_meter: StartMeter, session: aiohttp.ClientSession
) -> None:
    fake = await start_meter("WEM3080")
    fake.password = "s3cret"
    with pytest.raises(AuthRequired) as err:
        await IamMeterLocalClient(session, fake.host).monitor()
    assert "s3cret" not in str(err.value)
    credentials = Credentials("admin", "s3cret")
    assert "s3cret" not in repr(credentials)
    client = IamMeterLocalClient(session, fake.host, credentials=credentials)
    assert (await client.monitor()).serial


async def test_429_retry_after_is_obeyed(
    start_meter: StartMeter, session: aiohttp.ClientSession
) -> None:
    """After 429 the client sends nothing until Retry-After has passed."""
    fake = await start_meter("WEM3080")
    fake.password = "s3cret"
    client = IamMeterLocalClient(session, fake.host, credentials=Credentials("admin", "wrong"))
    for _ in range(FAILURES_BEFORE_429):
        with pytest.raises(AuthRequired):
            await client.monitor()
    with pytest.raises(TooManyRequests) as err:
        await client.monitor()
    assert err.value.retry_after == timedelta(seconds=RETRY_AFTER_S)
    sent = fake.request_count.total()
    for _ in range(3):
        with pytest.raises(TooManyRequests):
            await client.monitor()
    assert fake.request_count.total() == sent


@pytest.mark.parametrize(("header", "wait"), [({}, 60), ({"Retry-After": "5"}, 5)])
async def test_429_is_never_hammered(
    start_meter: StartMeter,
    session: aiohttp.ClientSession,
    header: dict[str, str],
    wait: int,
) -> None:
    """Without Retry-After the client waits a minute of its own; with it, what it says."""
    fake = await start_meter("WEM3080")
    fake.status, fake.headers = 429, header
    client = IamMeterLocalClient(session, fake.host)
    with pytest.raises(TooManyRequests) as err:
        await client.monitor()
    assert err.value.retry_after == timedelta(seconds=wait)
    for _ in range(5):
        with pytest.raises(TooManyRequests):
            await client.monitor()
    assert fake.request_count.total() == 1


async def test_another_meter_at_the_address(
    start_meter: StartMeter, session: aiohttp.ClientSession
) -> None:
    fake = await start_meter("WEM3080T", serial="NEWMETER")
    with pytest.raises(WrongMeter) as err:
        await IamMeterLocalClient(session, fake.host).monitor("5DB50BF4")
    assert err.value.serial == "NEWMETER"


async def test_body_is_capped(start_meter: StartMeter, session: aiohttp.ClientSession) -> None:
    fake = await start_meter("WEM3080")
    fake.body = b'{"SN": "' + b"A" * 100_000 + b'"}'
    with pytest.raises(NotIamMeter, match="larger than"):
        await IamMeterLocalClient(session, fake.host).monitor()
    fake.body = gzip_bomb(1024 * 1024)
    with pytest.raises(NotIamMeter):
        await IamMeterLocalClient(session, fake.host).monitor()


async def test_unreachable_and_server_error(
    start_meter: StartMeter, session: aiohttp.ClientSession
) -> None:
    fake = await start_meter("WEM3080")
    fake.status = 500
    with pytest.raises(CannotConnect):
        await IamMeterLocalClient(session, fake.host).monitor()
    host = fake.host
    await fake.stop()
    with pytest.raises(CannotConnect):
        await IamMeterLocalClient(session, host, timeout=2).monitor()


async def test_a_redirect_or_a_full_answer_with_400_is_no_meter(
    start_meter: StartMeter, session: aiohttp.ClientSession
) -> None:
    """Redirects are refused; a 400 is a meter's only with its not-ready body."""
    fake = await start_meter("WEM3080")
    async with session.get(f"http://{fake.host}/api/monitor") as response:
        fake.body = await response.read()
    fake.status = 400
    with pytest.raises(NotIamMeter, match="HTTP 400"):
        await IamMeterLocalClient(session, fake.host).monitor()
    fake.status = 302
    with pytest.raises(CannotConnect, match="redirect"):
        await IamMeterLocalClient(session, fake.host).monitor()
