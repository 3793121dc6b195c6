"""Fault injection (issue 7): every row of ``fault_matrix`` against a fake on 127.0.0.1.

Each case asserts: no traceback in the log; the entities' availability as designed (local:
unavailable while the device fails; cloud: the last reading while it is younger than 15 minutes,
then unavailable); the next good answer brings everything back; exactly one log line when it
goes bad and one when it recovers (none for a fault that leaves the source working); no
cumulative sensor ever goes down. The figures go to ``scripts/faults`` through ``fault_record``.
"""

from __future__ import annotations

from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from simulator.homewizard import FakeHomeWizard
from simulator.iammeter import VENDOR_EXAMPLE_LOGIN, FakeIamMeterCloud

from .conftest import StartMeter, async_setup_cloud, async_setup_iammeter_local, async_setup_local
from .fault_matrix import (
    BACKFILL_GLITCHES,
    CASES,
    CLOUD_CASES,
    CLOUD_COUNTER_CASES,
    IAMMETER_CASES,
    IAMMETER_NO_NEM_CASES,
    LOCAL_CASES,
    LOCAL_COUNTER_CASES,
    REQUIRED,
    CounterCase,
    FaultCase,
    Run,
    backfill_phantom,
    iammeter_state,
    run_case,
    run_counter_case,
)
from .fault_push import PUSH_CASES, PUSH_REQUIRED, PushFaultCase, push_run, run_push_case
from .fault_records import (
    MAX_LOOP_STALL,
    CaseRecord,
    CounterWatch,
    LogWatch,
    LoopStallWatch,
    booked,
    describe,
    fault_record,
    record_text,
)

__all__ = ["fault_record"]  # the fixture


def test_the_matrix_covers_every_fault_of_the_issue() -> None:
    covered = {(kind, case.source) for case in CASES for kind in case.covers}
    missing = [
        (kind, source)
        for kind, sources in REQUIRED.items()
        for source in sources
        if (kind, source) not in covered
    ]
    assert missing == []
    assert len({case.id for case in CASES}) == len(CASES)


async def _finish(case: FaultCase | CounterCase, run: Run, record: CaseRecord) -> None:
    if isinstance(case, CounterCase):
        await _finish_counter(case, run, record)
        return
    with LoopStallWatch() as stall:
        outcome = await run_case(case, run)
    record.loop_stall_s = stall.longest
    tracebacks = run.logs.tracebacks()
    regressions = run.counters.regressions
    run.counters.stop()
    record.tracebacks = len(tracebacks)
    record.counter_regressions = len(regressions)
    record.accepted_resets = len(run.counters.resets)
    record.recovered = outcome.recovered
    record.bad_lines = outcome.bad_lines
    record.recovery_lines = outcome.recovery_lines
    record.checks = outcome.checks
    secrets = _secrets(run)
    record.secrets_found = len(secrets)
    record.notes = outcome.problems
    if run.homewizard is not None or run.iammeter is not None:
        # The fake device's counters stand still during these cases: all booking is phantom.
        record.phantom_kwh = sum(
            booked(states)
            for entity_id, states in run.counters.published.items()
            if run.hass.states.get(entity_id) is not None
            and run.hass.states.get(entity_id).attributes.get("unit_of_measurement") == "kWh"
        )
    record.completed = True

    assert describe(tracebacks) == []
    assert regressions == []
    assert run.counters.resets == []
    assert secrets == []
    assert outcome.problems == []
    assert stall.longest < MAX_LOOP_STALL, stall.longest_callback


def _secrets(run: Run) -> list[str]:
    """The account's password, a token or the refresh token in the log of a cloud case; an
    IAMMETER meter's Admin Security password in the log of its case."""
    text = "\n".join(record_text(record) for record in run.logs.records)
    if run.iammeter is not None:
        password = run.entry.data.get("password") or run.iammeter.password
        return [f"{password[:3]}…"] if password and password in text else []
    if run.cloud is None:
        return []
    data = run.entry.data
    candidates = {VENDOR_EXAMPLE_LOGIN[1], *run.cloud._tokens, data["token"], data["refresh_token"]}
    return [f"{secret[:3]}…" for secret in candidates if secret and secret in text]


def _watch_counters(hass: HomeAssistant, logs: LogWatch) -> CounterWatch:
    """Start watching every counter the entry has published so far."""
    counters = CounterWatch(hass, logs)
    counters.seed()
    return counters


def _run(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    entry: MockConfigEntry,
    logs: LogWatch,
    address: str,
    **fake: Any,
) -> Run:
    """A case's run on ``entry`` of the fake (``homewizard=``, ``cloud=``...) at ``address``."""
    return Run(
        hass=hass,
        freezer=freezer,
        entry=entry,
        logs=logs,
        counters=_watch_counters(hass, logs),
        port=int(address.rpartition(":")[2]),
        **fake,
    )


@pytest.mark.parametrize("case", [*LOCAL_CASES, *LOCAL_COUNTER_CASES], ids=lambda case: case.id)
async def test_local_fault(
    hass: HomeAssistant,
    homewizard: FakeHomeWizard,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    fault_record: CaseRecord,
    case: FaultCase | CounterCase,
) -> None:
    fault_record.case = case.id
    logs = LogWatch(caplog)
    entry = await async_setup_local(hass, homewizard)
    run = _run(hass, freezer, entry, logs, homewizard.host, homewizard=homewizard)
    await _finish(case, run, fault_record)


@pytest.mark.parametrize("case", [*CLOUD_CASES, *CLOUD_COUNTER_CASES], ids=lambda case: case.id)
async def test_cloud_fault(
    hass: HomeAssistant,
    cloud: FakeIamMeterCloud,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    fault_record: CaseRecord,
    case: FaultCase | CounterCase,
) -> None:
    fault_record.case = case.id
    logs = LogWatch(caplog)
    entry = await async_setup_cloud(hass, cloud)
    run = _run(hass, freezer, entry, logs, cloud.url, cloud=cloud)
    await _finish(case, run, fault_record)


async def _finish_counter(case: CounterCase, run: Run, record: CaseRecord) -> None:
    with LoopStallWatch() as stall:
        outcome = await run_counter_case(case, run)
    record.loop_stall_s = stall.longest
    run.counters.stop()
    tracebacks = run.logs.tracebacks()
    record.tracebacks = len(tracebacks)
    record.counter_regressions = len(run.counters.regressions)
    record.accepted_resets = len(run.counters.resets)
    record.phantom_kwh = max(outcome.phantom_kwh, 0.0)
    record.recovered = not outcome.problems
    record.checks = len(run.counters.published)
    record.notes = outcome.problems
    record.completed = True

    assert describe(tracebacks) == []
    assert run.counters.regressions == []
    assert len(run.counters.resets) == int(case.replaced)
    assert outcome.problems == []
    assert stall.longest < MAX_LOOP_STALL, stall.longest_callback


@pytest.mark.parametrize("name", BACKFILL_GLITCHES)
def test_backfill_counter_fault(fault_record: CaseRecord, name: str) -> None:
    """Glitched samples of the cloud's 5-minute history: the backfill books what the true
    history books, no more."""
    fault_record.case = f"history-counter-{name}"
    phantom = backfill_phantom(BACKFILL_GLITCHES[name])
    fault_record.phantom_kwh = max(phantom, 0.0)
    fault_record.checks = 1
    fault_record.recovered = abs(phantom) <= 0.001
    fault_record.completed = True
    assert phantom == pytest.approx(0.0, abs=0.001)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
@pytest.mark.parametrize(
    "case", [*IAMMETER_CASES, *IAMMETER_NO_NEM_CASES], ids=lambda case: case.id
)
async def test_iammeter_local_fault(
    hass: HomeAssistant,
    start_meter: StartMeter,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    fault_record: CaseRecord,
    case: FaultCase,
) -> None:
    fault_record.case = case.id
    net_metering = case not in IAMMETER_NO_NEM_CASES
    meter = await start_meter("WEM3080T", serial="5DB50BF4")
    meter.net_metering = net_metering
    logs = LogWatch(caplog)
    entry = await async_setup_iammeter_local(hass, meter)
    meter.request_count.clear()
    run = _run(
        hass, freezer, entry, logs, meter.host, iammeter=meter, iammeter_state=iammeter_state(meter)
    )
    await _finish(case, run, fault_record)


def test_the_push_matrix_covers_every_connection_fault() -> None:
    covered = {kind for case in PUSH_CASES for kind in case.covers}
    assert set(PUSH_REQUIRED) - covered == set()
    assert len({case.id for case in PUSH_CASES}) == len(PUSH_CASES)


@pytest.mark.parametrize("case", PUSH_CASES, ids=lambda case: case.id)
async def test_push_fault(
    hass: HomeAssistant,
    socket_enabled: None,
    caplog: pytest.LogCaptureFixture,
    fault_record: CaseRecord,
    case: PushFaultCase,
) -> None:
    fault_record.case = case.id
    logs = LogWatch(caplog)
    async with push_run(hass, logs) as run:
        with LoopStallWatch() as stall:
            outcome = await run_push_case(case, run)
        run.counters.stop()
        tracebacks = run.logs.tracebacks()
        fault_record.loop_stall_s = stall.longest
        fault_record.tracebacks = len(tracebacks)
        fault_record.counter_regressions = len(run.counters.regressions)
        fault_record.accepted_resets = len(run.counters.resets)
        fault_record.recovered = outcome.recovered
        fault_record.bad_lines = outcome.bad_lines
        fault_record.recovery_lines = outcome.recovery_lines
        fault_record.checks = outcome.checks
        fault_record.notes = outcome.problems
        # the device's counters stand still: whatever the statistics book is phantom
        fault_record.phantom_kwh = sum(booked(states) for states in run.counters.published.values())
        fault_record.completed = True

    assert describe(tracebacks) == []
    assert run.counters.regressions == []
    assert run.counters.resets == []
    assert fault_record.phantom_kwh == 0
    assert outcome.problems == []
    assert stall.longest < MAX_LOOP_STALL, stall.longest_callback
