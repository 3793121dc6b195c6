"""Keep meter counters honest for the energy dashboard: one rule for live readings and history.

Home Assistant books every rise of a ``total_increasing`` sensor as consumption, and reads any
drop as a meter reset that books the whole new value again. So a counter value is published
only when it is plausible against the last published one:

* **Rise**: at most what the meter could physically have measured (``RiseBound``: a generous
  maximum rate per quantity, times the elapsed time, plus a small allowance for resolution and
  timing). A rise that fits the time since the published value was last *confirmed* (read again,
  or published) is published at once; time without readings (an outage, a restart) counts, so a
  real catch-up after an outage is believed at once. A rise that fits only the time since the
  published value was *first* read (a device that repeated a stale value, then catches up) must
  be confirmed like a reset: seen in ``ResetRule.polls`` consistent readings over
  ``ResetRule.seconds``; a single glitch on a counter that stood still is never published. A
  faster rise is held back. The time a too-high series keeps being *seen* counts only after an
  hour (``HIGH_SERIES_RELEASE_S``): a spike that persists, or a spoof that climbs on from it,
  stays held that long, and then until the meter could have counted that much (104 days for a
  spike of 1,000,000 kWh).
* **Drop**: held back; accepted as a reset (a replaced meter) only once the lower series has
  been *observed* in ``ResetRule.polls`` readings spanning ``ResetRule.seconds``. Only time
  between two consecutive readings that both showed a self-consistent lower series counts: a
  missing value, a failed poll or a restart starts the observation again.
* A value back at the published level (or above it, within the bound) ends any hold, and
  nothing was booked meanwhile.

Every hold is logged once when it begins (a rise at WARNING, a drop at INFO) and once at INFO when
it ends (at WARNING when a reset is accepted). No Home Assistant imports: times are seconds (UNIX
time), passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
from typing import Final

_LOGGER = logging.getLogger(__package__)

HOUR_S: Final = 3600.0
# A too-high series that goes on this long is judged on all the time since the published value
# (a meter that counted on while a wrong value stood, or a long stale spell, is not held for ever).
HIGH_SERIES_RELEASE_S: Final = 3600.0


@dataclass(frozen=True, slots=True)
class RiseBound:
    """The most a counter can rise: ``per_hour`` times the elapsed hours, plus ``allowance``."""

    per_hour: float
    allowance: float

    def allows(self, rise: float, seconds: float | None) -> bool:
        """Whether a rise of ``rise`` in ``seconds`` is possible (None: time unknown, any is)."""
        if seconds is None:
            return True
        return rise <= self.per_hour * max(seconds, 0.0) / HOUR_S + self.allowance

    def scaled(self, factor: float) -> RiseBound:
        """The same bound in a unit ``factor`` times smaller (kWh -> Wh: 1000)."""
        return RiseBound(self.per_hour * factor, self.allowance * factor)


@dataclass(frozen=True, slots=True)
class ResetRule:
    """A drop is a reset once seen in ``polls`` readings over ``seconds`` of observation."""

    polls: int
    seconds: float


# The bounds, per quantity (see README, "Energy counters"). Generous on purpose: they exist to
# stop glitches and spoofs that are orders of magnitude off, never a real reading.
# Electricity: 400 kW, more than any low-voltage connection a home or small business meter sits
# on (3 x 400 V x 500 A is 346 kVA); 0.1 kWh for the resolution and a late meter telegram.
ELECTRICITY: Final = RiseBound(per_hour=400.0, allowance=0.1)  # kWh
# Heat (and any other energy counter): the same 400 kW; reactive energy: the same 400 kvar.
_ENERGY_FACTORS: Final = {
    "Wh": 1000.0,
    "kWh": 1.0,
    "MWh": 0.001,
    "MJ": 3.6,
    "GJ": 0.0036,
    "varh": 1000.0,
    "kvarh": 1.0,
}
# Gas: 100 m3/h, the maximum flow of a G65 meter (homes have G4-G6, small businesses G25/G40).
GAS: Final = RiseBound(per_hour=100.0, allowance=0.1)  # m3
# Water: 20 m3/h, four times the overload flow of a DN25 house meter (Q4 = 5 m3/h).
WATER: Final = RiseBound(per_hour=20.0, allowance=0.05)  # m3
# A counter of a unit not known here: 1,000 units per hour.
DEFAULT: Final = RiseBound(per_hour=1000.0, allowance=1.0)
_VOLUME_FACTORS: Final = {"m³": 1.0, "L": 1000.0}


def rise_bound(device_class: str | None, unit: str | None) -> RiseBound:
    """The rise bound of a counter of ``device_class`` (``"gas"``, ``"water"``...) in ``unit``."""
    if unit in _ENERGY_FACTORS:
        return ELECTRICITY.scaled(_ENERGY_FACTORS[unit])
    if unit in _VOLUME_FACTORS:
        volume = WATER if device_class == "water" else GAS
        return volume.scaled(_VOLUME_FACTORS[unit])
    return DEFAULT


@dataclass(slots=True)
class _Series:
    """Consecutive readings off the published value: a new meter's, or a catch-up, or a glitch.

    ``since``: when the series began; ``polls`` and ``observed``: how often and for how long (the
    time between consecutive readings of the series) it was seen.
    """

    value: float
    at: float
    since: float
    polls: int = 1
    observed: float = 0.0

    @classmethod
    def extended(
        cls, series: _Series | None, value: float, now: float, bound: RiseBound
    ) -> _Series:
        """``series`` with ``value`` read at ``now`` if it continues it, else a new series.

        A reading continues a series when it counts up from it within the bound.
        """
        if (
            series is None
            or value < series.value
            or not bound.allows(value - series.value, now - series.at)
        ):
            return cls(value, now, now)
        series.polls += 1
        series.observed += now - series.at
        series.value, series.at = value, now
        return series

    def confirmed(self, rule: ResetRule) -> bool:
        """Whether the series was seen as often and as long as ``rule`` asks."""
        return self.polls >= rule.polls and self.observed >= rule.seconds


class CounterGuard:
    """Decide which value of one meter counter may be published."""

    __slots__ = (
        "_bound",
        "_held",
        "_high",
        "_logged",
        "_lower",
        "_name",
        "_rule",
        "confirmed_at",
        "published",
        "published_at",
    )

    def __init__(self, name: str, bound: RiseBound, rule: ResetRule) -> None:
        """Guard the counter called ``name`` (for the log)."""
        self._name = name
        self._bound = bound
        self._rule = rule
        self.published: float | None = None
        # When the published value was first read, and last read or published (None: unknown).
        self.published_at: float | None = None
        self.confirmed_at: float | None = None
        self._held: float | None = None  # the value held back, while a hold lasts
        self._logged = False  # whether the hold was logged at WARNING
        self._lower: _Series | None = None
        self._high: _Series | None = None

    def restore(self, value: float, at: float | None, confirmed_at: float | None = None) -> None:
        """Start from ``value`` as before a restart (times None: unknown).

        It was first read at ``at`` and last read at ``confirmed_at`` (default: ``at``).

        With the time unknown (data of an older release) the first rise is taken as it comes,
        as that release did; drops are guarded all the same.
        """
        if self.published is None:
            self.published, self.published_at = value, at
            self.confirmed_at = at if confirmed_at is None else confirmed_at

    def interrupt(self) -> None:
        """A poll without a reading: an observed lower or too-high series starts again."""
        self._lower = self._high = None

    def accept(self, value: float, now: float) -> float | None:
        """Take a new reading made at ``now``; return the value to publish."""
        published = self.published
        if published is None:
            return self._publish(value, now)
        high, self._high = self._high, None
        if value < published:
            return self._observe_lower(value, now, published)
        if value == published:
            # The same value again confirms it. The time since it was first read keeps counting
            # too: a device that repeated a stale value, then catches up, is believed once the
            # catch-up is confirmed.
            self._end_hold(value)
            self._lower = None
            self.confirmed_at = now
            return published
        rise = value - published
        high = _Series.extended(high, value, now, self._bound)
        # The time a series held back as too high keeps being seen does not make it plausible
        # (a spike that persists, or climbs on), for an hour.
        start = high.since if now - high.since < HIGH_SERIES_RELEASE_S else now
        if self.confirmed_at is None or self._bound.allows(rise, start - self.confirmed_at):
            self._end_hold(value)
            return self._publish(value, now)
        # Plausible only since the value was first read (a stale spell, then a catch-up):
        # published once the series is confirmed, as a reset is.
        elapsed = None if self.published_at is None else start - self.published_at
        if high.confirmed(self._rule) and self._bound.allows(rise, elapsed):
            self._end_hold(value)
            return self._publish(value, now)
        self._hold(
            published, value, f"rose faster than possible in {start - self.confirmed_at:.0f} s"
        )
        self._lower = None
        self._high = high
        return published

    def _end_hold(self, value: float) -> None:
        if self._logged:
            _LOGGER.info(
                "%s is back to a plausible value (%s): the hold of %s ended, nothing booked",
                self._name,
                value,
                self._held,
            )
        self._held = None
        self._logged = False

    def _observe_lower(self, value: float, now: float, published: float) -> float:
        self._hold(published, value, "went down")
        self._lower = lower = _Series.extended(self._lower, value, now, self._bound)
        if not lower.confirmed(self._rule):
            return published
        _LOGGER.warning(
            "%s stayed below its last value for %.0f s of observation (%s, was %s, %d polls): "
            "accepting it as a meter reset",
            self._name,
            lower.observed,
            value,
            published,
            lower.polls,
        )
        return self._publish(value, now)

    def _hold(self, published: float, value: float, why: str) -> None:
        # A drop within the allowance (rounding, a sum of phases) is held quietly; a drop is
        # the classic glitch (INFO), a rise beyond the bound an impossible value (WARNING).
        if not self._logged and abs(value - published) > self._bound.allowance:
            self._logged = True
            _LOGGER.log(
                logging.WARNING if value > published else logging.INFO,
                "%s %s from %s to %s: holding %s until it is confirmed or back",
                self._name,
                why,
                published,
                value,
                published,
            )
        self._held = value

    def _publish(self, value: float, now: float) -> float:
        self.published = value
        self.published_at = self.confirmed_at = now
        self._held = self._lower = self._high = None
        self._logged = False
        return value
