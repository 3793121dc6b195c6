"""The pure planning of the history jobs: which statistics rows to write, from what.

No Home Assistant calls: rows, samples and times in, rows and sum adjustments out. The
backfill (``history_backfill.py``) and the place-energy sync (``history_place.py``) read and write the
recorder around these.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
import re
from typing import Final

from .const import DOMAIN
from .counter_guard import CounterGuard

HOUR: Final = timedelta(hours=1)
HISTORY_INTERVAL_S: Final = 300
"""The meters' 5-minute history (``meterdatalist2``), the interval of the cloud's polls."""
ADJUST_EPSILON: Final = 1e-6
COVERAGE_SLACK: Final = timedelta(minutes=10)
"""An hour counts as covered by the history when a sample is at most this long before its end."""
MISSING_SAMPLES: Final = timedelta(seconds=2 * HISTORY_INTERVAL_S)
"""Samples further apart than this have some missing between them."""


def hour_floor(at: datetime) -> datetime:
    """The start of the hour that holds ``at``."""
    return at.replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class StatRow:
    """One hourly statistics row: its start (UTC), the counter and the running sum."""

    start: datetime
    state: float
    sum: float


@dataclass(frozen=True, slots=True)
class Sample:
    """A counter value of the meter's history."""

    at: datetime
    value: float


class SampleSeries:
    """A meter counter's history, sorted by time."""

    def __init__(self, samples: Iterable[Sample]) -> None:
        """Sort ``samples``."""
        self._samples = sorted(samples, key=lambda sample: sample.at)
        self._times = [sample.at for sample in self._samples]

    def __len__(self) -> int:
        """Number of samples."""
        return len(self._samples)

    @property
    def last_at(self) -> datetime | None:
        """The time of the last sample."""
        return self._times[-1] if self._times else None

    def value_at(self, at: datetime) -> float | None:
        """The counter at ``at``: the last sample at or before it (None before the first)."""
        index = bisect_right(self._times, at)
        return self._samples[index - 1].value if index else None

    def between(self, start: datetime, end: datetime) -> list[Sample]:
        """The samples after ``start`` up to and including ``end``."""
        return self._samples[bisect_right(self._times, start) : bisect_right(self._times, end)]


class CounterTrack:
    """Adds up what the counter guard lets through of a counter's history, never a negative.

    The history goes through the same rule as the live sensors (``counter_guard``): a sample that
    rises faster than the meter can measure, or drops without being confirmed by the samples after
    it, adds nothing; a confirmed drop is a reset (a replaced meter, counting from 0).
    """

    __slots__ = ("_at", "_guard")

    def __init__(self, guard: CounterGuard, level: float | None, at: datetime | None) -> None:
        """Continue ``guard`` from ``level``, the counter at ``at`` (None: the first sample)."""
        self._guard = guard
        self._at = at
        if level is not None and at is not None:
            guard.restore(level, at.timestamp())

    @property
    def level(self) -> float | None:
        """The counter as published so far."""
        return self._guard.published

    def add(self, value: float, at: datetime) -> float:
        """Take the sample ``value`` of ``at``; return the energy it adds."""
        if self._at is not None and at - self._at > MISSING_SAMPLES:
            self._guard.interrupt()  # samples missing: an observation starts again
        self._at = at
        level = self._guard.published
        published = self._guard.accept(value, at.timestamp())
        if level is None or published is None:
            return 0.0
        return published - level if published >= level else published


@dataclass(slots=True)
class BackfillPlan:
    """What to write: sum adjustments (from a start on) first, then the rows."""

    rows: list[StatRow] = field(default_factory=list)
    adjustments: list[tuple[datetime, float]] = field(default_factory=list)


def _is_stale(row: StatRow, counter_at_start: float | None, tolerance: float) -> bool:
    """Whether ``row``'s counter is behind the meter's at the start of the row's own hour."""
    return counter_at_start is not None and row.state < counter_at_start - tolerance


def needs_history(rows: Sequence[StatRow], first: datetime, last: datetime) -> bool:
    """Whether an hour in ``[first, last)`` is missing or unchanged (maybe stale).

    Stale rows repeat the row before them, so rows that all changed need no cloud call.
    """
    by_start = {row.start: row for row in rows}
    previous = max((row for row in rows if row.start < first), key=lambda r: r.start, default=None)
    hour = first
    while hour < last:
        row = by_start.get(hour)
        if row is None:
            return True
        if previous is not None and (row.state, row.sum) == (previous.state, previous.sum):
            return True
        previous, hour = row, hour + HOUR
    return False


def plan_backfill(
    rows: Sequence[StatRow],
    series: SampleSeries,
    first: datetime,
    last: datetime,
    tolerance: float,
    *,
    new_guard: Callable[[], CounterGuard],
    open_end: bool = False,
) -> BackfillPlan:
    """Plan the rows to rewrite in ``[first, last]``; ``last`` holds the closing row.

    ``rows`` are the statistic's existing hourly rows (from before ``first`` too, to continue
    from); ``series`` is the meter's counter history in the statistic's unit; ``new_guard``
    makes the counter guard of the statistic. A run of missing or stale hours that no kept row
    closes is left alone (the recorder has not caught up yet), unless ``open_end``: the hours
    after ``last`` are the recorder's to come (a meter seen for the first time), which will
    continue from the last row written. A kept row's counter is taken as of the end of its hour.
    """

    def track(level: float | None, at: datetime | None) -> CounterTrack:
        return CounterTrack(new_guard(), level, at)

    plan = BackfillPlan()
    by_start = {row.start: row for row in rows}
    anchor = max((row for row in rows if row.start < first), key=lambda r: r.start, default=None)
    base = None if anchor is None else anchor.sum
    counter = track(*((None, None) if anchor is None else (anchor.state, anchor.start + HOUR)))
    shift = 0.0  # adjustments planned so far, which move every existing row after them
    run_sum: float | None = None  # the running sum while in a run of rewritten hours
    run_rows: list[StatRow] = []
    floating = False  # the run started at 0 for want of a row before it
    # An hour is only written when the history reaches its end: where it stops short (the
    # meter stopped uploading, or the answer ended early) the kept row after the run gets the
    # energy, as the recorder would have booked it.
    covered = series.last_at
    hour = first
    while hour <= last:
        end = hour + HOUR
        row = by_start.get(hour)
        if row is not None and not _is_stale(row, series.value_at(hour), tolerance):
            if run_sum is not None:
                # The kept row after a run: it shows its own hour only.
                expected = run_sum + counter.add(row.state, end)
                difference = expected - (row.sum + shift)
                if floating and difference < 0:
                    # The recorder continues an older sum (beyond the rows read): lift the run
                    # to it rather than lower the recorder's rows. Starting at 0 and moving the
                    # recorder's rows up instead (the first setup) keeps every sum positive.
                    run_rows = [StatRow(r.start, r.state, r.sum - difference) for r in run_rows]
                elif abs(difference) > ADJUST_EPSILON:
                    plan.adjustments.append((hour, difference))
                    shift += difference
                plan.rows.extend(run_rows)
                run_rows, run_sum, floating = [], None, False
            counter = track(row.state, end)
            base = row.sum + shift
        else:
            if run_sum is None:
                if base is None:
                    # No row to continue from: start at 0 where the cloud's counter is known.
                    if (start_value := series.value_at(hour)) is None:
                        hour = end
                        continue
                    counter, base, floating = track(start_value, hour), 0.0, True
                run_sum = base
            for sample in series.between(hour, end):
                run_sum += counter.add(sample.value, sample.at)
            if (
                counter.level is not None
                and covered is not None
                and end - COVERAGE_SLACK <= covered
            ):
                run_rows.append(StatRow(hour, counter.level, run_sum))
        hour = end
    if open_end:
        plan.rows.extend(run_rows)
    return plan


def seam_difference(
    rows: Sequence[StatRow], closing: datetime, new_guard: Callable[[], CounterGuard]
) -> float:
    """How far the closing row's sum is off the one that continues the row before it.

    After a meter's week was written at once, the recorder's first hour continues it; it does
    not when the recorder compiled its first period before the week was written (it then
    counted from 0): the difference moves its rows up to the week's sum.
    """
    after = next((row for row in rows if row.start == closing), None)
    before = max((row for row in rows if row.start < closing), key=lambda r: r.start, default=None)
    if after is None or before is None:
        return 0.0
    counter = CounterTrack(new_guard(), before.state, before.start + HOUR)
    return before.sum + counter.add(after.state, after.start + HOUR) - after.sum


def site_statistic_id(place_id: str, suffix: str) -> str:
    """The external statistic id of a place's quantity: lowercase, no ``-``, no ``__``."""
    slug = re.sub(r"[^a-z0-9]+", "_", place_id.lower()).strip("_") or "place"
    return f"{DOMAIN}:{slug}_{suffix}"


def plan_site(
    existing: Sequence[StatRow], points: Mapping[datetime, float], resume: datetime
) -> list[StatRow]:
    """Rows of an external statistic from ``resume`` on, continuing the sum before it.

    Existing rows from ``resume`` on that the new data does not hold are rewritten with no
    energy, so the running sum stays monotonic. Rows that would not change are left out.
    """
    before = [row for row in existing if row.start < resume]
    total = max(before, key=lambda row: row.start).sum if before else 0.0
    old = {row.start: row for row in existing if row.start >= resume}
    values = dict.fromkeys(old, 0.0) | {
        start: value for start, value in points.items() if start >= resume
    }
    planned: list[StatRow] = []
    for start in sorted(values):
        total += values[start]
        planned.append(StatRow(start, values[start], total))
    return [
        row
        for row in planned
        if (kept := old.get(row.start)) is None
        or abs(kept.sum - row.sum) > ADJUST_EPSILON
        or abs(kept.state - row.state) > ADJUST_EPSILON
    ]


@dataclass(frozen=True, slots=True)
class AccountClock:
    """The account's wall clock, which the cloud's dates and local times use."""

    zone: tzinfo

    @classmethod
    def from_offset(cls, offset: timedelta, home: tzinfo, now: datetime) -> AccountClock:
        """Home Assistant's zone when it has this offset now (DST-aware), else the offset."""
        return cls(home if home.utcoffset(now) == offset else timezone(offset))

    def to_utc(self, local: datetime) -> datetime:
        """The UTC hour that holds the local time ``local`` (naive)."""
        return hour_floor(local.replace(tzinfo=self.zone).astimezone(UTC))

    def today(self, now: datetime) -> date:
        """The account's date at ``now``."""
        return now.astimezone(self.zone).date()
