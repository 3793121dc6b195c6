"""IAMMETER history: backfill of the energy sensors' statistics and the place's energy.

A fake cloud on 127.0.0.1 and the real recorder (SQLite in memory). The recorder's 5-minute
compiler runs for every period that passes while "Home Assistant runs"; a restart is emulated as
Home Assistant does it: nothing happens while it is off, then the first poll, then the recorder's
``CompileMissingStatisticsTask``. Hour by hour, the statistics are checked against the fake
meter's own counters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
import itertools
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.recorder.statistics import (
    async_list_statistic_ids,
    get_metadata,
    statistics_during_period,
)
from homeassistant.components.recorder.tasks import CompileMissingStatisticsTask
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.recorder import get_instance
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)

from custom_components.meter_hub.api.budget import CallKind
from custom_components.meter_hub.api.iammeter import parse_values
from custom_components.meter_hub.cloud_budget import async_get_budget
from custom_components.meter_hub.const import (
    CONF_ACCOUNT_ID,
    CONF_PLACE_ID,
    CONF_REFRESH_TOKEN,
    CONF_SCAN_INTERVAL,
    CONF_SERVER,
    CONF_SOURCE,
    CONF_TOKEN,
    DOMAIN,
    SOURCE_CLOUD,
)
from custom_components.meter_hub.counter_guard import CounterGuard, rise_bound
from custom_components.meter_hub.history import CloudHistory
from custom_components.meter_hub.history_gaps import Gap
from custom_components.meter_hub.history_place import SITE_FIELDS
from custom_components.meter_hub.history_planning import (
    AccountClock,
    CounterTrack,
    Sample,
    SampleSeries,
    StatRow,
    needs_history,
    plan_backfill,
    plan_site,
    seam_difference,
    site_statistic_id,
)
from custom_components.meter_hub.history_recorder import HISTORY_COUNTER_RESET
from simulator.iammeter import FakeAccount, FakeIamMeterCloud, FakeMeter, FakePlace, Phase

START = datetime(2024, 3, 11, 8, 2, tzinfo=UTC)
STEP = timedelta(seconds=305)  # a little over the cloud coordinator's 5 minutes: a poll per step
PERIOD = timedelta(minutes=5)
COMPILE_DELAY = timedelta(seconds=10)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
GRID_SN = "AB12CD34"
SOLAR_SN = "50A1A001"
PLACE = "555"
OFFSET = timedelta(hours=1)
KEYS = ("energy_import_kwh", "energy_export_kwh")
EPS = 1e-6


def make_account() -> FakeAccount:
    """A grid meter (three phases: two import, one exports) and a solar meter, one place."""
    return FakeAccount(
        "history-user",
        "history-password",
        account_id=7788,
        meters=[
            FakeMeter(
                GRID_SN,
                (Phase(1500, 1000, 0), Phase(-800, 500, 200), Phase(300, 700, 0)),
                upload_second=20,
            ),
            FakeMeter(SOLAR_SN, (Phase(-2000, 10, 3000),), upload_second=40),
        ],
        places=[FakePlace(int(PLACE), GRID_SN, solar_sn=SOLAR_SN)],
        utc_offset=OFFSET,
    )


@pytest.fixture
def mock_recorder_before_hass(async_test_recorder: Any, freezer: FrozenDateTimeFactory) -> None:
    """Recorder before hass (PHCC), and the clock frozen before the recorder starts."""
    freezer.move_to(START)


@pytest.fixture
async def fake(
    recorder_mock: Any, socket_enabled: None, freezer: FrozenDateTimeFactory
) -> AsyncIterator[FakeIamMeterCloud]:
    """The fake cloud on Home Assistant's frozen clock."""
    cloud = FakeIamMeterCloud(clock=dt_util.utcnow, accounts=[make_account()])
    await cloud.start()
    yield cloud
    await cloud.stop()


def make_entry(cloud: FakeIamMeterCloud, **options: Any) -> MockConfigEntry:
    account = cloud.accounts[0]
    return MockConfigEntry(
        domain=DOMAIN,
        title=account.username,
        unique_id=str(account.account_id),
        data={
            CONF_SOURCE: SOURCE_CLOUD,
            CONF_SERVER: cloud.url,
            CONF_USERNAME: account.username,
            CONF_PASSWORD: account.password,
            CONF_ACCOUNT_ID: str(account.account_id),
            CONF_TOKEN: cloud.issue_token(account.username),
            CONF_REFRESH_TOKEN: "refresh",
        },
        options=options,
    )


class Harness:
    """Home Assistant with the entry, a clock to move, and the recorder's compiler."""

    def __init__(
        self, hass: HomeAssistant, freezer: FrozenDateTimeFactory, cloud: FakeIamMeterCloud
    ) -> None:
        self.hass = hass
        self.freezer = freezer
        self.cloud = cloud
        self.compiled = _period_floor(dt_util.utcnow())
        self.entry: MockConfigEntry | None = None

    async def setup(self, **options: Any) -> MockConfigEntry:
        self.entry = self.entry or make_entry(self.cloud, **options)
        if self.entry.entry_id not in {
            e.entry_id for e in self.hass.config_entries.async_entries()
        }:
            self.entry.add_to_hass(self.hass)
        assert await self.hass.config_entries.async_setup(self.entry.entry_id)
        await self.settle()
        return self.entry

    @property
    def history(self) -> CloudHistory:
        assert self.entry is not None
        history = self.entry.runtime_data.history
        assert history is not None
        return history

    async def settle(self) -> None:
        await self.hass.async_block_till_done(wait_background_tasks=True)
        await async_wait_recording_done(self.hass)

    async def compile_due(self) -> None:
        """The recorder's compiler, for the periods that have ended.

        Only the last period of each hour is compiled (what the recorder runs every 5 minutes
        takes a while here): each period continues the sum from the last compiled one, so the
        hourly rows of monotonic counters come out the same.
        """
        await async_wait_recording_done(self.hass)
        while self.compiled + PERIOD <= dt_util.utcnow():
            if self.compiled.minute == 55:
                get_instance(self.hass).queue_task(_statistics_task(self.compiled))
            self.compiled += PERIOD
        await async_wait_recording_done(self.hass)

    async def live(self, duration: timedelta) -> None:
        """Home Assistant runs: polls and history ticks, and the recorder compiles each
        5-minute period 10 seconds after its end, as it does."""
        now = dt_util.utcnow()
        end, step = now + duration, now + STEP
        while now < end:
            boundary = _hour_floor(self.compiled) + HOUR + COMPILE_DELAY
            now = min(step, boundary)
            self.freezer.move_to(now)
            if now == boundary:
                await self.compile_due()
            if now == step:
                step += STEP
            async_fire_time_changed(self.hass)
            await self.settle()

    async def off(self, duration: timedelta) -> None:
        """Home Assistant is off, then starts: first poll, then the missed statistics."""
        self.freezer.tick(duration)
        async_fire_time_changed(self.hass)
        await self.settle()
        get_instance(self.hass).queue_task(CompileMissingStatisticsTask())
        await async_wait_recording_done(self.hass)
        self.compiled = _period_floor(dt_util.utcnow())

    def entity_id(self, serial: str, key: str) -> str:
        entity_id = er.async_get(self.hass).async_get_entity_id("sensor", DOMAIN, f"{serial}_{key}")
        assert entity_id is not None
        return entity_id

    async def rows(self, statistic_id: str) -> list[StatRow]:
        result = await get_instance(self.hass).async_add_executor_job(
            statistics_during_period,
            self.hass,
            START - 100 * DAY,
            None,
            {statistic_id},
            "hour",
            None,
            {"state", "sum"},
        )
        return [
            StatRow(dt_util.utc_from_timestamp(row["start"]), row["state"], row["sum"])
            for row in result.get(statistic_id, [])
        ]

    def calls(self, endpoint: str) -> int:
        return sum(1 for call in self.cloud.calls if call.endpoint == endpoint)


def _statistics_task(start: datetime) -> Any:
    from homeassistant.components.recorder.tasks import StatisticsTask  # noqa: PLC0415

    return StatisticsTask(start, False)


def _hour_floor(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _period_floor(at: datetime) -> datetime:
    return at.replace(minute=at.minute - at.minute % 5, second=0, microsecond=0)


@pytest.fixture
async def harness(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, fake: FakeIamMeterCloud
) -> AsyncIterator[Harness]:
    harness = Harness(hass, freezer, fake)
    yield harness
    # What a test started (a reload's history run) finishes before the recorder is torn down:
    # Home Assistant 2025.4's recorder closes the database under a running query (a crash).
    await harness.settle()


def cloud_counter(cloud: FakeIamMeterCloud, serial: str, key: str, at: datetime) -> float:
    """The meter's counter in its 5-minute history at ``at`` (the last sample before it)."""
    meter = cloud.accounts[0].meter(serial)
    sample = _period_floor(at) + timedelta(seconds=meter.upload_second)
    if sample > at:
        sample -= PERIOD
    value = parse_values(meter.values(sample, 6))[1][key]
    assert isinstance(value, float)
    return value


def check_continuous(rows: list[StatRow]) -> None:
    """Every hour is there, none is negative, and ``sum - state`` never changes (no reset)."""
    assert rows
    offset = rows[0].sum - rows[0].state
    for before, row in itertools.pairwise(rows):
        assert row.start - before.start == HOUR, row.start
        assert row.sum - before.sum >= -EPS, row.start
        assert row.sum - row.state == pytest.approx(offset, abs=EPS), row.start


def by_start(rows: list[StatRow]) -> dict[datetime, StatRow]:
    return {row.start: row for row in rows}


def delta(rows: dict[datetime, StatRow], hour: datetime) -> float:
    return rows[hour].sum - rows[hour - HOUR].sum


# --- backfill ----------------------------------------------------------------------------------


def check_week(cloud: FakeIamMeterCloud, serial: str, key: str, rows: list[StatRow]) -> None:
    """The week's hours hold the meter's counter at their end, each the history's energy."""
    check_continuous(rows)
    first, hours = rows[0].start, by_start(rows)
    assert rows[0].sum == pytest.approx(
        cloud_counter(cloud, serial, key, first + HOUR) - cloud_counter(cloud, serial, key, first),
        abs=0.001,
    )
    for hour in (first + n * HOUR for n in range(len(rows))):
        assert hours[hour].state == cloud_counter(cloud, serial, key, hour + HOUR)
        if hour > first:
            assert delta(hours, hour) == pytest.approx(
                cloud_counter(cloud, serial, key, hour + HOUR)
                - cloud_counter(cloud, serial, key, hour),
                abs=0.001,
            )


@pytest.mark.parametrize("restart", [False, True])
async def test_first_setup_writes_the_week_before_at_once(harness: Harness, restart: bool) -> None:
    """The week before the first setup is there right after it, and the live hours continue it
    exactly; a restart right after the setup changes nothing."""
    entry = await harness.setup()
    setup_hour = START.replace(minute=0)
    # Two calls per meter: 7 days at 5 minutes are more than one call's 2000 points.
    assert harness.calls("meterdatalist2") == 4
    week: dict[str, list[StatRow]] = {}
    for serial, key in itertools.product((GRID_SN, SOLAR_SN), KEYS):
        week[serial + key] = rows = await harness.rows(harness.entity_id(serial, key))
        assert rows[0].start == setup_hour - 7 * DAY
        assert rows[-1].start == setup_hour - HOUR
        check_week(harness.cloud, serial, key, rows)
    if restart:
        assert await harness.hass.config_entries.async_reload(entry.entry_id)
        await harness.settle()
    # The recorder's first hour continues the week as it is compiled (not only once the
    # backfill has looked at it, two minutes later).
    await harness.live(setup_hour + HOUR + COMPILE_DELAY - dt_util.utcnow())
    assert harness.history.gaps.pending
    for serial, key in itertools.product((GRID_SN, SOLAR_SN), KEYS):
        rows = await harness.rows(harness.entity_id(serial, key))
        assert rows[-1].start == setup_hour
        check_continuous(rows)
    await harness.live(HOUR)
    # The recorder's first hour needed no history: it continued the week.
    assert harness.calls("meterdatalist2") == 4
    assert harness.history.gaps.pending == []

    for serial, key in itertools.product((GRID_SN, SOLAR_SN), KEYS):
        rows = await harness.rows(harness.entity_id(serial, key))
        check_continuous(rows)
        hours = by_start(rows)
        assert rows[: len(week[serial + key])] == week[serial + key]
        # The first live hour shows only its own energy: from the cloud's counter at its start to
        # the sensor's state at its end. The hour after is the recorder's own.
        assert delta(hours, setup_hour) == pytest.approx(
            hours[setup_hour].state - cloud_counter(harness.cloud, serial, key, setup_hour)
        )
        assert delta(hours, setup_hour + HOUR) == pytest.approx(
            hours[setup_hour + HOUR].state - hours[setup_hour].state
        )
    # The solar meter's import counter never moves: its hours are all 0, its export grows.
    solar = by_start(await harness.rows(harness.entity_id(SOLAR_SN, "energy_export_kwh")))
    assert all(row.sum >= 0 for row in solar.values())
    assert delta(solar, setup_hour - DAY) > 1


async def test_budget_refusal_defers_the_week(harness: Harness) -> None:
    """No history call beyond the budget: the week waits until the budget allows it. The
    recorder compiled its first periods (from 0) before the week was written: its first closed
    hour is moved onto the week's sum."""
    budget = await async_get_budget(harness.hass)
    for _ in range(4):  # a whole hour's worth of history calls of the grid meter
        await budget.async_spend(CallKind.METERDATALIST, GRID_SN)
    await harness.setup()
    assert {c.key for c in harness.cloud.calls if c.endpoint == "meterdatalist2"} == {SOLAR_SN}
    assert [gap.serials - gap.written for gap in harness.history.gaps.pending] == [{GRID_SN}]
    entity_id = harness.entity_id(GRID_SN, "energy_import_kwh")
    assert await harness.rows(entity_id) == []
    await harness.live(3 * HOUR)
    assert harness.history.gaps.pending == []
    rows = await harness.rows(entity_id)
    check_continuous(rows)
    setup_hour = START.replace(minute=0)
    assert rows[0].start == setup_hour - 7 * DAY
    check_week(
        harness.cloud, GRID_SN, "energy_import_kwh", [r for r in rows if r.start < setup_hour]
    )


async def test_restart_replaces_the_stale_hours(harness: Harness) -> None:
    """Home Assistant off for 3 hours: the recorder books the gap as stale hours and a spike;
    the backfill moves the energy into the hours it belongs to, and leaves the live hours."""
    await harness.setup()
    await harness.live(2 * HOUR + 30 * timedelta(minutes=1))
    stopped = harness.history.gaps.last_poll
    assert stopped is not None
    await harness.off(3 * HOUR)
    restarted = dt_util.utcnow()
    gap_first, gap_last = _hour_floor(stopped), _hour_floor(restarted)
    key = "energy_import_kwh"
    entity_id = harness.entity_id(GRID_SN, key)

    # After the restart the recorder compiled the missed hours from the last state it knew.
    before = by_start(await harness.rows(entity_id))
    assert before[gap_first + HOUR].sum == before[gap_first].sum
    assert before[gap_first + 2 * HOUR].sum == before[gap_first].sum
    calls = harness.calls("meterdatalist2")
    await harness.live(40 * timedelta(minutes=1))  # the hour of the restart is compiled
    assert harness.calls("meterdatalist2") == calls + 2  # one call per meter
    rows = await harness.rows(entity_id)
    check_continuous(rows)
    hours = by_start(rows)

    # The recorder's own accounting, in its 5-minute rows (left alone): flat, then the whole gap
    # in the period of the first poll.
    short = await get_instance(harness.hass).async_add_executor_job(
        statistics_during_period,
        harness.hass,
        gap_first,
        gap_last + HOUR,
        {entity_id},
        "5minute",
        None,
        {"sum"},
    )
    sums = [row["sum"] for row in short[entity_id]]
    spike = max(b - a for a, b in itertools.pairwise(sums))
    assert spike > 5

    # Rows up to the hour Home Assistant stopped in are untouched.
    for hour, row in before.items():
        if hour <= gap_first:
            assert hours[hour] == row
    # The stale hours now hold the meter's counter at their end: the first of them what the
    # meter counted since the last state before the stop, the next one its own hour ...
    for hour in (gap_first + HOUR, gap_first + 2 * HOUR):
        assert hours[hour].state == cloud_counter(harness.cloud, GRID_SN, key, hour + HOUR)
    assert delta(hours, gap_first + HOUR) == pytest.approx(
        cloud_counter(harness.cloud, GRID_SN, key, gap_first + 2 * HOUR) - hours[gap_first].state
    )
    assert delta(hours, gap_first + 2 * HOUR) == pytest.approx(
        cloud_counter(harness.cloud, GRID_SN, key, gap_first + 3 * HOUR)
        - cloud_counter(harness.cloud, GRID_SN, key, gap_first + 2 * HOUR)
    )
    # ... and the hour of the restart only its own energy: no spike, and no adjustment was
    # needed (its sum is the recorder's).
    assert delta(hours, gap_last) == pytest.approx(
        hours[gap_last].state - cloud_counter(harness.cloud, GRID_SN, key, gap_last)
    )
    assert delta(hours, gap_last) < spike / 2
    # The hours after it are the recorder's own.
    await harness.live(HOUR)
    hours = by_start(await harness.rows(entity_id))
    assert delta(hours, gap_last + HOUR) == pytest.approx(
        hours[gap_last + HOUR].state - hours[gap_last].state
    )


async def test_cloud_outage_fills_the_missing_hours(harness: Harness) -> None:
    """The cloud unreachable for 3 hours: the sensors are unavailable and the hours missing."""
    await harness.setup()
    await harness.live(2 * HOUR)
    port = int(harness.cloud.url.rsplit(":", 1)[1])
    await harness.cloud.stop()
    await harness.live(3 * HOUR)
    key = "energy_export_kwh"
    entity_id = harness.entity_id(GRID_SN, key)
    assert harness.hass.states.get(entity_id).state == "unavailable"
    await harness.cloud.start(port)
    gap = by_start(await harness.rows(entity_id))
    back = _hour_floor(dt_util.utcnow())
    await harness.live(2 * HOUR)
    rows = await harness.rows(entity_id)
    check_continuous(rows)
    hours = by_start(rows)
    missing = sorted(hour for hour in hours if hour not in gap and hour < back)
    assert len(missing) >= 2
    for hour in missing:
        assert hours[hour].state == cloud_counter(harness.cloud, GRID_SN, key, hour + HOUR)
    # Rows the recorder compiled keep their sums: the seam needed no adjustment.
    for hour, row in gap.items():
        assert hours[hour].sum == pytest.approx(row.sum, abs=EPS)
    closing = max(missing) + HOUR
    assert delta(hours, closing) == pytest.approx(
        hours[closing].state - cloud_counter(harness.cloud, GRID_SN, key, closing)
    )


async def test_reload_after_a_gap_backfills_from_the_stored_poll(harness: Harness) -> None:
    """The last poll is stored: a later start knows what it missed."""
    entry = await harness.setup()
    await harness.live(2 * HOUR)
    stopped = harness.history.gaps.last_poll
    assert await harness.hass.config_entries.async_unload(entry.entry_id)
    await harness.settle()
    harness.freezer.tick(2 * HOUR)
    harness.compiled = _period_floor(dt_util.utcnow())
    await harness.setup()
    assert [(gap.start, gap.serials) for gap in harness.history.gaps.pending] == [
        (stopped, {GRID_SN, SOLAR_SN})
    ]
    await harness.live(2 * HOUR)
    assert harness.history.gaps.pending == []
    for key in KEYS:
        check_continuous(await harness.rows(harness.entity_id(GRID_SN, key)))


async def test_importing_twice_changes_nothing(harness: Harness) -> None:
    await harness.setup()
    await harness.live(2 * HOUR)
    await harness.off(3 * HOUR)
    await harness.live(2 * HOUR)
    ids = [harness.entity_id(serial, key) for serial in (GRID_SN, SOLAR_SN) for key in KEYS]
    before = {statistic_id: await harness.rows(statistic_id) for statistic_id in ids}
    history = harness.history
    assert history.gaps.pending == []
    # The same gaps again, the first setup's week too.
    now = dt_util.utcnow()
    history.gaps.pending = [Gap(now - 8 * DAY, now - HOUR, {GRID_SN, SOLAR_SN})]
    await history.async_run()
    await harness.settle()
    assert history.gaps.pending == []
    assert {statistic_id: await harness.rows(statistic_id) for statistic_id in ids} == before


async def test_rate_limited_history_backs_off(harness: Harness) -> None:
    harness.cloud.inject_fault(1, endpoint="meterdatalist2")  # "returns nothing"
    await harness.setup()
    await harness.live(20 * timedelta(minutes=1))
    budget = await async_get_budget(harness.hass)
    serial = harness.cloud.calls[-1].key if harness.cloud.calls else None
    refused = [
        serial
        for serial in (GRID_SN, SOLAR_SN)
        if budget.ledger.next_allowed(CallKind.METERDATALIST, serial) > dt_util.utcnow()
    ]
    assert len(refused) == 1, serial
    assert [gap.serials - gap.written for gap in harness.history.gaps.pending] == [set(refused)]
    await harness.live(2 * HOUR)
    assert harness.history.gaps.pending == []
    for key in KEYS:
        check_continuous(await harness.rows(harness.entity_id(refused[0], key)))


async def test_broken_history_answer_is_retried(harness: Harness) -> None:
    harness.cloud.inject_fault(2, status=500, endpoint="meterdatalist2")
    await harness.setup()
    await harness.live(20 * timedelta(minutes=1))
    assert [len(gap.serials - gap.written) for gap in harness.history.gaps.pending] == [2]
    await harness.live(2 * HOUR)
    assert harness.history.gaps.pending == []


async def test_backfill_gives_up_on_a_failing_cloud(harness: Harness) -> None:
    harness.cloud.inject_fault(20, status=500, endpoint="meterdatalist2")
    await harness.setup()
    await harness.live(3 * HOUR)
    assert harness.history.gaps.pending == []
    # Three tries per meter, then only the live hours.
    assert harness.calls("meterdatalist2") == 6
    rows = await harness.rows(harness.entity_id(GRID_SN, "energy_import_kwh"))
    assert rows[0].start == START.replace(minute=0)


async def test_no_recorder_no_history(hass: HomeAssistant, fake: FakeIamMeterCloud) -> None:
    """Without the recorder loaded there is nothing to backfill into."""
    hass.config.components.remove("recorder")
    entry = make_entry(fake)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data.history is None
    hass.config.components.add("recorder")


async def test_new_meter_and_removed_meter(harness: Harness) -> None:
    await harness.setup()
    await harness.live(75 * timedelta(minutes=1))
    account = harness.cloud.accounts[0]
    account.meters.append(FakeMeter("0E0E0E0E", (Phase(200, 50, 0),), upload_second=5))
    await harness.live(timedelta(minutes=11))
    history = harness.history
    assert [gap.serials for gap in history.gaps.pending] == [{"0E0E0E0E"}]
    # Its week is there at once (the gap stays until the recorder's first hour joins it).
    rows = await harness.rows(harness.entity_id("0E0E0E0E", "energy_import_kwh"))
    assert len(rows) == 7 * 24
    assert rows[-1].start == _hour_floor(dt_util.utcnow()) - HOUR
    check_week(harness.cloud, "0E0E0E0E", "energy_import_kwh", rows)
    # The meter leaves the account before it was backfilled: its gap goes with it.
    account.meters.pop()
    await harness.live(20 * timedelta(minutes=1))
    assert history.gaps.pending == []


async def test_corrupt_store_is_ignored(harness: Harness, hass_storage: dict[str, Any]) -> None:
    entry = make_entry(harness.cloud)
    harness.entry = entry
    hass_storage[f"{DOMAIN}.history_{entry.entry_id}"] = {
        "version": 1,
        "key": f"{DOMAIN}.history_{entry.entry_id}",
        "data": {"last_poll": "2024-03-11T07:00:00+00:00", "gaps": [{"start": 3}]},
    }
    await harness.setup()
    # Unreadable: started over, as on a first setup.
    assert [gap.serials for gap in harness.history.gaps.pending] == [{GRID_SN, SOLAR_SN}]


# --- site energy -------------------------------------------------------------------------------


def place_rows(
    cloud: FakeIamMeterCloud, start: date, end: date, groupby: str
) -> list[dict[str, Any]]:
    """What the fake cloud answers (the test's own copy of the vendor's hourly values)."""
    account = cloud.accounts[0]
    grid, solar = account.meter(GRID_SN), account.meter(SOLAR_SN)
    step = HOUR if groupby == "hour" else DAY
    begin, stop, now = account.midnight(start), account.midnight(end), dt_util.utcnow()
    rows = []
    while begin < min(stop, now):
        until = min(begin + step, now)
        (imp0, exp0), (imp1, exp1) = grid.energy(begin), grid.energy(until)
        made = sum(solar.energy(until)) - sum(solar.energy(begin))
        rows.append(
            {
                "start": begin,
                "from_grid": round(imp1 - imp0, 2),
                "to_grid": round(exp1 - exp0, 2),
                "yield": round(made, 2),
            }
        )
        begin += step
    return rows


async def test_place_energy_as_external_statistics(harness: Harness) -> None:
    await harness.setup(**{CONF_PLACE_ID: PLACE})
    hass = harness.hass
    # The account's time zone came with the meters' history (no call of its own); one call by
    # day, one by hour: the place's statistics are there right after the setup.
    assert harness.calls("meterdata2") == 0
    assert harness.calls("energyhistory") == 2
    now = dt_util.utcnow()
    today = (now + OFFSET).date()
    hourly_from = today - 6 * DAY
    ids = {suffix: f"{DOMAIN}:{PLACE}_{suffix}" for suffix in SITE_FIELDS}
    listed = await async_list_statistic_ids(hass, statistic_type="sum")
    assert {item["statistic_id"] for item in listed} >= set(ids.values())
    metadata = await get_instance(hass).async_add_executor_job(
        partial(get_metadata, hass, statistic_ids=set(ids.values()))
    )
    meta = metadata[ids["from_grid"]][1]
    assert (meta["unit_of_measurement"], meta["has_sum"], meta["source"]) == ("kWh", True, DOMAIN)
    assert meta.get("unit_class", "energy") == "energy"

    for suffix in ("from_grid", "to_grid", "yield"):
        rows = await harness.rows(ids[suffix])
        expected = [
            (row["start"], row[suffix])
            for row in place_rows(harness.cloud, today - 96 * DAY, hourly_from, "day")
        ] + [
            (row["start"], row[suffix])
            for row in place_rows(harness.cloud, hourly_from, today + DAY, "hour")
            if row["start"] + HOUR <= now
        ]
        assert [(row.start, row.state) for row in rows] == pytest.approx(expected)
        total = 0.0
        for row in rows:
            total += row.state
            assert row.sum == pytest.approx(total)
        # Days by day at the account's local midnight, then hours.
        assert rows[0].start == datetime.combine(today - 96 * DAY, time(), UTC) - OFFSET
        assert rows[89].start + DAY == rows[90].start
        assert rows[90].start + HOUR == rows[91].start
    assert all(row.state == 0 for row in await harness.rows(ids["special_load"]))

    # Kept current: the next hour adds a row and continues the sum; once an hour.
    before = await harness.rows(ids["from_grid"])
    await harness.live(HOUR)
    assert harness.calls("energyhistory") == 3
    after = await harness.rows(ids["from_grid"])
    assert after[: len(before)] == before
    assert len(after) == len(before) + 1
    assert after[-1].sum == pytest.approx(before[-1].sum + after[-1].state)

    # Importing again changes nothing.
    harness.history.place_sync.synced_hour = None
    await harness.history.async_run()
    await harness.settle()
    assert await harness.rows(ids["from_grid"]) == after


async def test_place_energy_after_a_long_outage(harness: Harness) -> None:
    """Ten days without a sync: the missed days come by day, the sum continues."""
    await harness.setup(**{CONF_PLACE_ID: PLACE})
    statistic_id = f"{DOMAIN}:{PLACE}_from_grid"
    before = await harness.rows(statistic_id)
    assert await harness.hass.config_entries.async_unload(harness.entry.entry_id)
    await harness.settle()
    harness.freezer.tick(10 * DAY)
    harness.compiled = _period_floor(dt_util.utcnow())
    await harness.setup()
    rows = await harness.rows(statistic_id)
    assert rows[: len(before) - 24] == before[: len(before) - 24]
    total = rows[0].sum - rows[0].state
    for previous, row in itertools.pairwise(rows):
        assert row.start > previous.start
        assert row.sum == pytest.approx(previous.sum + row.state)
    assert total == 0
    # The day the last sync was in became one daily row (older than the hourly window).
    day_of_last = before[-1].start + OFFSET
    midnight = datetime.combine(day_of_last.date(), time(), UTC) - OFFSET
    assert by_start(rows)[midnight].state > 10


async def test_place_energy_within_the_budget(harness: Harness) -> None:
    budget = await async_get_budget(harness.hass)
    for _ in range(4):
        await budget.async_spend(CallKind.ENERGYHISTORY, PLACE)
    await harness.setup(**{CONF_PLACE_ID: PLACE})
    assert harness.calls("energyhistory") == 0
    await harness.live(HOUR + PERIOD)
    assert harness.calls("energyhistory") == 2


async def test_place_energy_errors(harness: Harness) -> None:
    harness.cloud.inject_fault(1, endpoint="energyhistory")  # rate limited
    await harness.setup(**{CONF_PLACE_ID: PLACE})
    assert harness.calls("energyhistory") == 1
    await harness.live(50 * timedelta(minutes=1))
    assert harness.calls("energyhistory") == 1  # backed off for an hour
    await harness.live(20 * timedelta(minutes=1))
    assert harness.calls("energyhistory") == 3
    # An unknown place: the cloud refuses, tried again an hour later.
    calls = harness.calls("energyhistory")
    harness.hass.config_entries.async_update_entry(harness.entry, options={CONF_PLACE_ID: "999"})
    await harness.live(10 * timedelta(minutes=1))
    assert harness.calls("energyhistory") == calls + 1
    await harness.live(HOUR)
    assert harness.calls("energyhistory") == calls + 2


async def test_place_energy_without_time_zone(harness: Harness) -> None:
    """The account's time zone cannot be learned yet: nothing is imported, tried again later."""
    harness.cloud.inject_fault(1, status=500, endpoint="meterdata2")
    harness.cloud.inject_fault(2, status=500, endpoint="meterdatalist2")
    await harness.setup(**{CONF_PLACE_ID: PLACE})
    assert harness.calls("energyhistory") == 0
    await harness.live(35 * timedelta(minutes=1))
    assert harness.calls("energyhistory") == 2


async def test_options_flow_place_id(harness: Harness) -> None:
    entry = await harness.setup()
    hass = harness.hass
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert CONF_PLACE_ID in result["data_schema"].schema
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_SCAN_INTERVAL: 5, CONF_PLACE_ID: "my place!"}
    )
    assert result["errors"] == {CONF_PLACE_ID: "invalid_place_id"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_SCAN_INTERVAL: 5, CONF_PLACE_ID: f" {PLACE} "}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {CONF_SCAN_INTERVAL: 300, CONF_PLACE_ID: PLACE}
    await harness.settle()
    assert entry.state is ConfigEntryState.LOADED
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_SCAN_INTERVAL: 5, CONF_PLACE_ID: ""}
    )
    assert entry.options == {CONF_SCAN_INTERVAL: 300}


# --- planning, without Home Assistant ----------------------------------------------------------

T0 = datetime(2024, 5, 5, tzinfo=UTC)


def _guard() -> CounterGuard:
    return CounterGuard("sensor.test", rise_bound(None, "kWh"), HISTORY_COUNTER_RESET)


def test_counter_track_ignores_glitches_and_confirms_resets() -> None:
    at = iter(T0 + n * PERIOD for n in range(100))
    counter = CounterTrack(_guard(), 100.0, next(at))
    assert counter.add(101.0, next(at)) == 1.0
    assert counter.add(100.5, next(at)) == 0.0  # a dip: held
    assert counter.add(101.5, next(at)) == 0.5
    assert counter.add(0.0, next(at)) == 0.0  # a glitch ...
    assert counter.add(102.0, next(at)) == 0.5  # ... that the next value does not confirm
    assert counter.add(1e6, next(at)) == 0.0  # a spike up ...
    assert counter.add(102.1, next(at)) == pytest.approx(0.1)  # ... and its return: nothing
    assert counter.add(0.4, next(at)) == 0.0  # a replaced meter ...
    assert counter.add(0.5, next(at)) == 0.0  # ... still lower, 5 minutes ...
    assert counter.add(0.6, next(at)) == 0.6  # ... 10 minutes, 3 samples: counted from 0
    assert counter.add(1.0, next(at)) == pytest.approx(0.4)
    assert CounterTrack(_guard(), None, None).add(5.0, T0) == 0.0


def test_counter_track_does_not_count_missing_samples_as_observed() -> None:
    counter = CounterTrack(_guard(), 100.0, T0)
    assert counter.add(0.4, T0 + PERIOD) == 0.0
    assert counter.add(0.5, T0 + 2 * PERIOD) == 0.0
    # an hour of samples missing: the observation starts again
    assert counter.add(0.6, T0 + 14 * PERIOD) == 0.0
    assert counter.add(0.6, T0 + 15 * PERIOD) == 0.0
    assert counter.add(0.7, T0 + 16 * PERIOD) == 0.7


def test_plan_leaves_an_open_run_and_keeps_live_rows() -> None:
    series = SampleSeries(Sample(T0 + n * PERIOD, 10.0 + n * 0.1) for n in range(12 * 6))
    assert len(series) == 72
    rows = [StatRow(T0, 11.1, 1.1), StatRow(T0 + 3 * HOUR, 14.7, 4.7)]
    # Hours 1 and 2 missing, hour 3 live: closed. Nothing after hour 3 closes anything.
    plan = plan_backfill(rows, series, T0, T0 + 5 * HOUR, 0.01, new_guard=_guard)
    assert [row.start for row in plan.rows] == [T0 + HOUR, T0 + 2 * HOUR]
    assert plan.adjustments == []
    assert plan.rows[-1].sum == pytest.approx(plan.rows[-1].state - 10.0)
    again = plan_backfill([*rows, *plan.rows], series, T0, T0 + 3 * HOUR, 0.01, new_guard=_guard)
    assert again.rows == again.adjustments == []
    assert needs_history(rows, T0, T0 + 3 * HOUR)
    assert not needs_history([*rows, *plan.rows], T0, T0 + 3 * HOUR)
    # A stale (repeated) row is a candidate too.
    assert needs_history([rows[0], StatRow(T0 + HOUR, 11.1, 1.1)], T0, T0 + 2 * HOUR)


def test_plan_open_end_writes_the_run_the_recorder_continues() -> None:
    series = SampleSeries(Sample(T0 + n * PERIOD, 10.0 + n * 0.1) for n in range(12 * 3 + 1))
    # No rows at all (a new meter): from 0, every hour the history covers, none left open.
    plan = plan_backfill([], series, T0, T0 + 2 * HOUR, 0.01, new_guard=_guard, open_end=True)
    assert [(row.start, row.state) for row in plan.rows] == [
        (T0 + n * HOUR, pytest.approx(11.2 + n * 1.2)) for n in range(3)
    ]
    assert [row.sum for row in plan.rows] == pytest.approx([1.2, 2.4, 3.6])
    # The recorder's first hour, compiled from 0 before the week was written, is moved onto it;
    # once moved (or when it continued the week), nothing.
    week = plan.rows
    assert seam_difference(
        [*week, StatRow(T0 + 3 * HOUR, 15.0, 1.2)], T0 + 3 * HOUR, _guard
    ) == pytest.approx(3.6 + (15.0 - 13.6) - 1.2)
    assert seam_difference(
        [*week, StatRow(T0 + 3 * HOUR, 15.0, 5.0)], T0 + 3 * HOUR, _guard
    ) == pytest.approx(0.0)
    assert seam_difference(week, T0 + 3 * HOUR, _guard) == 0.0


@pytest.mark.parametrize("glitch", [1_015_234.567, 0.0, 5.0])
def test_plan_books_no_glitched_sample(glitch: float) -> None:
    """One glitched 5-minute sample (a spike, or a dip), then the true counter again: the plan
    is that of the true history (issue 13: the spike and its return as a "reset" were booked,
    and every later row shifted)."""
    true = [Sample(T0 + n * PERIOD, 10.0 + n * 0.1) for n in range(12 * 4)]
    glitched = [Sample(s.at, glitch) if n == 20 else s for n, s in enumerate(true)]
    rows = [StatRow(T0 - HOUR, 9.9, 100.0), StatRow(T0 + 3 * HOUR, 14.7, 104.8)]
    expected = plan_backfill(rows, SampleSeries(true), T0, T0 + 3 * HOUR, 0.01, new_guard=_guard)
    plan = plan_backfill(rows, SampleSeries(glitched), T0, T0 + 3 * HOUR, 0.01, new_guard=_guard)
    assert [(row.start, row.state) for row in plan.rows] == [
        (row.start, pytest.approx(row.state)) for row in expected.rows
    ]
    assert [row.sum for row in plan.rows] == pytest.approx([101.3, 102.5, 103.7])
    assert plan.adjustments == expected.adjustments == []


def test_plan_without_samples_before_the_gap_waits_for_them() -> None:
    series = SampleSeries(Sample(T0 + 2 * HOUR + n * PERIOD, 20.0 + n) for n in range(12))
    rows = [StatRow(T0 + 3 * HOUR, 33.0, 5.0)]
    plan = plan_backfill(rows, series, T0, T0 + 3 * HOUR, 0.01, new_guard=_guard)
    # Hours 0 and 1 are before the first sample; hour 2 starts at 0 from its first sample.
    assert [(row.start, row.sum) for row in plan.rows] == [(T0 + 2 * HOUR, 11.0)]
    # The live row after it is moved to continue: 11 + (33 - 31).
    assert plan.adjustments == [(T0 + 3 * HOUR, pytest.approx(13.0 - 5.0))]


def test_plan_writes_only_hours_the_history_covers() -> None:
    # The history ends at 01:20: hour 1 is not covered, the live row at hour 2 gets its energy.
    series = SampleSeries(Sample(T0 + n * PERIOD, 10.0 + n * 0.1) for n in range(17))
    rows = [StatRow(T0 - HOUR, 9.0, 100.0), StatRow(T0 + 2 * HOUR, 14.0, 105.0)]
    plan = plan_backfill(rows, series, T0, T0 + 2 * HOUR, 0.01, new_guard=_guard)
    assert [row.start for row in plan.rows] == [T0]
    assert plan.rows[0].sum == pytest.approx(100.0 + 11.2 - 9.0)
    assert plan.adjustments == []


def test_plan_lifts_a_run_to_an_older_sum() -> None:
    # No row before the gap within reach, but the recorder continued an older sum: the run is
    # lifted to meet it, the recorder's rows stay.
    series = SampleSeries(Sample(T0 + n * PERIOD, 10.0 + n * 0.1) for n in range(40))
    rows = [StatRow(T0 + 2 * HOUR, 12.5, 5000.0)]
    plan = plan_backfill(rows, series, T0, T0 + 2 * HOUR, 0.01, new_guard=_guard)
    assert plan.adjustments == []
    assert [(row.start, row.sum) for row in plan.rows] == [
        (T0, pytest.approx(5000.0 - 0.1 - 1.2)),
        (T0 + HOUR, pytest.approx(5000.0 - 0.1)),
    ]


def test_plan_site_rewrites_rows_it_no_longer_has() -> None:
    existing = [StatRow(T0, 1.0, 1.0), StatRow(T0 + HOUR, 2.0, 3.0), StatRow(T0 + 2 * HOUR, 1, 4)]
    planned = plan_site(existing, {T0 + HOUR: 2.0}, T0 + HOUR)
    # Hour 1 is unchanged and left out; hour 2 has no value any more: no energy.
    assert planned == [StatRow(T0 + 2 * HOUR, 0.0, 3.0)]
    assert plan_site([], {T0: 1.5}, T0) == [StatRow(T0, 1.5, 1.5)]


def test_site_statistic_ids_are_valid() -> None:
    assert site_statistic_id("2393", "yield") == "meter_hub:2393_yield"
    assert site_statistic_id("A1B2-C3D4__E5", "to_grid") == "meter_hub:a1b2_c3d4_e5_to_grid"
    assert site_statistic_id("--", "yield") == "meter_hub:place_yield"


def test_account_clock() -> None:
    home = dt_util.get_time_zone("Europe/Amsterdam")
    assert home is not None
    winter = datetime(2024, 1, 10, 12, tzinfo=UTC)
    clock = AccountClock.from_offset(timedelta(hours=1), home, winter)
    assert clock.zone is home  # same offset now: Home Assistant's zone, with its DST
    local_midnight = datetime(2024, 7, 1)  # noqa: DTZ001 - the account's wall clock is naive
    assert clock.to_utc(local_midnight) == datetime(2024, 6, 30, 22, tzinfo=UTC)
    india = AccountClock.from_offset(timedelta(hours=5, minutes=30), home, winter)
    assert india.to_utc(local_midnight) == datetime(2024, 6, 30, 18, tzinfo=UTC)
    assert india.today(datetime(2024, 6, 30, 19, tzinfo=UTC)) == date(2024, 7, 1)


def test_gap_round_trip() -> None:
    gap = Gap(T0, T0 + HOUR, {"B", "A"})
    assert Gap.from_dict(gap.to_dict()) == gap
    assert gap.to_dict()["serials"] == ["A", "B"]
