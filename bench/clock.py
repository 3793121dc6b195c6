"""Virtual time for the benchmarks, installed before Home Assistant is imported.

Some modules copy ``time.time`` or ``dt_util.utcnow`` when they are imported (the entity helper
keeps ``timer = time.time``, the recorder's statistics ``time_time``); ``bench/__init__.py`` runs
``install()`` first, so that every copy is this module's function. While no clock is active it is
the real time; ``activate(clock)`` makes every reader follow ``clock``.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
import time

_real_time = time.time
_real_monotonic = time.monotonic


class VirtualClock:
    """Real time plus an offset that only ``jump`` changes.

    ``monotonic()`` is the event loop's clock (every timer, the coordinators' schedules); ``time()``
    and ``utcnow()`` are the wall clock. ``jump(seconds)`` moves both forward at once.
    """

    def __init__(self, start: datetime | None = None) -> None:
        """Start the wall clock at ``start`` (default: now); it runs on from there in real time."""
        self.skew = 0.0
        self._wall_base = 0.0 if start is None else start.timestamp() - _real_time()

    def monotonic(self) -> float:
        """The event loop's clock."""
        return _real_monotonic() + self.skew

    def time(self) -> float:
        """Seconds since the epoch (``time.time``)."""
        return _real_time() + self._wall_base + self.skew

    def utcnow(self) -> datetime:
        """Aware UTC now (``dt_util.utcnow``)."""
        return datetime.fromtimestamp(self.time(), UTC)

    def jump(self, seconds: float) -> None:
        """Move both clocks forward."""
        if seconds > 0:
            self.skew += seconds


_active: VirtualClock | None = None


def _time() -> float:
    return _real_time() if _active is None else _active.time()


def _utcnow() -> datetime:
    return datetime.fromtimestamp(_time(), UTC)


def activate(clock: VirtualClock | None) -> None:
    """Make ``time.time``, ``dt_util.utcnow`` and ``dt_util.now`` follow ``clock`` (None: real)."""
    global _active  # noqa: PLW0603 - one clock for the whole process, by design
    _active = clock


def install() -> None:
    """Replace the process's wall clock functions by this module's (before Home Assistant loads)."""
    from homeassistant.util import dt as dt_util  # noqa: PLC0415 - must come after the patch

    def now(time_zone: tzinfo | None = None) -> datetime:
        return datetime.fromtimestamp(_time(), time_zone or dt_util.get_default_time_zone())

    time.time = _time
    dt_util.utcnow = _utcnow  # type: ignore[assignment]
    dt_util.now = now
