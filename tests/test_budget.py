"""Tests of the IAMMETER call budget: rolling windows, back-offs, and persistence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import json

import pytest

from custom_components.meter_hub.api.budget import (
    LIMITS,
    LOGIN_KEY,
    STORAGE_VERSION,
    BudgetExceeded,
    CallBudget,
    CallKind,
)
from simulator.iammeter import ManualClock

START = datetime(2024, 2, 22, 3, 46, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def budget(clock: ManualClock) -> CallBudget:
    return CallBudget(clock)


def refused_until(budget: CallBudget, kind: CallKind, key: str) -> datetime:
    with pytest.raises(BudgetExceeded) as caught:
        budget.acquire(kind, key)
    assert (caught.value.kind, caught.value.key) == (kind, key)
    assert budget.next_allowed(kind, key) == caught.value.retry_at
    return caught.value.retry_at


def test_login_five_an_hour_thirty_a_day(budget: CallBudget, clock: ManualClock) -> None:
    for _ in range(5):
        budget.acquire(CallKind.LOGIN, LOGIN_KEY)
        clock.advance(MINUTE)
    assert refused_until(budget, CallKind.LOGIN, LOGIN_KEY) == START + HOUR
    clock.advance(START + HOUR - clock.now - timedelta(seconds=1))
    assert refused_until(budget, CallKind.LOGIN, LOGIN_KEY) == START + HOUR
    clock.advance(timedelta(seconds=1))
    budget.acquire(CallKind.LOGIN, LOGIN_KEY)  # the first login left the rolling hour
    for _ in range(24):
        clock.advance(12 * MINUTE)
        budget.acquire(CallKind.LOGIN, LOGIN_KEY)
    # 30 logins within a day: the next one waits until the first leaves the day.
    assert refused_until(budget, CallKind.LOGIN, LOGIN_KEY) == START + DAY
    clock.now = START + DAY
    budget.acquire(CallKind.LOGIN, LOGIN_KEY)


def test_metersdata_once_per_five_minutes(budget: CallBudget, clock: ManualClock) -> None:
    budget.acquire(CallKind.METERSDATA, "2025")
    budget.acquire(CallKind.METERSDATA, "4242")  # per account
    clock.advance(4 * MINUTE)
    assert refused_until(budget, CallKind.METERSDATA, "2025") == START + 5 * MINUTE
    clock.advance(MINUTE)
    budget.acquire(CallKind.METERSDATA, "2025")


def test_meterdata_twelve_an_hour_per_sn(budget: CallBudget, clock: ManualClock) -> None:
    for _ in range(12):
        budget.acquire(CallKind.METERDATA, "SN1")
        clock.advance(MINUTE)
    assert refused_until(budget, CallKind.METERDATA, "SN1") == START + HOUR
    budget.acquire(CallKind.METERDATA, "SN2")
    clock.now = START + HOUR
    budget.acquire(CallKind.METERDATA, "SN1")
    assert refused_until(budget, CallKind.METERDATA, "SN1") == START + HOUR + MINUTE


@pytest.mark.parametrize(
    ("kind", "calls", "period"),
    [
        (CallKind.POWER_ANALYSIS, 5, DAY),
        (CallKind.OFFLINE_ANALYSIS, 5, DAY),
        (CallKind.METERDATALIST, 4, HOUR),
        (CallKind.ENERGYHISTORY, 4, HOUR),
    ],
)
def test_other_kinds(
    budget: CallBudget, clock: ManualClock, kind: CallKind, calls: int, period: timedelta
) -> None:
    for _ in range(calls):
        budget.acquire(kind, "SN1")
    assert refused_until(budget, kind, "SN1") == START + period
    others = [other for other in CallKind if other not in (kind, CallKind.LOGIN)]
    for other in others:  # each kind has its own count
        budget.check(other, "SN1")


def test_undocumented_kinds_have_daily_caps(budget: CallBudget, clock: ManualClock) -> None:
    assert LIMITS[CallKind.METERDATALIST][-1].calls == 24
    for _ in range(24):
        budget.acquire(CallKind.METERDATALIST, "SN1")
        clock.advance(HOUR / 4)
    assert refused_until(budget, CallKind.METERDATALIST, "SN1") == START + DAY


def test_back_off(budget: CallBudget, clock: ManualClock) -> None:
    budget.back_off(CallKind.METERSDATA, "2025", START + 30 * MINUTE)
    budget.back_off(CallKind.METERSDATA, "2025", START + 10 * MINUTE)  # never shortens
    assert refused_until(budget, CallKind.METERSDATA, "2025") == START + 30 * MINUTE
    budget.check(CallKind.METERSDATA, "4242")
    clock.advance(30 * MINUTE)
    budget.acquire(CallKind.METERSDATA, "2025")
    # Without a time: the kind's longest window (the vendor does not say which limit it was).
    budget.back_off(CallKind.LOGIN, LOGIN_KEY)
    assert budget.next_allowed(CallKind.LOGIN, LOGIN_KEY) == clock.now + DAY
    assert budget.next_allowed(CallKind.METERDATA, "SN1") == clock.now


def test_exception_message(budget: CallBudget) -> None:
    budget.acquire(CallKind.POWER_ANALYSIS, "SN1")
    budget.back_off(CallKind.POWER_ANALYSIS, "SN1", START + HOUR)
    with pytest.raises(BudgetExceeded, match=r"powerAnalysis for SN1 refused .*T04:46:30\+00:00"):
        budget.check(CallKind.POWER_ANALYSIS, "SN1")


def test_restart_keeps_every_limit(budget: CallBudget, clock: ManualClock) -> None:
    for _ in range(5):
        budget.acquire(CallKind.LOGIN, LOGIN_KEY)
    budget.acquire(CallKind.METERSDATA, "2025")
    for _ in range(12):
        budget.acquire(CallKind.METERDATA, "SN1")
    budget.back_off(CallKind.POWER_ANALYSIS, "SN1", START + 2 * HOUR)
    saved = json.loads(json.dumps(budget.to_dict()))
    assert saved["version"] == STORAGE_VERSION

    clock.advance(MINUTE)
    restarted = CallBudget.from_dict(saved, clock)
    for kind, key in [
        (CallKind.LOGIN, LOGIN_KEY),
        (CallKind.METERSDATA, "2025"),
        (CallKind.METERDATA, "SN1"),
        (CallKind.POWER_ANALYSIS, "SN1"),
    ]:
        assert refused_until(restarted, kind, key) == budget.next_allowed(kind, key)
    assert restarted.to_dict() == budget.to_dict()


def test_ledger_is_pruned(budget: CallBudget, clock: ManualClock) -> None:
    for _ in range(100):
        clock.advance(5 * MINUTE)
        budget.acquire(CallKind.METERSDATA, "2025")
        budget.spend(CallKind.METERDATA, "SN1")
    budget.back_off(CallKind.METERDATA, "SN2", clock.now + MINUTE)
    saved = budget.to_dict()
    assert len(saved["calls"]["metersdata"]["2025"]) == 1
    assert len(saved["calls"]["meterdata"]["SN1"]) == 12
    clock.advance(DAY)
    budget.spend(CallKind.METERDATA, "SN3")
    assert budget.to_dict() == {
        "version": STORAGE_VERSION,
        "calls": {"meterdata": {"SN3": [clock.now.isoformat()]}},
        "back_off": {},
    }


def test_from_dict_skips_unknown_kinds(clock: ManualClock) -> None:
    saved = {
        "version": STORAGE_VERSION,
        "calls": {
            "sitelist": {"x": [START.isoformat()]},
            "meterdata": {"SN1": [START.isoformat()]},
        },
        "back_off": {"sitelist": {"x": (START + HOUR).isoformat()}},
    }
    assert CallBudget.from_dict(saved, clock).to_dict() == {
        "version": STORAGE_VERSION,
        "calls": {"meterdata": {"SN1": [START.isoformat()]}},
        "back_off": {},
    }


@pytest.mark.parametrize(
    "saved",
    [
        {},
        {"version": 99, "calls": {}, "back_off": {}},
        {"version": STORAGE_VERSION, "calls": []},
        {"version": STORAGE_VERSION, "calls": {"login": {"login": ["yesterday"]}}, "back_off": {}},
        {
            "version": STORAGE_VERSION,
            "calls": {"login": {"login": ["2024-02-22T03:46:30"]}},
            "back_off": {},
        },
        {"version": STORAGE_VERSION, "calls": {"login": {"login": [5]}}, "back_off": {}},
    ],
)
def test_from_dict_rejects_malformed(clock: ManualClock, saved: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"call budget|UTC offset|isoformat"):
        CallBudget.from_dict(saved, clock)
