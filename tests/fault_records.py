"""Figures of the reliability tests (issue 7): one JSON record per case, read by ``scripts/faults``.

Every fault case, property test and secret test fills in a ``CaseRecord`` as it measures (its own
counts, not pytest's verdict) and the ``fault_record`` fixture writes it when the test ends, also
when the test failed. Records go to ``$METER_HUB_FAULTS_RECORDS/records-<pid>.jsonl`` (one file per
process, so that parallel workers never write to the same file); without that variable nothing is
written and the tests only assert.

The helpers below measure what the records hold: ``LogWatch`` (tracebacks and the log lines of an
outage), ``CounterWatch`` (every value a cumulative sensor publishes) and ``LoopStallWatch`` (the
longest time the event loop was blocked).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
import gc
from itertools import pairwise
import json
import logging
import math
import os
from pathlib import Path
import time
import traceback

from homeassistant.components.sensor import ATTR_STATE_CLASS, SensorStateClass
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
import pytest

RECORDS_ENV = "METER_HUB_FAULTS_RECORDS"
OUR_LOGGER = "custom_components.meter_hub"
RESET_ACCEPTED = "accepting it as a meter reset"


@dataclass
class CaseRecord:
    """What one test measured. ``recovered`` is None where recovery does not apply."""

    suite: str
    case: str
    checks: int = 0  # property tests: examples run; secret tests: places searched
    tracebacks: int = 0
    counter_regressions: int = 0
    accepted_resets: int = 0  # deliberate, logged acceptances of a persisted reset
    phantom_kwh: float = 0.0  # booked by the statistics beyond the true consumption
    secrets_found: int = 0
    recovered: bool | None = None
    completed: bool = False
    bad_lines: int | None = None  # fault cases: log lines when it went bad
    recovery_lines: int | None = None  # fault cases: log lines when it recovered
    loop_stall_s: float | None = None  # fault cases: the longest the event loop was blocked
    notes: list[str] = field(default_factory=list)


def _suite_of(request: pytest.FixtureRequest) -> str:
    name = request.node.module.__name__.rpartition(".")[2] if request.node.module else "?"
    return name.removeprefix("test_")


@pytest.fixture
def fault_record(request: pytest.FixtureRequest) -> Iterator[CaseRecord]:
    """The record of this test, written when it ends (whatever its outcome)."""
    record = CaseRecord(suite=_suite_of(request), case=request.node.nodeid)
    yield record
    folder = os.environ.get(RECORDS_ENV)
    if folder:
        path = Path(folder) / f"records-{os.getpid()}.jsonl"
        with path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(asdict(record)) + "\n")


# --- logs ---------------------------------------------------------------------------------------


def is_coordinator_full_error(record: logging.LogRecord) -> bool:
    """Home Assistant's own DEBUG "Full error:" record after a failed update (2026.3 and later).

    Its coordinator logs it, with the failure's traceback, on the logger it was given: ours. The
    update failure itself is reported on its own; this record is Home Assistant's, not Meter Hub's.
    """
    return (
        record.levelno == logging.DEBUG
        and record.msg == "Full error:"
        and Path(record.pathname).parts[-3:]
        == ("homeassistant", "helpers", "update_coordinator.py")
    )


def is_traceback(record: logging.LogRecord) -> bool:
    """Whether a log record carries a traceback (an exception or a stack) that is not Home
    Assistant's debug record of a failed update."""
    return not is_coordinator_full_error(record) and bool(
        record.exc_info
        or record.exc_text
        or record.stack_info
        or "Traceback (most recent call last)" in record.getMessage()
    )


def is_clock_artefact(record: logging.LogRecord) -> bool:
    """asyncio's debug-mode "Executing <Task ...> took 5.000 seconds": the test moved the clock."""
    return record.name == "asyncio" and str(record.msg).startswith("Executing ")


def is_line(record: logging.LogRecord) -> bool:
    """A line a user sees in the default log: ours from INFO up, anyone's from WARNING up."""
    if record.name.startswith(OUR_LOGGER):
        return record.levelno >= logging.INFO
    return record.levelno >= logging.WARNING and not is_clock_artefact(record)


def record_text(record: logging.LogRecord) -> str:
    """Everything a record can put in a log file: message, raw args, exception and stack."""
    parts = [str(record.msg)]
    try:
        parts.append(record.getMessage())
    except (TypeError, ValueError):
        parts.append(repr(record.args))
    parts.append(repr(record.args))
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(record.exc_info[1])))
    parts.extend(text for text in (record.exc_text, record.stack_info) if text)
    return "\n".join(parts)


class LogWatch:
    """Reads ``caplog`` from marks set by the test."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        """Capture our debug records and everyone's from INFO up."""
        self._caplog = caplog
        caplog.set_level(logging.INFO)
        caplog.set_level(logging.DEBUG, logger=OUR_LOGGER)
        self._mark = 0

    @property
    def records(self) -> list[logging.LogRecord]:
        """Every record of the test so far."""
        return self._caplog.records

    def mark(self) -> None:
        """Start a new span: ``lines()`` counts from here."""
        self._mark = len(self._caplog.records)

    def lines(self) -> list[logging.LogRecord]:
        """The log lines since the mark."""
        return [record for record in self._caplog.records[self._mark :] if is_line(record)]

    def tracebacks(self) -> list[logging.LogRecord]:
        """Every record of the test with a traceback."""
        return [record for record in self._caplog.records if is_traceback(record)]

    def accepted_resets(self) -> set[tuple[str, float]]:
        """(unique id, value) of every logged acceptance of a lower counter value."""
        found: set[tuple[str, float]] = set()
        for record in self._caplog.records:
            if RESET_ACCEPTED in str(record.msg) and isinstance(record.args, tuple):
                name, _, value, *_ = record.args
                found.add((str(name), float(value)))
        return found


def describe(records: list[logging.LogRecord]) -> list[str]:
    """Short text of records, for a failure message."""
    return [f"{r.levelname} {r.name}: {r.getMessage()[:300]}" for r in records]


# --- counters -----------------------------------------------------------------------------------


def booked(states: list[float]) -> float:
    """What the recorder's statistics sum books from these states of a ``total_increasing``
    sensor: every change, and after a drop below 90 % (a meter reset, the recorder's own rule)
    the whole new value."""
    return sum(
        after if after < 0.9 * before else after - before for before, after in pairwise(states)
    )


@dataclass(frozen=True)
class Dip:
    """A cumulative sensor published ``value`` after it had published ``highest``."""

    entity_id: str
    unique_id: str | None
    highest: float
    value: float


class CounterWatch:
    """Every value published by a ``total_increasing`` sensor, and every dip among them.

    A dip that the counter guard logged as an accepted meter reset (same unique id, same value)
    is a reset, and the counter starts again from it; any other dip is a regression.
    """

    def __init__(self, hass: HomeAssistant, logs: LogWatch) -> None:
        """Listen to state changes from now on."""
        self._hass = hass
        self._logs = logs
        self.highest: dict[str, float] = {}
        self.published: dict[str, list[float]] = {}
        self.regressions: list[Dip] = []
        self.resets: list[Dip] = []
        self._unsub = hass.bus.async_listen(EVENT_STATE_CHANGED, self._changed)

    def stop(self) -> None:
        """Stop listening."""
        self._unsub()

    def seed(self) -> None:
        """Take the current states as published before watching began."""
        for state in self._hass.states.async_all("sensor"):
            self._note(state.entity_id, state.state, state.attributes.get(ATTR_STATE_CLASS))

    @callback
    def _changed(self, event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        if new is not None:
            self._note(new.entity_id, new.state, new.attributes.get(ATTR_STATE_CLASS))

    def _note(self, entity_id: str, text: str, state_class: object) -> None:
        if state_class != SensorStateClass.TOTAL_INCREASING:
            return
        try:
            value = float(text)
        except ValueError:
            return  # unavailable or unknown: not a published value
        highest = self.highest.get(entity_id)
        self.published.setdefault(entity_id, []).append(value)
        if not math.isfinite(value):
            self.regressions.append(Dip(entity_id, None, highest or math.nan, value))
            return
        if highest is not None and value < highest:
            entry = er.async_get(self._hass).async_get(entity_id)
            dip = Dip(entity_id, entry.unique_id if entry else None, highest, value)
            if (dip.unique_id, value) in self._logs.accepted_resets():
                self.resets.append(dip)
                self.highest[entity_id] = value
            else:
                self.regressions.append(dip)
            return
        self.highest[entity_id] = value


# --- the event loop -----------------------------------------------------------------------------

# The longest a single callback may block the event loop (a poll's parsing included).
MAX_LOOP_STALL = 0.1


class LoopStallWatch:
    """The longest time one callback of the event loop ran, while the watch is on.

    Every ``asyncio.Handle`` run is timed: what runs in one callback blocks the loop for that
    long. Timed in CPU time of the loop's thread, so that a busy machine (other processes) does
    not count and parsing in the executor does not either; the time of callbacks that run inside
    another one (``async_fire_time_changed`` runs due timers inline) counts for them alone.
    Garbage collection pauses are left out: their length is set by the heap of the whole test
    process (dozens of Home Assistant instances), not by what the callback did.
    """

    def __init__(self) -> None:
        """Not watching yet."""
        self.longest = 0.0
        self.longest_callback = ""  # what ran that long
        self._inner: list[float] = []
        self._original = asyncio.Handle._run
        self._collecting_since = 0.0
        self._collected = 0.0  # time spent collecting garbage, while watching

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._collecting_since = time.thread_time()
        else:
            self._collected += time.thread_time() - self._collecting_since

    def _clock(self) -> float:
        return time.thread_time() - self._collected

    def __enter__(self) -> LoopStallWatch:
        """Time every callback from now on."""
        original, inner, clock = self._original, self._inner, self._clock

        def timed(handle: asyncio.Handle) -> None:
            inner.append(0.0)
            started = clock()
            try:
                original(handle)
            finally:
                spent = clock() - started
                own = spent - inner.pop()
                if inner:
                    inner[-1] += spent
                if own > self.longest:
                    self.longest, self.longest_callback = own, repr(handle)[:300]

        asyncio.Handle._run = timed  # type: ignore[method-assign]
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop timing."""
        asyncio.Handle._run = self._original  # type: ignore[method-assign]
        gc.callbacks.remove(self._on_gc)
