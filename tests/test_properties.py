"""Property-based tests (issue 7): the parsers never fail but with their typed error, and no
cumulative sensor ever publishes a lower value except through a logged, persisted reset.

Hypothesis generates any JSON value, and "almost right" payloads built from the vendor's own
keys, for both parsers; and any sequence of counter readings for the counter guard, and (fewer
examples, over real HTTP) for the whole path from the device to the Home Assistant state.
Examples are derandomised and the example database is off, so every run tests the same inputs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
import contextlib
from datetime import UTC, datetime, timedelta, timezone
import itertools
import json
import logging
import math
from typing import Any, cast

import aiohttp
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from hypothesis import HealthCheck, given, settings, strategies as st
import pytest
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.meter_hub.api import iammeter
from custom_components.meter_hub.api.homewizard import parser as homewizard
from custom_components.meter_hub.api.model import ExternalMeter, Reading, all_keys
from custom_components.meter_hub.api.transport import decode_json
from custom_components.meter_hub.cloud_coordinator import POLL_MARGIN
from custom_components.meter_hub.const import CLOUD_SCAN_INTERVAL, LOCAL_COUNTER_RESET
from custom_components.meter_hub.counter_guard import ELECTRICITY, CounterGuard
from simulator.homewizard import FakeHomeWizard
from simulator.iammeter import FakeAccount, FakeIamMeterCloud, FakeMeter, Phase, vendor_time

from .conftest import async_setup_cloud, async_setup_local
from .fault_records import RESET_ACCEPTED, CaseRecord, CounterWatch, LogWatch, booked, fault_record

__all__ = ["fault_record"]  # the fixture

PROFILE = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FEW = settings(PROFILE, max_examples=25)

# --- what a valid reading is --------------------------------------------------------------------

KEYS = all_keys()
DATETIME_KEYS = frozenset({"monthly_peak_at", "measured_at"})
TEXT_KEYS = frozenset({"meter_model", "meter_id", "wifi_ssid"})
COUNT_KEYS = frozenset(
    {"any_power_fail_count", "long_power_fail_count", "dsmr_version"}
    | {key for key in KEYS if key.endswith("_count")}
)
RANGES: dict[str, tuple[float, float]] = {
    "active_tariff": (1, 4),
    "wifi_strength": (0, 100),
    **{key: (-1, 1) for key in KEYS if key.startswith("power_factor")},
}


def is_cumulative(key: str) -> bool:
    """A counter that only grows: it must never be negative."""
    return (key.startswith("energy_") and key.endswith("_kwh")) or key == "water_total_m3"


def _aware(value: object) -> bool:
    return isinstance(value, datetime) and value.tzinfo is not None


def value_problems(key: str, value: object) -> list[str]:
    """Why ``value`` is not a valid value of canonical ``key`` (nothing when it is)."""
    if key not in KEYS:
        return [f"{key!r} is not a canonical key"]
    if key in DATETIME_KEYS:
        return [] if _aware(value) else [f"{key}={value!r} is not an aware datetime"]
    if key in TEXT_KEYS:
        return [] if isinstance(value, str) and value else [f"{key}={value!r} is not a text"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return [f"{key}={value!r} is not a number"]
    if not math.isfinite(value):
        return [f"{key}={value!r} is not finite"]
    if (key in COUNT_KEYS or key == "active_tariff") and not isinstance(value, int):
        return [f"{key}={value!r} is not a whole number"]
    if (key in COUNT_KEYS or is_cumulative(key)) and value < 0:
        return [f"counter {key}={value!r} is negative"]
    low, high = RANGES.get(key, (-math.inf, math.inf))
    if not low <= value <= high:
        return [f"{key}={value!r} is outside {low}..{high}"]
    return []


def external_problems(key: str, meter: object) -> list[str]:
    """Why an external meter of a reading is not valid."""
    if not isinstance(meter, ExternalMeter):
        return [f"external {key!r} is a {type(meter).__name__}"]
    problems = []
    if key != meter.key or not meter.meter_id or not meter.kind:
        problems.append(f"external {key!r} has no proper identity: {meter!r}")
    value = meter.value
    if value is not None and (
        not isinstance(value, float) or not math.isfinite(value) or value < 0
    ):
        problems.append(f"external {key!r} reads {value!r}")
    if meter.unit is not None and (not isinstance(meter.unit, str) or not meter.unit):
        problems.append(f"external {key!r} has unit {meter.unit!r}")
    if meter.measured_at is not None and not _aware(meter.measured_at):
        problems.append(f"external {key!r} was measured at {meter.measured_at!r}")
    return problems


def reading_problems(reading: object) -> list[str]:
    """Why ``reading`` is not a valid ``Reading`` (nothing when it is)."""
    if not isinstance(reading, Reading):
        return [f"not a Reading: {reading!r}"]
    problems = [p for key, value in reading.values.items() for p in value_problems(key, value)]
    problems.extend(
        f"expected key {key!r} is not canonical" for key in reading.expected if key not in KEYS
    )
    problems.extend(
        p for key, meter in reading.externals.items() for p in external_problems(key, meter)
    )
    return problems


# --- strategies ---------------------------------------------------------------------------------

EDGE_NUMBERS = st.sampled_from(
    [0, -0.0, 1, -1, 0.5, 2, 4, 5, 202, 1e9, 1e9 + 1, -1e9, 1e10 + 1, 1e308, -1e308, 5e-324,
     2**63, -(2**63), 10**30, math.nan, math.inf, -math.inf, 250115121000, 991231235959]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    EDGE_NUMBERS,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=25,
)
# Vendor data points of /api/v1/data, and the fields of the parser's special cases.
HOMEWIZARD_KEYS = sorted(
    {
        *homewizard._FIELDS,
        "external",
        "total_gas_m3",
        "gas_timestamp",
        "gas_unique_id",
        "unique_gas_id",
        "montly_power_peak_timestamp",
    }
)
METER_TIMES = st.builds(
    lambda y, mo, d, h, mi, s: int(f"{y:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}"),
    st.integers(0, 99),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 25),
    st.integers(0, 61),
    st.integers(0, 61),
)
FIELD_VALUES = st.one_of(SCALARS, METER_TIMES, JSON)
EXTERNAL = st.fixed_dictionaries(
    {},
    optional={
        "unique_id": st.one_of(st.text(max_size=6), st.integers(), SCALARS),
        "type": st.one_of(
            st.sampled_from(["gas_meter", "water_meter", "heat_meter", "warm_water_meter", "x"]),
            SCALARS,
        ),
        "timestamp": st.one_of(METER_TIMES, SCALARS),
        "value": st.one_of(st.floats(0, 1e6), SCALARS),
        "unit": st.one_of(st.sampled_from(["m3", "GJ", "kWh", ""]), SCALARS),
    },
)
HOMEWIZARD_PAYLOADS = st.dictionaries(
    st.sampled_from(HOMEWIZARD_KEYS) | st.text(max_size=10), FIELD_VALUES, max_size=30
).flatmap(
    lambda payload: st.one_of(
        st.just(payload),
        st.lists(st.one_of(EXTERNAL, SCALARS), max_size=4).map(
            lambda externals: {**payload, "external": externals}
        ),
    )
)
PRODUCTS = st.sampled_from([None, "HWE-P1", "HWE-SKT", "HWE-KWH3", "SDM230-wifi", "HWE-WTR", "?"])
TIME_ZONES = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))])

ROW_VALUES = st.one_of(st.floats(-1e4, 1e5), SCALARS)
ROWS = st.integers(5, 7).flatmap(lambda n: st.lists(ROW_VALUES, min_size=n, max_size=n))
IAMMETER_VALUES = st.one_of(
    ROWS,
    st.lists(ROWS, min_size=1, max_size=5),
    st.lists(st.one_of(ROWS, SCALARS), min_size=1, max_size=4),
    JSON,
)
GMT_TIMES = st.one_of(
    st.datetimes().map(
        lambda at: f"{at.year}/{at.month}/{at.day} {at.hour}:{at.minute:02}:{at.second:02}"
    ),
    SCALARS,
)
METERS_ENTRY = st.fixed_dictionaries(
    {},
    optional={
        "sn": st.one_of(st.text(min_size=1, max_size=8), SCALARS),
        "values": IAMMETER_VALUES,
        "gmtTime": GMT_TIMES,
        "extra": JSON,
    },
)
METERS_DATA = st.one_of(st.lists(st.one_of(METERS_ENTRY, SCALARS), max_size=5), JSON)


@contextlib.contextmanager
def counting(record: CaseRecord) -> Iterator[None]:
    """Count an example; an exception other than the typed errors counts as a traceback."""
    record.checks += 1
    try:
        yield
    except AssertionError:
        raise
    except Exception:
        record.tracebacks += 1
        raise


@pytest.fixture
def record(fault_record: CaseRecord) -> CaseRecord:
    return fault_record


# --- the parsers --------------------------------------------------------------------------------


@PROFILE
@given(payload=st.one_of(JSON, HOMEWIZARD_PAYLOADS), product=PRODUCTS, tz=TIME_ZONES)
def test_homewizard_parse_data_gives_a_valid_reading_or_its_typed_error(
    record: CaseRecord, payload: object, product: str | None, tz: timezone
) -> None:
    with counting(record):
        try:
            reading = homewizard.parse_data(payload, product_type=product, tz=tz)
        except homewizard.InvalidPayload:
            assert not isinstance(payload, dict)
            return
        assert reading_problems(reading) == []
    record.completed = True


@PROFILE
@given(body=st.one_of(st.binary(max_size=64), JSON.map(lambda v: json.dumps(v).encode())))
def test_homewizard_bodies_decode_to_json_or_value_error(record: CaseRecord, body: bytes) -> None:
    with counting(record):
        try:
            payload = decode_json(body)
        except ValueError:
            return
        with contextlib.suppress(homewizard.InvalidPayload):
            assert reading_problems(homewizard.parse_data(payload, product_type=None, tz=UTC)) == []
    record.completed = True


@PROFILE
@given(values=IAMMETER_VALUES)
def test_iammeter_parse_values_gives_valid_values_or_its_typed_error(
    record: CaseRecord, values: object
) -> None:
    with counting(record):
        try:
            shape, out = iammeter.parse_values(values)
        except iammeter.InvalidResponse:
            return
        assert isinstance(shape, iammeter.MeterShape)
        assert [p for key, value in out.items() for p in value_problems(key, value)] == []
        assert all(isinstance(value, float) for value in out.values())
    record.completed = True


@PROFILE
@given(data=METERS_DATA)
def test_iammeter_parse_meters_data_gives_valid_readings_or_its_typed_error(
    record: CaseRecord, data: object
) -> None:
    with counting(record):
        try:
            meters = iammeter.parse_meters_data(data)
        except iammeter.InvalidResponse:
            return
        for sn, meter in meters.items():
            assert isinstance(sn, str)
            assert sn
            assert meter.sn == sn
            assert meter.measured_at is None or _aware(meter.measured_at)
            assert reading_problems(meter.reading) == []
    record.completed = True


ENVELOPES = st.one_of(
    st.binary(max_size=64),
    st.builds(
        lambda data, ok, message: json.dumps(
            {"data": data, "successful": ok, "message": message}
        ).encode(),
        st.one_of(METERS_DATA, JSON),
        st.one_of(st.booleans(), SCALARS),
        st.one_of(st.text(max_size=20), SCALARS),
    ),
    JSON.map(lambda value: json.dumps(value).encode()),
)


@PROFILE
@given(
    body=ENVELOPES,
    status=st.sampled_from([200, 200, 200, 201, 204, 301, 400, 401, 403, 404, 429, 500, 503]),
    retry_after=st.one_of(st.none(), st.text(max_size=6), st.sampled_from(["60", "999999999"])),
    login=st.booleans(),
)
def test_iammeter_answers_give_data_or_a_typed_error(
    record: CaseRecord, body: bytes, status: int, retry_after: str | None, login: bool
) -> None:
    """The whole way from the HTTP answer of metersdata to the readings."""
    client = iammeter.IamMeterClient(cast("aiohttp.ClientSession", None), token="t0ken")
    with counting(record):
        error: iammeter.IamMeterError | None = None
        try:
            answer = client._answer(
                "/api/v1/site/metersdata", status, retry_after, body, login=login
            )
            data = asyncio.run(answer)
            meters = iammeter.parse_meters_data(data)
        except iammeter.IamMeterError as err:
            error, meters = err, {}
        assert error is None or "t0ken" not in str(error)
        assert all(reading_problems(meter.reading) == [] for meter in meters.values())
    record.completed = True


# --- the counter guard --------------------------------------------------------------------------

RULE = LOCAL_COUNTER_RESET
COUNTER_VALUES = st.one_of(
    st.none(),  # not reported
    st.floats(0, 2e4),
    st.sampled_from([0.0, 100.0, 100.001, 99.999, 1e4]),
)
STEPS = st.lists(
    st.tuples(COUNTER_VALUES, st.sampled_from([0.5, 1, 5, 20, 30, 59, 60, 61, 300])), max_size=60
)


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _new_guard() -> CounterGuard:
    return CounterGuard("counter", ELECTRICITY, RULE)


def guard_problems(
    restored: float | None, steps: list[tuple[float | None, float]]
) -> tuple[list[str], int]:
    """Run ``steps`` through a guard; the problems, and how many dips were not logged resets."""
    logger = logging.getLogger("custom_components.meter_hub")
    handler = _Warnings()
    logger.addHandler(handler)
    problems: list[str] = []
    regressions = 0
    try:
        guard = _new_guard()
        if restored is not None:
            guard.restore(restored, 0.0)
        now = 0.0
        lower: list[float] = []  # times of the readings of the current lower series
        for value, seconds in steps:
            now += seconds
            if value is None:
                guard.interrupt()
                lower = []
                continue
            before, since, warned = guard.published, guard.published_at, len(handler.records)
            out = guard.accept(value, now)
            reset = any(RESET_ACCEPTED in r.getMessage() for r in handler.records[warned:])
            if out not in (value, before):
                problems.append(f"published {out}, neither {value} nor {before}")
            if before is None or out is None:
                continue
            lower = [*lower, now] if value < before else []
            if out < before:
                if not reset:
                    regressions += 1
                    problems.append(f"{before} -> {out} at {now} s without a logged reset")
                elif len(lower) < RULE.polls or now - lower[0] < RULE.seconds:
                    problems.append(f"reset to {out} at {now} s after {len(lower)} readings")
            elif reset:
                problems.append(f"a reset was logged but {out} is not lower than {before}")
            elif out > before and not ELECTRICITY.allows(out - before, now - (since or 0.0)):
                problems.append(f"{before} -> {out} in {now - (since or 0.0)} s: too fast")
    finally:
        logger.removeHandler(handler)
    return problems, regressions


@PROFILE
@given(restored=st.one_of(st.none(), st.floats(0, 2e4)), steps=STEPS)
def test_counter_guard_publishes_lower_values_only_as_logged_persisted_resets(
    record: CaseRecord, restored: float | None, steps: list[tuple[float | None, float]]
) -> None:
    with counting(record):
        problems, regressions = guard_problems(restored, steps)
        record.counter_regressions += regressions
        assert problems == []
    record.completed = True


def test_the_guard_check_sees_a_regression(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above is not blind: a guard that lets every value through fails it."""

    def let_through(self: CounterGuard, value: float, now: float) -> float | None:
        self.published = value
        return value

    monkeypatch.setattr(CounterGuard, "accept", let_through)
    problems, regressions = guard_problems(None, [(10.0, 1), (0.0, 1), (1e6, 1)])
    assert regressions == 1
    assert len(problems) == 2


# What happens between two true readings of a counter (kWh).
# A spike is higher than the meter could measure in all the time a case can last (80 hours
# at 400 kW: 32,000 kWh): below that, a value is physically possible and cannot be told apart.
EVENTS = st.one_of(
    st.tuples(st.just("spike"), st.floats(1e5, 1e9)),  # a reading far too high
    st.tuples(st.just("dip"), st.floats(0, 1)),  # a reading lower (a share of the true one)
    st.tuples(st.just("missing"), st.just(0.0)),  # a poll without the value (or an error)
    st.tuples(st.just("outage"), st.floats(5, 3600)),  # no poll for so many seconds
    st.tuples(st.just("restart"), st.just(0.0)),  # Home Assistant restarts (the data stored)
    st.tuples(st.just("true"), st.just(0.0)),
)
# (what happens, the house's power in kW until the next poll, seconds to the next poll)
TRUE_STEPS = st.lists(
    st.tuples(EVENTS, st.floats(0, 60), st.sampled_from([1, 5, 10, 30, 60])), max_size=80
)


def run_true_counter(
    start: float, steps: list[tuple[tuple[str, float], float, int]]
) -> tuple[float, list[float]]:
    """Feed a true counter, with the injected faults, through the guard (restarting it as Home
    Assistant would); return the true consumption and the published states."""
    guard = _new_guard()
    guard.restore(start, 0.0)
    true, now = start, 0.0
    published = [start]
    last_dip = False  # a dip is a single reading: lower readings in a row may be a new meter
    for (event, amount), power_kw, seconds in steps:
        if event == "outage":
            true += power_kw * amount / 3600
            now += amount
        glitch = event == "spike" or (event == "dip" and not last_dip)
        if event == "missing":
            guard.interrupt()
        elif event == "restart":
            stored = (guard.published, guard.published_at)
            guard = _new_guard()
            if stored[0] is not None:
                guard.restore(*stored)
        else:
            value = true + amount if glitch and event == "spike" else true
            value = true * amount if glitch and event == "dip" else value
            out = guard.accept(round(value, 3), now)
            if out is not None and out != published[-1]:
                published.append(out)
        last_dip = glitch and event == "dip"
        true += power_kw * seconds / 3600
        now += seconds
    # one more clean reading
    if (out := guard.accept(round(true, 3), now)) is not None and out != published[-1]:
        published.append(out)
    return round(true, 3) - start, published


@PROFILE
@given(start=st.floats(0, 1e6).map(lambda v: round(v, 3)), steps=TRUE_STEPS)
def test_the_statistics_sum_equals_the_true_consumption(
    record: CaseRecord, start: float, steps: list[tuple[tuple[str, float], float, int]]
) -> None:
    """Any true counter, spikes up and down, missing values, errors, outages and restarts: the
    recorder's sum of what the guard publishes is the true consumption (issue 13)."""
    with counting(record):
        consumed, published = run_true_counter(start, steps)
        phantom = booked(published) - consumed
        record.phantom_kwh += max(phantom, 0.0)
        assert phantom == pytest.approx(0.0, abs=0.001)
    record.completed = True


@PROFILE
@given(
    old=st.floats(2, 1e6),
    new=st.floats(0, 1),
    interval=st.sampled_from([1, 5, 10, 30, 60]),
    polls=st.lists(st.sampled_from(["ok", "missing"]), max_size=30),
)
def test_a_real_meter_replacement_is_accepted_within_the_documented_time(
    record: CaseRecord, old: float, new: float, interval: int, polls: list[str]
) -> None:
    """A new meter (a lower, growing counter): accepted once ``RULE.polls`` readings spanning
    ``RULE.seconds`` were observed without a gap, and not before."""
    with counting(record):
        guard = _new_guard()
        guard.restore(old, 0.0)
        now, run, value = 0.0, 0, new
        for poll in [*polls, *["ok"] * (RULE.polls + int(RULE.seconds // interval) + 1)]:
            now += interval
            if poll == "missing":
                guard.interrupt()
                run = 0
                continue
            value += 0.001
            run += 1
            needed = max(RULE.polls, math.ceil(RULE.seconds / interval) + 1)
            assert (guard.accept(value, now) == value) == (run >= needed)
            if run >= needed:
                break
        assert guard.published == value
        record.accepted_resets += 1
    record.completed = True


# --- the whole path: device -> HTTP -> parser -> guard -> Home Assistant state ------------------

COUNTER_READINGS = st.one_of(
    st.floats(0, 2e4).map(lambda v: round(v, 3)),
    st.sampled_from([None, 0, "15234.567", math.nan, -1.0, 1e308, 15234.567, 15234.568, 100.0]),
)
# (total import, import tariff 2, gas meter) per poll, and the seconds before the poll
DEVICE_STEPS = st.lists(
    st.tuples(
        COUNTER_READINGS,
        COUNTER_READINGS,
        COUNTER_READINGS,
        st.sampled_from([5, 10, 30, 55, 60, 65]),
    ),
    min_size=1,
    max_size=14,
)
_numbers = itertools.count(1)


def _put(target: dict[str, Any], key: str, value: object) -> None:
    if value is None:
        target.pop(key, None)
    else:
        target[key] = value


async def _watch_steps(
    hass: HomeAssistant,
    caplog: pytest.LogCaptureFixture,
    record: CaseRecord,
    run: Callable[[], Awaitable[None]],
) -> None:
    """Run the steps, then count what every cumulative sensor published."""
    record.checks += 1
    logs = LogWatch(caplog)
    counters = CounterWatch(hass, logs)
    counters.seed()
    try:
        await run()
    finally:
        counters.stop()
    record.counter_regressions += len(counters.regressions)
    record.accepted_resets += len(counters.resets)
    tracebacks = logs.tracebacks()
    record.tracebacks += len(tracebacks)
    assert counters.regressions == []
    assert tracebacks == []
    record.completed = True


@FEW
@given(steps=DEVICE_STEPS)
async def test_homewizard_counters_never_go_down_in_home_assistant(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    socket_enabled: None,
    caplog: pytest.LogCaptureFixture,
    record: CaseRecord,
    steps: list[tuple[Any, Any, Any, int]],
) -> None:
    """Any sequence of counter values from a P1 meter over real HTTP: no counter's state
    (total, tariff, gas meter) ever dips, except as a reset the guard logged."""
    fake = FakeHomeWizard("HWE-P1")
    fake.device["serial"] = f"5c2faf{next(_numbers):06x}"
    await fake.start()
    entry = await async_setup_local(hass, fake)

    async def run() -> None:
        for total, tariff, gas, seconds in steps:
            _put(fake.data, "total_power_import_kwh", total)
            _put(fake.data, "total_power_import_t2_kwh", tariff)
            _put(fake.data["external"][0], "value", gas)
            freezer.tick(timedelta(seconds=seconds))
            async_fire_time_changed(hass)
            await hass.async_block_till_done(wait_background_tasks=True)

    try:
        await _watch_steps(hass, caplog, record, run)
    finally:
        await hass.config_entries.async_remove(entry.entry_id)
        await fake.stop()


# three phases of import per poll (a missing phase makes the sum unavailable, never smaller)
CLOUD_STEPS = st.lists(
    st.tuples(COUNTER_READINGS, COUNTER_READINGS, COUNTER_READINGS), min_size=1, max_size=8
)


@settings(FEW, max_examples=10)
@given(steps=CLOUD_STEPS)
async def test_iammeter_counters_never_go_down_in_home_assistant(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    record: CaseRecord,
    steps: list[tuple[Any, Any, Any]],
) -> None:
    """Any sequence of per-phase counters from the cloud, a poll every 5 minutes: neither the
    phases nor their sum ever dip in Home Assistant, except as a reset the guard logged."""
    number = next(_numbers)
    sn = f"7E{number:06X}"
    login = (f"user{number}", "pw")
    phases = (Phase(100, 10, 0), Phase(100, 20, 0), Phase(100, 30, 0))
    cloud.accounts.append(FakeAccount(*login, 9000 + number, [FakeMeter(sn, phases)]))
    entry = await async_setup_cloud(hass, cloud, login)

    async def run() -> None:
        for imports in steps:
            rows = [[230.0, 1.0, 100.0, imported, 0.0, 50.0, 0.9] for imported in imports]
            for row in rows:
                if row[3] is None:
                    row[3:5] = [None, None]
            data = [{"sn": sn, "values": rows, "gmtTime": vendor_time(dt_util.utcnow())}]
            body = {"data": data, "successful": True, "message": None}
            cloud.inject_fault(endpoint="metersdata", body=json.dumps(body).encode())
            freezer.tick(CLOUD_SCAN_INTERVAL + POLL_MARGIN)
            async_fire_time_changed(hass)
            await hass.async_block_till_done(wait_background_tasks=True)

    try:
        await _watch_steps(hass, caplog, record, run)
    finally:
        await hass.config_entries.async_remove(entry.entry_id)
