"""Keep meter counters honest for the energy dashboard.

Home Assistant reads any drop of a ``total_increasing`` sensor as a meter reset and books the whole
counter again as new consumption. A glitch (a 0, a dip, a phase that drops out of a sum) must
therefore never reach the state. A lower value that persists is a real reset (a replaced meter):
it is accepted once, after ``hold`` seconds, and logged.
"""

from __future__ import annotations

import logging
import time

_LOGGER = logging.getLogger(__package__)


class CounterGuard:
    """Decide which value of a meter counter may be published."""

    __slots__ = ("_hold", "_lower_since", "_name", "published")

    def __init__(self, name: str, hold_seconds: float) -> None:
        """Guard the counter called ``name`` (for the log)."""
        self._name = name
        self._hold = hold_seconds
        self._lower_since: float | None = None
        self.published: float | None = None

    @property
    def holding(self) -> bool:
        """Whether a lower value is being held back (it must be offered again on every poll)."""
        return self._lower_since is not None

    def restore(self, value: float) -> None:
        """Start from the value published before a restart."""
        if self.published is None:
            self.published = value

    def accept(self, value: float, now: float | None = None) -> float | None:
        """Return the value to publish for a new reading (None while there is nothing to show)."""
        published = self.published
        if published is None or value >= published:
            self.published = value
            self._lower_since = None
            return value
        now = time.monotonic() if now is None else now
        if self._lower_since is None:
            self._lower_since = now
            _LOGGER.debug(
                "%s went down from %s to %s: holding %s", self._name, published, value, published
            )
            return published
        if now - self._lower_since < self._hold:
            return published
        _LOGGER.warning(
            "%s stayed below its last value for %.0f s (%s, was %s): accepting it as a meter reset",
            self._name,
            now - self._lower_since,
            value,
            published,
        )
        self.published = value
        self._lower_since = None
        return value
