"""Tests of the IAMMETER cloud client, against the fake cloud over real HTTP on 127.0.0.1.

The vendor document's own examples (tests/fixtures/iammeter) are served raw through the fake's
fault injection, so the client parses them exactly as the vendor sends them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
import json
import math
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
import pytest

from custom_components.meter_hub.api.budget import LOGIN_KEY, BudgetExceeded, CallBudget, CallKind
from custom_components.meter_hub.api.iammeter import (
    ApiError,
    CannotConnect,
    Credentials,
    EnergyHistoryRow,
    IamMeterClient,
    IamMeterError,
    InvalidAuth,
    InvalidResponse,
    MeterShape,
    OfflineAnalysis,
    OfflineGap,
    PowerAnalysis,
    RateLimited,
    Redirected,
    TokenRejected,
    max_history_days,
    parse_meters_data,
    parse_values,
)
from custom_components.meter_hub.api.model import MeterInfo, all_keys, phase_key
from simulator.iammeter import DEMO_LOGIN, VENDOR_EXAMPLE_LOGIN, FakeIamMeterCloud, ManualClock

FIXTURES = Path(__file__).parent / "fixtures" / "iammeter"
TOKEN = "s3cr3t-t0ken-5f2a"  # made up; must never leak


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def utc(*args: int) -> datetime:
    return local(*args).replace(tzinfo=UTC)


def local(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A time of the account's wall clock: naive, as the API gives no zone."""
    return datetime(year, month, day, hour, minute, second)  # noqa: DTZ001


def phase(n: int, *values: float | None) -> dict[str, Any]:
    """Expected keys of one phase row (V, I, P, import, export[, Hz, PF]) for phase ``n``."""
    names = (
        "voltage_v",
        "current_a",
        "power_w",
        "energy_import_kwh",
        "energy_export_kwh",
        "frequency_hz",
        "power_factor",
    )
    return {phase_key(q, n): v for q, v in zip(names, values, strict=False) if v is not None}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def cloud(socket_enabled: None, clock: ManualClock) -> AsyncIterator[FakeIamMeterCloud]:
    fake = FakeIamMeterCloud(clock)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def client(cloud: FakeIamMeterCloud, session: aiohttp.ClientSession) -> IamMeterClient:
    """A client with a made-up token: for answers served raw by ``inject_fault``."""
    return IamMeterClient(session, cloud.url, token=TOKEN, timeout=2)


async def logged_in(
    cloud: FakeIamMeterCloud, session: aiohttp.ClientSession, login: tuple[str, str]
) -> IamMeterClient:
    client = IamMeterClient(session, cloud.url + "/", timeout=2)
    await client.login(*login)
    return client


# --- the vendor document's examples -------------------------------------------------------------

METERSDATA_EXAMPLE: dict[str, tuple[MeterShape, str, dict[str, Any]]] = {
    "DA2BED94": (
        MeterShape.SINGLE_PHASE_BASIC,
        "Single-phase meter (WEM3080)",
        {
            "voltage_v": 223.71,
            "current_a": 1.74,
            "power_w": 225.0,
            "energy_import_kwh": 14761.03,
            "energy_export_kwh": 0.0,
            "grid_power_w": 225.0,
            "measured_at": utc(2024, 2, 22, 3, 46, 20),
        },
    ),
    # Phase C is all null: absent. The 4th row is the net result: the totals are its counters
    # (never 21228 + 8988.48), and without phase C there is no phase power sum.
    "B384789C": (
        MeterShape.THREE_PHASE_NET,
        "Three-phase meter",
        {
            **phase(1, 248.9, 13.9, 3356, 21228, 0),
            **phase(2, 248.9, 13.9, -2747, 8988.48, 18489.44),
            "voltage_v": 248.9,
            "grid_power_w": -2747.0,
            "energy_import_kwh": 8988.48,
            "energy_export_kwh": 18489.44,
            "measured_at": utc(2024, 2, 22, 3, 45, 15),
        },
    ),
    "674B1E5D": (
        MeterShape.THREE_PHASE,
        "Three-phase meter",
        {
            **phase(1, 220.4, 1.86, 377, 5345.985, 20.565),
            **phase(2, 220.4, 1.86, 377, 5367.715, 0.033),
            **phase(3, 220.5, 1.86, 377, 5369.532, 0.033),
            "power_w": 1131.0,
            "grid_power_w": 1131.0,
            "energy_import_kwh": 16083.232,
            "energy_export_kwh": 20.631,
            "measured_at": utc(2024, 2, 22, 3, 45, 50),
        },
    ),
    "59C9AB8D": (
        MeterShape.THREE_PHASE_NET,
        "Three-phase meter",
        {
            **phase(1, 245.3, 6.5, 1604, 46055.7, 0),
            **phase(2, 245.3, 6.5, -910, 15726.73, 8956.56),
            "voltage_v": 245.3,
            "grid_power_w": -910.0,
            "energy_import_kwh": 15726.73,
            "energy_export_kwh": 8956.56,
            "measured_at": utc(2024, 2, 22, 3, 45, 15),
        },
    ),
    "3FE34ABE": (
        MeterShape.THREE_PHASE,
        "Three-phase meter",
        {
            **phase(1, 230, 15.9, 3650.1, 2704.35, 0, 49.99, 0.94),
            **phase(2, 230, -11.5, -2650.1, 1411.31, 1722.35, 49.99, 0.94),
            **phase(3, 230, 4.3, 1000, 1946.03, 0, 49.99, 0.94),
            "power_w": 2000.0,
            "grid_power_w": 2000.0,
            "energy_import_kwh": 6061.69,
            "energy_export_kwh": 1722.35,
            "measured_at": utc(2024, 2, 22, 3, 46, 1),
        },
    ),
}


async def test_metersdata_vendor_example(cloud: FakeIamMeterCloud, client: IamMeterClient) -> None:
    cloud.inject_fault(body=fixture("metersdata"))
    meters = await client.meters_data()
    assert list(meters) == list(METERSDATA_EXAMPLE)
    for sn, (shape, model, values) in METERSDATA_EXAMPLE.items():
        meter = meters[sn]
        assert (meter.sn, meter.shape, meter.local_time) == (sn, shape, None)
        assert meter.reading.values == values
        assert meter.measured_at == values["measured_at"]
        assert meter.meter_info == MeterInfo(
            serial=sn, manufacturer="IAMMETER", model=model, name=f"IAMMETER {sn}"
        )
        assert set(meter.reading.values) <= all_keys()
    # The raw answer is kept and parses to the same readings (a stored answer after a restart).
    assert parse_meters_data(client.last_meters_payload) == meters


@pytest.mark.parametrize(
    ("name", "advanced", "shape", "local", "values"),
    [
        (
            "meterdata_single_basic",
            False,
            MeterShape.SINGLE_PHASE_BASIC,
            local(2020, 8, 28, 15, 27, 33),
            {
                "voltage_v": 230.22,
                "current_a": 1.3,
                "power_w": 119.0,
                "energy_import_kwh": 1766.59,
                "energy_export_kwh": 0.0,
                "grid_power_w": 119.0,
                "measured_at": utc(2020, 8, 28, 5, 27, 33),
            },
        ),
        (
            "meterdata2_single",
            True,
            MeterShape.SINGLE_PHASE_PF,
            local(2023, 11, 21, 14, 30, 22),
            {
                "voltage_v": 233.41,
                "current_a": 0.718,
                "power_w": 111.0,
                "power_factor": 0.66,
                "energy_import_kwh": 5724.85,
                "energy_export_kwh": 0.0,
                "grid_power_w": 111.0,
                "measured_at": utc(2023, 11, 21, 6, 30, 22),
            },
        ),
        (
            # Phase C reports zeros (not nulls): it is present and counts in the totals.
            "meterdata_three_basic",
            False,
            MeterShape.THREE_PHASE,
            local(2020, 8, 28, 15, 30, 48),
            {
                **phase(1, 242.6, 1.0, 216, 32354.6, 0),
                **phase(2, 242.6, 1.0, 1986, 30536.41, 17704.72),
                **phase(3, 0, 0, 0, 0, 0),
                "power_w": 2202.0,
                "grid_power_w": 2202.0,
                "energy_import_kwh": 62891.01,
                "energy_export_kwh": 17704.72,
                "measured_at": utc(2020, 8, 28, 5, 30, 48),
            },
        ),
        (
            "meterdata2_three",
            True,
            MeterShape.THREE_PHASE,
            local(2023, 11, 21, 14, 39, 36),
            {
                **phase(1, 233.8, 0.03, 4, 222.53, 0),
                "power_factor_l1": 0.57,
                **phase(2, 5, 0, 0, 0, 0),
                "power_factor_l2": 0.0,
                **phase(3, 3.1, 0, 0, 0, 0),
                "power_factor_l3": 0.0,
                "power_w": 4.0,
                "grid_power_w": 4.0,
                "energy_import_kwh": 222.53,
                "energy_export_kwh": 0.0,
                "measured_at": utc(2023, 11, 21, 6, 39, 36),
            },
        ),
    ],
)
async def test_meterdata_vendor_examples(
    cloud: FakeIamMeterCloud,
    client: IamMeterClient,
    *,
    name: str,
    advanced: bool,
    shape: MeterShape,
    local: datetime,
    values: dict[str, Any],
) -> None:
    cloud.inject_fault(body=fixture(name), endpoint="meterdata2" if advanced else "meterdata")
    meter = await client.meter_data("ABCD1234", advanced=advanced)
    assert (meter.sn, meter.shape, meter.local_time) == ("ABCD1234", shape, local)
    assert meter.reading.values == values


async def test_meterdatalist_vendor_examples(
    cloud: FakeIamMeterCloud, client: IamMeterClient
) -> None:
    day = date(2023, 9, 12)
    cloud.inject_fault(body=fixture("meterdatalist_single"), endpoint="meterdatalist")
    single = await client.meter_data_list("SN1", day, day, 60, advanced=False)
    # Flat rows: the first time string is the local one (0:00 of the requested day), then UTC.
    assert [(row.measured_at, row.local_time) for row in single] == [
        (utc(2023, 9, 11, 14, 0, 34), local(2023, 9, 12, 0, 0, 34)),
        (utc(2023, 9, 11, 14, 1, 33), local(2023, 9, 12, 0, 1, 33)),
    ]
    assert single[1].shape is MeterShape.SINGLE_PHASE_BASIC
    assert single[1].reading.values == {
        "voltage_v": 229.43,
        "current_a": 1.45,
        "power_w": 172.0,
        "energy_import_kwh": 13121.56,
        "energy_export_kwh": 0.0,
        "grid_power_w": 172.0,
        "measured_at": utc(2023, 9, 11, 14, 1, 33),
    }

    cloud.inject_fault(body=fixture("meterdatalist_three"), endpoint="meterdatalist")
    three = await client.meter_data_list("SN3", day, day, 60, advanced=False)
    assert [row.measured_at for row in three] == [
        utc(2023, 9, 11, 16, 0, 15),
        utc(2023, 9, 11, 16, 2, 8),
    ]
    assert three[0].shape is MeterShape.THREE_PHASE
    assert three[0].reading.values == {
        **phase(1, 230, 0, 0, 468.41, 0),
        **phase(2, 230, 0, 0, 236.58, 290.77),
        **phase(3, 230, 0, 0, 258.62, 0),
        "power_w": 0.0,
        "grid_power_w": 0.0,
        "energy_import_kwh": 963.61,
        "energy_export_kwh": 290.77,
        "measured_at": utc(2023, 9, 11, 16, 0, 15),
    }

    cloud.inject_fault(body=fixture("meterdatalist2_three"), endpoint="meterdatalist2")
    rows = await client.meter_data_list("SN3", date(2023, 9, 1), date(2023, 9, 1), 300)
    assert [(row.measured_at, row.local_time) for row in rows] == [
        (utc(2023, 8, 31, 16, 0, 22), local(2023, 9, 1, 0, 0, 22)),
        (utc(2023, 9, 1, 0, 0, 49), local(2023, 9, 1, 8, 0, 49)),
        (utc(2023, 9, 1, 8, 0, 24), local(2023, 9, 1, 16, 0, 24)),
    ]
    assert rows[2].shape is MeterShape.THREE_PHASE
    assert rows[2].reading.values["power_factor_l1"] == 0.57
    assert rows[2].reading.values["energy_import_kwh"] == 210.27
    assert rows[2].reading.values["voltage_l3_v"] == 3.4


async def test_analysis_vendor_examples(cloud: FakeIamMeterCloud, client: IamMeterClient) -> None:
    cloud.inject_fault(body=fixture("power_analysis"))
    assert await client.power_analysis("SN1", date(2023, 9, 1), date(2023, 9, 7)) == PowerAnalysis(
        date(2023, 9, 1), date(2023, 9, 7), 862.6, 836.9, 259.0, 3999.0
    )
    cloud.inject_fault(body=fixture("offline_analysis"))
    assert await client.offline_analysis("SN1", interval_min=5) == OfflineAnalysis(
        start_time=date(2023, 9, 5),
        end_time=date(2023, 9, 11),
        offline_count=906,
        total_count=10080,
        gaps=[OfflineGap(local(2023, 9, 5), local(2023, 9, 5, 15, 6, 14), 906.0)],
    )


async def test_energy_history_vendor_examples(
    cloud: FakeIamMeterCloud, client: IamMeterClient
) -> None:
    cloud.inject_fault(body=fixture("energyhistory_day_1360"))
    rows = await client.energy_history(1360, date(2024, 5, 5), date(2024, 5, 7), "day")
    assert rows == [
        EnergyHistoryRow(local(2024, 5, 5), 0.0, 9.62, 0.0, 0.0, 0.0),
        EnergyHistoryRow(local(2024, 5, 6), 0.0, 9.16, 0.0, 0.0, 0.0),
    ]
    cloud.inject_fault(body=fixture("energyhistory_day_2393"))
    rows = await client.energy_history(2393, date(2024, 5, 5), date(2024, 5, 7), "day")
    assert rows[1] == EnergyHistoryRow(local(2024, 5, 6), 0.1, 0.22, 7.15, 0.0, 0.0)
    cloud.inject_fault(body=fixture("energyhistory_hour_2393"))
    rows = await client.energy_history("2393", date(2024, 5, 5), date(2024, 5, 6), "hour")
    assert [row.time for row in rows] == [local(2024, 5, 5, hour) for hour in range(24)]


async def test_login_vendor_example(cloud: FakeIamMeterCloud, client: IamMeterClient) -> None:
    cloud.inject_fault(body=fixture("login"))
    credentials = await client.login("test", "123456")
    assert credentials == Credentials(
        "2025", "349dfxxxxxxac5169", "8adf75e5da10424985f3b83855133982"
    )
    assert repr(credentials) == "Credentials(account_id='2025')"
    assert "349df" not in str(credentials)


# --- parsing rules ------------------------------------------------------------------------------

ROW7 = [230.0, 2.0, 400.0, 100.0, 5.0, 50.0, 0.9]


def test_single_phase_seven_values() -> None:
    shape, values = parse_values([ROW7])
    assert shape is MeterShape.SINGLE_PHASE_FULL
    assert values == {
        "voltage_v": 230.0,
        "current_a": 2.0,
        "power_w": 400.0,
        "energy_import_kwh": 100.0,
        "energy_export_kwh": 5.0,
        "frequency_hz": 50.0,
        "power_factor": 0.9,
        "grid_power_w": 400.0,
    }


def test_single_phase_without_power() -> None:
    shape, values = parse_values([230.0, 2.0, None, 100.0, 5.0])
    assert shape is MeterShape.SINGLE_PHASE_BASIC
    assert values == {
        "voltage_v": 230.0,
        "current_a": 2.0,
        "energy_import_kwh": 100.0,
        "energy_export_kwh": 5.0,
    }


@pytest.mark.parametrize(
    "bad",
    ["230", True, math.nan, math.inf, -math.inf, 1e12, -5, 10**400, None, [1], {"v": 1}],
)
def test_wrong_values_are_dropped(bad: object) -> None:
    _, values = parse_values([[bad, 2.0, 400.0, 100.0, 5.0, 50.0, 0.9]])
    assert "voltage_v" not in values
    _, values = parse_values([[230.0, 2.0, 400.0, bad, 5.0, 50.0, 1.5]])
    assert "energy_import_kwh" not in values
    assert "power_factor" not in values  # 1.5 is no power factor
    assert values["energy_export_kwh"] == 5.0


@pytest.mark.parametrize(
    "values",
    [None, {}, "230", 5, [], [[1, 2, 3, 4]], [ROW7, ROW7], [ROW7] * 5, [1.0, ROW7], [1.0] * 8],
)
def test_unknown_layouts_raise(values: object) -> None:
    with pytest.raises(InvalidResponse):
        parse_values(values)


def test_missing_phase_makes_totals_absent() -> None:
    shape, values = parse_values([ROW7, ROW7, [None] * 7])
    assert shape is MeterShape.THREE_PHASE
    assert values["power_l2_w"] == 400.0
    assert not {"power_w", "grid_power_w", "energy_import_kwh", "energy_export_kwh"} & set(values)
    assert not [key for key in values if "_l3" in key]
    # One counter missing in one phase: only that total is absent, never smaller.
    _, values = parse_values([ROW7, [*ROW7[:3], None, *ROW7[4:]], ROW7])
    assert "energy_import_kwh" not in values
    assert values["energy_export_kwh"] == 15.0
    assert values["power_w"] == 1200.0


def test_net_row_is_never_a_phase() -> None:
    net = [231.0, 0.0, 1200.0, 80.0, 3.0, 49.98, 0.95]
    shape, values = parse_values([ROW7, ROW7, ROW7, net])
    assert shape is MeterShape.THREE_PHASE_NET
    assert (values["energy_import_kwh"], values["energy_export_kwh"]) == (80.0, 3.0)
    assert (values["power_w"], values["grid_power_w"]) == (1200.0, 1200.0)
    assert (values["voltage_v"], values["frequency_hz"], values["power_factor"]) == (
        231.0,
        49.98,
        0.95,
    )
    assert "current_a" not in values  # the net row's current is a placeholder
    assert not [key for key in values if "_l4" in key]
    # The net counters missing: the totals are absent, not the sum of the phases.
    _, values = parse_values([ROW7, ROW7, ROW7, [231.0, 0.0, 1200.0, None, None, None, None]])
    assert not {"energy_import_kwh", "energy_export_kwh"} & set(values)


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "retry_after"),
    [
        (200, b"", {}, RateLimited, None),
        (200, b" \n", {}, RateLimited, None),
        (429, b"", {"Retry-After": "120"}, RateLimited, timedelta(seconds=120)),
        (429, b"", {"Retry-After": "999999999"}, RateLimited, timedelta(days=1)),
        (429, b"", {"Retry-After": "Wed, 21 Oct 2025 07:28:00 GMT"}, RateLimited, None),
        (500, b"oops", {}, CannotConnect, None),
        (503, b"", {}, CannotConnect, None),
        (401, b"", {}, TokenRejected, None),
        (403, b"", {}, TokenRejected, None),
        (404, b"<html>Not found</html>", {}, InvalidResponse, None),
        (200, b"<html>maintenance</html>", {}, InvalidResponse, None),
        (200, b'{"data": [', {}, InvalidResponse, None),
        (200, b"[1, 2]", {}, InvalidResponse, None),
        (200, b'{"data": []}', {}, InvalidResponse, None),
        (400, b'{"data": [], "successful": true}', {}, InvalidResponse, None),
        (200, b'{"data": 5, "successful": true}', {}, InvalidResponse, None),
        (200, b'{"data": [5], "successful": true}', {}, InvalidResponse, None),
        (
            200,
            b'{"data": [{"values": [1, 2, 3, 4, 5]}], "successful": true}',
            {},
            InvalidResponse,
            None,
        ),
    ],
)
async def test_http_errors(
    cloud: FakeIamMeterCloud,
    client: IamMeterClient,
    *,
    status: int,
    body: bytes,
    headers: dict[str, str],
    error: type[IamMeterError],
    retry_after: timedelta | None,
) -> None:
    cloud.inject_fault(status=status, body=body, headers=headers)
    with pytest.raises(error) as caught:
        await client.meters_data()
    assert type(caught.value) is error
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == retry_after
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("Invalid token.", TokenRejected),
        ("Token expired", TokenRejected),
        ("Invalid SN.", ApiError),
        (None, ApiError),
        ("Too many requests, try later", RateLimited),
    ],
)
async def test_refusals(
    cloud: FakeIamMeterCloud,
    client: IamMeterClient,
    message: str | None,
    error: type[IamMeterError],
) -> None:
    body = {"data": None, "successful": False, "message": message}
    cloud.inject_fault(body=json.dumps(body).encode())
    with pytest.raises(error) as caught:
        await client.meter_data("SN1")
    assert type(caught.value) is error
    assert caught.value.vendor_message == message


async def test_data_null_carries_the_message(
    cloud: FakeIamMeterCloud, client: IamMeterClient
) -> None:
    cloud.inject_fault(body=b'{"data": null, "successful": true, "message": "No data yet"}')
    with pytest.raises(InvalidResponse, match="No data yet") as caught:
        await client.meter_data("SN1")
    assert caught.value.vendor_message == "No data yet"


async def test_unreadable_times(cloud: FakeIamMeterCloud, client: IamMeterClient) -> None:
    body = b'{"data": {"values": [[230, 1, 100, 5, 0]], "gmtTime": "yesterday", "localTime": 5}, "successful": true}'
    cloud.inject_fault(body=body)
    meter = await client.meter_data("SN1")
    assert (meter.measured_at, meter.local_time) == (None, None)
    assert "measured_at" not in meter.reading.values
    assert meter.reading.values["power_w"] == 100.0


async def test_login_refused(cloud: FakeIamMeterCloud, session: aiohttp.ClientSession) -> None:
    client = IamMeterClient(session, cloud.url)
    with pytest.raises(InvalidAuth) as caught:
        await client.login(VENDOR_EXAMPLE_LOGIN[0], "wrong password")
    assert caught.value.vendor_message == "Invalid username or password"
    assert "wrong password" not in str(caught.value)
    cloud.inject_fault(status=403)
    with pytest.raises(InvalidAuth):
        await client.login(*VENDOR_EXAMPLE_LOGIN)
    cloud.inject_fault(body=b'{"data": {"id": 1, "token": ""}, "successful": true}')
    with pytest.raises(InvalidResponse):
        await client.login(*VENDOR_EXAMPLE_LOGIN)
    # No token yet: an authenticated call is refused without a request.
    calls = len(cloud.calls)
    with pytest.raises(TokenRejected):
        await client.meters_data()
    assert len(cloud.calls) == calls


async def test_timeout(cloud: FakeIamMeterCloud, session: aiohttp.ClientSession) -> None:
    cloud.inject_fault(hang_s=5)
    client = IamMeterClient(session, cloud.url, token=TOKEN, timeout=0.2)
    with pytest.raises(CannotConnect, match=r"no answer within 0\.2 s"):
        await client.meters_data()


async def test_secrets_never_leak(cloud: FakeIamMeterCloud, client: IamMeterClient) -> None:
    # A redirect loop whose location holds the token: not followed, and not repeated.
    location = f"{cloud.url}/api/v1/site/metersdata?token={TOKEN}"
    cloud.inject_fault(20, status=302, headers={"Location": location})
    with pytest.raises(Redirected, match="HTTP 302 redirect, not followed") as caught:
        await client.meters_data()
    assert len(cloud.calls) == 1
    for text in (str(caught.value), repr(caught.value)):
        assert TOKEN not in text
        assert "?token" not in text
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


async def test_cannot_connect(socket_enabled: None, session: aiohttp.ClientSession) -> None:
    cloud = FakeIamMeterCloud()
    port = await cloud.start()
    await cloud.stop()  # nothing listens on the port any more
    client = IamMeterClient(session, f"http://127.0.0.1:{port}", token=TOKEN)
    with pytest.raises(CannotConnect) as caught:
        await client.meters_data()
    assert TOKEN not in str(caught.value)
    client = IamMeterClient(session, "http://", token=TOKEN)
    with pytest.raises(CannotConnect, match="InvalidUrl"):
        await client.meters_data()


async def test_token_sent_in_the_header_only(
    socket_enabled: None, session: aiohttp.ClientSession
) -> None:
    seen: list[tuple[str, str, str | None, str | None, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        seen.append(
            (
                request.method,
                request.path,
                request.query.get("token"),
                request.headers.get("token"),
                body,
            )
        )
        data: Any = {"id": 7, "token": TOKEN} if request.path.endswith("login") else []
        return web.json_response({"data": data, "successful": True, "message": None})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        client = IamMeterClient(session, f"http://127.0.0.1:{runner.addresses[0][1]}")
        credentials = await client.login("user", "pw")
        assert (credentials.account_id, credentials.refresh_token) == ("7", None)
        assert await client.meters_data() == {}
    finally:
        await runner.cleanup()
    assert seen == [
        ("POST", "/api/v1/user/login", None, None, {"userName": "user", "password": "pw"}),
        ("GET", "/api/v1/site/metersdata", None, TOKEN, None),
    ]


async def test_history_rows_are_checked(cloud: FakeIamMeterCloud, client: IamMeterClient) -> None:
    day = date(2024, 2, 21)
    for body in (
        b'{"data": [5], "successful": true}',
        b'{"data": [[1, 2, 3]], "successful": true}',
    ):
        cloud.inject_fault(body=body)
        with pytest.raises(InvalidResponse):
            await client.meter_data_list("SN1", day, day, 300)
    cloud.inject_fault(body=b'{"data": [[1, 2, 3, 4, 5, 6, 7, 8, "a", "b"]], "successful": true}')
    with pytest.raises(InvalidResponse, match="8 values"):
        await client.meter_data_list("SN1", day, day, 300)
    # A row without a usable UTC time cannot be placed: it is left out.
    body = b'{"data": [{"rtcTime": "x", "gmtTime": null, "values": [[1, 2, 3, 4, 5]]}], "successful": true}'
    cloud.inject_fault(body=body)
    assert await client.meter_data_list("SN1", day, day, 300) == []
    body = (
        b'{"data": [{"time": null}, {"time": "2024/5/5 1:00:00", "yield": -1}], "successful": true}'
    )
    cloud.inject_fault(body=body)
    rows = await client.energy_history(1, day, day + timedelta(days=1), "hour")
    assert rows == [EnergyHistoryRow(local(2024, 5, 5, 1), None, None, None, None, None)]
    cloud.inject_fault(body=b'{"data": [7], "successful": true}')
    with pytest.raises(InvalidResponse):
        await client.energy_history(1, day, day + timedelta(days=1), "hour")
    cloud.inject_fault(body=b'{"data": {"startTime": "2023-13-01", "list": 5}, "successful": true}')
    with pytest.raises(InvalidResponse):
        await client.offline_analysis("SN1")
    cloud.inject_fault(body=b'{"data": {"startTime": "2023-13-01"}, "successful": true}')
    assert await client.power_analysis("SN1") == PowerAnalysis(None, None, None, None, None, None)


async def test_ranges_are_checked(client: IamMeterClient) -> None:
    assert (max_history_days(60), max_history_days(300)) == (1, 6)
    day = date(2024, 2, 1)
    for start, end, interval in [
        (day, day + timedelta(days=1), 60),
        (day, day + timedelta(days=6), 300),
        (day, day, 30),
        (day, day - timedelta(days=1), 300),
    ]:
        with pytest.raises(ValueError, match="points at most"):
            await client.meter_data_list("SN1", start, end, interval)
    for days, groupby in [(8, "hour"), (91, "day"), (0, "day")]:
        with pytest.raises(ValueError, match="outside"):
            await client.energy_history(1, day, day + timedelta(days=days), groupby)  # type: ignore[arg-type]


# --- against the fake cloud's own behaviour -----------------------------------------------------


async def test_values_move_with_the_clock(
    cloud: FakeIamMeterCloud, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    client = await logged_in(cloud, session, DEMO_LOGIN)
    shapes = {sn: meter.shape for sn, meter in (await client.meters_data()).items()}
    assert shapes == {
        "10A5C0DE": MeterShape.SINGLE_PHASE_BASIC,
        "17A5C0DE": MeterShape.SINGLE_PHASE_FULL,
        "37A5C0DE": MeterShape.THREE_PHASE,
        "4EA5C0DE": MeterShape.THREE_PHASE_NET,
    }
    last: dict[str, dict[str, Any]] = {}
    powers: set[float] = set()
    for _ in range(24 * 12):  # a day, one poll every 5 minutes
        clock.advance(timedelta(minutes=5))
        for sn, meter in (await client.meters_data()).items():
            values = meter.reading.values
            assert meter.measured_at is not None
            assert clock.now - timedelta(minutes=1) < meter.measured_at <= clock.now
            for key, value in values.items():
                if key.endswith("_kwh") and key in last.get(sn, {}):
                    assert value >= last[sn][key], (sn, key)
            powers.add(values["grid_power_w"])  # type: ignore[arg-type]
            last[sn] = values
    assert len(powers) > 500
    # The net-metering meter: its totals are the net counters, not the sum of its phases.
    nem = last["4EA5C0DE"]
    phase_sum = sum(nem[phase_key("energy_import_kwh", n)] for n in (1, 2, 3))
    assert nem["energy_import_kwh"] < 1000 < phase_sum
    assert nem["grid_power_w"] == pytest.approx(nem["power_w"], abs=0.2)
    assert not [call for call in cloud.calls if call.over_limit]


async def test_vendor_limits(
    cloud: FakeIamMeterCloud, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    client = await logged_in(cloud, session, VENDOR_EXAMPLE_LOGIN)
    # meterdata and meterdata2 share 12 calls an hour per SN.
    for n in range(12):
        await client.meter_data("3FE34ABE", advanced=bool(n % 2))
    with pytest.raises(RateLimited):
        await client.meter_data("3FE34ABE")
    await client.meter_data("DA2BED94")  # another SN has its own count
    clock.advance(timedelta(hours=1))
    await client.meter_data("3FE34ABE")
    # metersdata once per 5 minutes per account.
    await client.meters_data()
    clock.advance(timedelta(minutes=4, seconds=59))
    with pytest.raises(RateLimited):
        await client.meters_data()
    clock.advance(timedelta(seconds=1))
    await client.meters_data()
    # The analysis calls: 5 a day per SN, each its own count.
    for _ in range(5):
        await client.power_analysis("3FE34ABE")
    with pytest.raises(RateLimited):
        await client.power_analysis("3FE34ABE")
    await client.offline_analysis("3FE34ABE")
    over = [(call.endpoint, call.key) for call in cloud.calls if call.over_limit]
    assert over == [
        ("meterdata2", "3FE34ABE"),
        ("metersdata", "2025"),
        ("powerAnalysis", "3FE34ABE"),
    ]


async def test_login_limits(
    cloud: FakeIamMeterCloud, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    client = IamMeterClient(session, cloud.url)
    for _ in range(5):
        await client.login(*VENDOR_EXAMPLE_LOGIN)
    with pytest.raises(RateLimited):
        await client.login(*VENDOR_EXAMPLE_LOGIN)
    for _ in range(5):  # 5 an hour, up to 30 a day
        clock.advance(timedelta(hours=1))
        for _ in range(5):
            await client.login(*DEMO_LOGIN)
    clock.advance(timedelta(hours=1))
    with pytest.raises(RateLimited):
        await client.login(*DEMO_LOGIN)
    logins = [call for call in cloud.calls if call.endpoint == "login"]
    assert len(logins) == 32
    assert [call.key for call in logins if call.over_limit] == ["127.0.0.1", "127.0.0.1"]


async def test_expired_token(cloud: FakeIamMeterCloud, session: aiohttp.ClientSession) -> None:
    client = await logged_in(cloud, session, VENDOR_EXAMPLE_LOGIN)
    cloud.expire_tokens()
    with pytest.raises(TokenRejected, match="Invalid token"):
        await client.meters_data()
    await client.login(*VENDOR_EXAMPLE_LOGIN)
    assert len(await client.meters_data()) == 5
    with pytest.raises(ApiError, match="Invalid SN"):
        await client.meter_data("10A5C0DE")  # the demo account's meter
    with pytest.raises(ApiError, match="Invalid SN"):
        await client.meter_data("A/B")


async def test_fake_history_and_analysis(
    cloud: FakeIamMeterCloud, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    client = await logged_in(cloud, session, VENDOR_EXAMPLE_LOGIN)
    meter = cloud.account(VENDOR_EXAMPLE_LOGIN[0]).meters[4]  # 3FE34ABE, UTC+8
    gap_start = utc(2024, 2, 20, 2, 0, 30)
    meter.offline.append((gap_start, gap_start + timedelta(hours=2)))
    day = date(2024, 2, 20)
    rows = await client.meter_data_list(meter.sn, day, day, 60)
    assert len(rows) == 1440 - 120
    assert rows[0].local_time == local(2024, 2, 20, 0, 0, 1)
    assert rows[0].measured_at == utc(2024, 2, 19, 16, 0, 1)
    basic = await client.meter_data_list(meter.sn, day, day, 300, advanced=False)
    assert len(basic) == 288 - 24
    assert basic[0].measured_at == rows[0].measured_at
    assert (
        basic[0].reading.values["energy_import_kwh"] == rows[0].reading.values["energy_import_kwh"]
    )
    assert "power_factor_l1" in rows[0].reading.values
    assert "power_factor_l1" not in basic[0].reading.values
    # Today only up to now (03:46 UTC = 11:46 local).
    today = await client.meter_data_list(meter.sn, date(2024, 2, 22), date(2024, 2, 22), 300)
    assert len(today) == 11 * 12 + 10
    assert today[-1].measured_at <= clock.now

    offline = await client.offline_analysis(meter.sn, day, day)
    assert (offline.offline_count, offline.total_count) == (120, 1440)
    assert offline.gaps == [
        OfflineGap(local(2024, 2, 20, 10, 0, 30), local(2024, 2, 20, 12, 0, 30), 120.0)
    ]
    power = await client.power_analysis(meter.sn, day)
    assert (power.start_time, power.end_time) == (day, day)
    assert power.minimum is not None
    assert power.maximum is not None
    assert power.minimum < (power.average or 0) < power.maximum
    assert power.average_daytime is not None
    power = await client.power_analysis(meter.sn, end=day)
    assert (power.start_time, power.end_time) == (day - timedelta(days=6), day)

    # energyhistory: a place's grid meter counters, hour by hour.
    hours = await client.energy_history(2393, day, day + timedelta(days=1), "hour")
    assert [row.time for row in hours] == [local(2024, 2, 20, hour) for hour in range(24)]
    counters = [row.reading.values["energy_import_kwh"] for row in (rows[0], rows[-1])]
    assert isinstance(counters[0], float)
    assert isinstance(counters[1], float)
    imported = sum(row.from_grid_kwh or 0 for row in hours)
    assert imported == pytest.approx(counters[1] - counters[0], abs=0.5)
    assert all((row.yield_kwh or 0) > 0 for row in hours)
    days = await client.energy_history(1360, date(2024, 1, 1), date(2024, 3, 1), "day")
    assert days[0].time == local(2024, 1, 1)
    assert days[-1].time == local(2024, 2, 22)  # the current day, so far
    assert not [call for call in cloud.calls if call.over_limit]


async def test_budget_keeps_the_fake_within_its_limits(
    cloud: FakeIamMeterCloud, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """Poll as eagerly as the budget allows for three hours: the fake never sees an excess."""
    budget = CallBudget(clock)
    client = IamMeterClient(session, cloud.url)
    budget.acquire(CallKind.LOGIN, LOGIN_KEY)
    credentials = await client.login(*VENDOR_EXAMPLE_LOGIN)
    made = 0
    for _ in range(3 * 60):
        for kind, key, call in [
            (CallKind.METERSDATA, credentials.account_id, client.meters_data),
            (CallKind.METERDATA, "B384789C", lambda: client.meter_data("B384789C")),
        ]:
            try:
                budget.acquire(kind, key)
            except BudgetExceeded:
                continue
            await call()
            made += 1
        clock.advance(timedelta(minutes=1))
    assert made == 3 * 12 + 3 * 12
    assert not [call for call in cloud.calls if call.over_limit]
